#!/usr/bin/env bash
# Sets up (packages + build) and runs the whole test suite with ctest. GPU tests skip
# (shown as skipped) on a machine without an NVIDIA GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
ctest --test-dir build --output-on-failure -j "$(nproc)" --timeout 900
