#!/usr/bin/env bash
# Sets up (packages + build) and runs the main job on the bundled data.
# For now: inspect the bundled GRCh38 chr20/chr21 subset before training on it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
build/app/genomamba inspect --window 32769 data/setA/grch38.chr20_and_21_10M.fa.gz
