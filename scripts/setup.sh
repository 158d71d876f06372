#!/usr/bin/env bash
# Installs the Debian 12 packages genomamba needs (when missing) and builds it in build/.
# CUDA is not a Debian package: the CUDA backend is built when /usr/local/cuda/bin/nvcc
# exists (sm_90), otherwise a CPU-only build is made. Override with GENOMAMBA_CUDA=ON|OFF.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(build-essential cmake pkg-config git libhts-dev libhdf5-dev zlib1g-dev libboost-program-options-dev
          libgtest-dev libopenblas-dev python3 python3-numpy python3-h5py python3-anndata
          samtools bcftools tabix)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  sudo=""
  [[ $(id -u) -eq 0 ]] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

cuda=${GENOMAMBA_CUDA:-}
if [[ -z $cuda ]]; then
  if [[ -x /usr/local/cuda/bin/nvcc ]]; then cuda=ON; else cuda=OFF; fi
fi
jobs=$(nproc)
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DGENOMAMBA_CUDA="$cuda" > build.log 2>&1 \
  || { cat build.log; exit 1; }
cmake --build build -j "$jobs" >> build.log 2>&1 || { tail -50 build.log; exit 1; }
echo "setup: built genomamba (CUDA backend: $cuda) in build/"
