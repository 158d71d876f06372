#!/usr/bin/env bash
# Downloads what the HG38 pretraining recipes (configs/recipes/hg38-*.ini) read:
#  - UCSC hg38.fa.gz, checked against UCSC's published md5sum.txt, then recompressed with
#    bgzip (UCSC ships plain gzip, which faidx cannot index) and indexed;
#  - the Basenji/Enformer split BED `sequences_human.bed` (chrom, start, end, train|valid|test)
#    that HyenaDNA and Caduceus train on. It has no published checksum: the size and SHA-256 of
#    the first download are recorded in sequences_human.bed.sha256 and later downloads must match.
# Usage: data/download_hg38.sh [DEST_DIR]   (default: data/hg38; needs curl, samtools, bgzip)
set -euo pipefail
dest=${1:-"$(dirname "$0")/hg38"}
threads=${THREADS:-$(nproc)}
ucsc=https://hgdownload.soe.ucsc.edu/goldenPath/hg38/bigZips
bed_url=https://storage.googleapis.com/basenji_barnyard2/sequences_human.bed
mkdir -p "$dest"
cd "$dest"

fetch() {  # url file: download to a temporary name, rename when complete
  [[ -s $2 ]] && return 0
  curl -fL --retry 3 -o "$2.part" "$1"
  mv "$2.part" "$2"
}

fetch "$ucsc/md5sum.txt" md5sum.txt
fetch "$ucsc/hg38.fa.gz" hg38.fa.gz
expected=$(awk '$2 == "hg38.fa.gz" {print $1}' md5sum.txt)
[[ -n $expected ]] || { echo "download_hg38: hg38.fa.gz not listed in md5sum.txt" >&2; exit 1; }
actual=$(md5sum hg38.fa.gz | cut -d' ' -f1)
if [[ $actual != "$expected" ]]; then
  echo "download_hg38: hg38.fa.gz MD5 $actual does not match UCSC's $expected; delete it and retry" >&2
  exit 1
fi
echo "download_hg38: hg38.fa.gz MD5 $actual matches UCSC md5sum.txt"

if [[ ! -s hg38.fa.bgz.fai ]]; then
  gzip -dc hg38.fa.gz | bgzip -@ "$threads" > hg38.fa.bgz.part
  mv hg38.fa.bgz.part hg38.fa.bgz
  samtools faidx hg38.fa.bgz
fi

fetch "$bed_url" sequences_human.bed
size=$(stat -c %s sequences_human.bed)
sum=$(sha256sum sequences_human.bed | cut -d' ' -f1)
if [[ -s sequences_human.bed.sha256 ]]; then
  read -r want_sum want_size < sequences_human.bed.sha256
  if [[ $sum != "$want_sum" || $size != "$want_size" ]]; then
    echo "download_hg38: sequences_human.bed ($size bytes, $sum) differs from the first download" \
         "($want_size bytes, $want_sum)" >&2
    exit 1
  fi
else
  echo "$sum $size" > sequences_human.bed.sha256
  echo "download_hg38: recorded sequences_human.bed: $size bytes, SHA-256 $sum"
fi
echo "download_hg38: ready: $dest/hg38.fa.bgz and $dest/sequences_human.bed"
