#!/usr/bin/env bash
# GPU checks and benchmarks, run from the repository root on a machine with an NVIDIA
# GPU, with the binaries of a CUDA build (build/, or a bundle of it such as .gpu/):
#   bench/gpu_checks.sh BIN_DIR OUT_DIR [tests] [bench] [reference] [apps]
#   tests      every CUDA test (ops against the CPU, model, CLI loss curve CPU vs GPU, score)
#   bench      bench_scan (PEERS.md scan shapes) and bench_model (PEERS.md LM configs)
#   reference  the PEERS.md reference recipe (configs/recipes/peers-reference.ini),
#              whose validation curve is compared with the peer's (ends at 1.808 bits/base)
#   apps       bench_embed (FASTA to .h5ad) and bench_score (VCF to scored VCF, against the
#              naive way) at the shapes
# Logs go to OUT_DIR; each step's summary to stdout.
set -uo pipefail
bin=${1:?usage: gpu_checks.sh BIN_DIR OUT_DIR [tests] [bench] [reference] [apps]}
out=${2:?usage: gpu_checks.sh BIN_DIR OUT_DIR [tests] [bench] [reference] [apps]}
shift 2
export GENOMAMBA_BINARY="$PWD/$bin/app/genomamba"
export OMP_WAIT_POLICY=PASSIVE
mkdir -p "$out"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader | tee "$out/gpu.txt"
status=0
for what in "$@"; do
  case $what in
    tests)
      for t in "test_cuda:*" "test_mamba:*Cuda*" "test_cli:*Cuda*" "test_pipelines:*Cuda*:*Gpu*"; do
        exe=${t%%:*}; filter=${t#*:}
        "$bin/tests/$exe" --gtest_filter="$filter" --gtest_brief=1 > "$out/$exe.log" 2>&1 || status=1
        echo "$exe ($filter): $(grep -E '^\[  (PASSED|FAILED)|tests? ran|SKIPPED' "$out/$exe.log" | tr '\n' ' ')"
        grep -E '^\[  FAILED|worst relative' "$out/$exe.log" | head -20
      done ;;
    bench)
      "$bin/bench/bench_scan" 10 2>&1 | tee "$out/bench_scan.txt" | tail -12
      "$bin/bench/bench_model" --device cuda 2>&1 | tee "$out/bench_model.txt" ;;
    reference)
      rm -rf "$out/reference"
      start=$(date +%s)
      "$GENOMAMBA_BINARY" pretrain --config configs/recipes/peers-reference.ini --device cuda \
        -o "$out/reference" data/setA/grch38.chr20_and_21_10M.fa.gz > "$out/reference.log" 2>&1 || status=1
      echo "reference recipe: $(( $(date +%s) - start )) s"
      grep -E 'validation|error|non-finite' "$out/reference.log"
      cp "$out/reference/metrics.jsonl" "$out/reference_metrics.jsonl" 2>/dev/null
      rm -rf "$out/reference/checkpoints" ;;
    apps)
      "$bin/bench/bench_embed" --device cuda --tokens 8000000 --reps 2 2>&1 | tee "$out/bench_embed.txt" | tail -6
      "$bin/bench/bench_score" --device cuda --slow-subsample 10 2>&1 | tee "$out/bench_score.txt" | tail -14 ;;
    *) echo "gpu_checks: unknown step '$what'" >&2; status=1 ;;
  esac
done
exit $status
