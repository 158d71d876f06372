#!/usr/bin/env bash
# Sets up (packages + build) and runs the main job on the bundled data:
#  1. check the data (inspect),
#  2. pretrain a small Mamba model on GRCh38 chr20 (first 10 Mb; on the GPU when one is
#     present) and evaluate it on held-out chr21,
#  3. embed the chr21 exome target regions (HDF5 that anndata reads),
#  4. score the GIAB HG002 variants of chr20:5.0-5.5 Mb (annotated, indexed VCF).
# Everything goes to runs/demo/ (a rerun resumes, or finds the steps already done).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
gm=build/app/genomamba
ref=data/setA/grch38.chr20_and_21_10M.fa.gz
run=runs/demo
device=cpu
if command -v nvidia-smi > /dev/null && nvidia-smi -L > /dev/null 2>&1 && grep -q 'genomamba: CUDA backend ON' build.log 2>/dev/null; then
  device=cuda
fi

$gm inspect --window 1025 "$ref"
$gm pretrain --config configs/recipes/demo.ini --device "$device" --resume -o "$run" "$ref"
$gm eval -m "$run" -r chr21:5000001-10000000 --window 8192 --max-windows 64 --device "$device" "$ref"
$gm info "$run"
$gm embed -m "$run" -R data/setA/chr21_roi.bed --strand both --device "$device" -o "$run/chr21_roi.h5ad" "$ref"
$gm score -m "$run" -f "$ref" -r chr20:5000000-5500000 --context 8192 --scores llr,dll --window 2048 \
  --allow-partial-reference --device "$device" -o "$run/giab_chr20_5M.vcf.gz" \
  data/setA/HG002_GIAB_v4.2.1.chr20_1-10M.vcf.gz -W
echo "demo: model, metrics and checkpoints in $run/; embeddings $run/chr21_roi.h5ad; scores $run/giab_chr20_5M.vcf.gz"
