#!/usr/bin/env bash
# Sets up (packages + build) and runs the main job on the bundled data: check the data,
# pretrain a small Mamba model on GRCh38 chr20 (first 10 Mb; on the GPU when one is
# present), evaluate it on held-out chr21, and show the checkpoint's provenance.
# Output goes to runs/demo/ (a rerun resumes or finds the run already finished).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
gm=build/app/genomamba
ref=data/setA/grch38.chr20_and_21_10M.fa.gz
device=cpu
if command -v nvidia-smi > /dev/null && nvidia-smi -L > /dev/null 2>&1 && grep -q 'genomamba: CUDA backend ON' build.log 2>/dev/null; then
  device=cuda
fi

$gm inspect --window 1025 "$ref"
$gm pretrain --config configs/recipes/demo.ini --device "$device" --resume -o runs/demo "$ref"
$gm eval -m runs/demo -r chr21:5000001-10000000 --window 8192 --max-windows 64 --device "$device" "$ref"
$gm info runs/demo
