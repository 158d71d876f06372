#!/usr/bin/python3
"""Independent reader check of `genomamba embed` output, run by tests/test_cli_embed.cpp
with Debian's /usr/bin/python3 (python3-h5py, python3-anndata).

Reads the pooled file with anndata.read_h5ad and h5py, and the per-token file with
h5py, and checks shapes, coordinates (against the BED), N fractions (against the FASTA),
values (X = obsm/layer_K of the first layer; the pooled mean = the mean of the per-token
rows), storage (chunks <= 1 MiB, gzip + shuffle) and provenance (checkpoint SHA-256,
MD5 of each contig used). Exits non-zero with a message on the first failure.

Usage: embed_check.py --pooled OUT.h5ad [--tokens OUT.h5] [--bed REGIONS.bed]
                      --fasta REF.fa[.gz] --checkpoint MODEL.safetensors
                      --layers K[,K...] [--dtype float32|float16]
"""
import argparse
import gzip
import hashlib
import json
import sys
import warnings

import anndata
import h5py
import numpy as np


def fail(message):
    print("embed_check: " + message, file=sys.stderr)
    sys.exit(1)


def check(condition, message):
    if not condition:
        fail(message)


def read_fasta(path):
    opener = gzip.open if path.endswith(".gz") else open
    sequences, name, parts = {}, None, []
    with opener(path, "rt") as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith(">"):
                if name is not None:
                    sequences[name] = "".join(parts)
                name, parts = line[1:].split()[0], []
            else:
                parts.append(line)
    if name is not None:
        sequences[name] = "".join(parts)
    return sequences


def read_bed(path):
    rows = []
    with open(path) as f:
        for line in f:
            if not line.strip() or line.startswith(("#", "track", "browser")):
                continue
            fields = line.rstrip("\n").split("\t")
            name = fields[3] if len(fields) > 3 else ""
            strand = fields[5] if len(fields) > 5 and fields[5] in ("+", "-") else "."
            rows.append((fields[0], int(fields[1]), int(fields[2]), name, strand))
    return rows


def check_storage(dataset, label):
    check(dataset.chunks is not None, label + " is not chunked")
    chunk_bytes = int(np.prod(dataset.chunks)) * dataset.dtype.itemsize
    check(chunk_bytes <= 1 << 20, "%s chunks are %d bytes (> 1 MiB)" % (label, chunk_bytes))
    check(dataset.compression == "gzip", label + " is not gzip-compressed")
    check(dataset.shuffle, label + " has no shuffle filter")


def check_obs(obs, bed, sequences, label):
    n = len(obs)
    check(list(obs.index) == [str(i) for i in range(n)], label + ": obs index is not 0..n-1")
    for column in ("chrom", "start", "end", "name", "strand", "n_fraction", "all_n"):
        check(column in obs.columns, "%s: obs has no column '%s'" % (label, column))
    if bed is not None:
        check(n == len(bed), "%s: %d regions, the BED has %d" % (label, n, len(bed)))
        for i, (chrom, start, end, name, strand) in enumerate(bed):
            row = obs.iloc[i]
            got = (str(row["chrom"]), int(row["start"]), int(row["end"]), str(row["name"]), str(row["strand"]))
            check(got == (chrom, start, end, name, strand), "%s: region %d is %s, the BED says %s"
                  % (label, i, got, (chrom, start, end, name, strand)))
    for i in range(n):
        row = obs.iloc[i]
        seq = sequences[str(row["chrom"])][int(row["start"]):int(row["end"])].upper()
        n_bases = sum(seq.count(c) for c in "NRYSWKMBDHV")
        want = n_bases / len(seq)
        check(abs(float(row["n_fraction"]) - want) < 1e-12,
              "%s: region %d n_fraction %r, the FASTA gives %r" % (label, i, row["n_fraction"], want))
        check(bool(row["all_n"]) == (n_bases == len(seq)), "%s: region %d all_n is wrong" % (label, i))


def check_provenance(uns, checkpoint, sequences, chroms, d, label):
    for key in ("genomamba_version", "command", "checkpoint_sha256", "model_config", "reference", "reference_md5"):
        check(key in uns, "%s: uns has no '%s'" % (label, key))
    with open(checkpoint, "rb") as f:
        sha = hashlib.sha256(f.read()).hexdigest()
    check(str(uns["checkpoint_sha256"]) == sha, label + ": checkpoint SHA-256 differs from the file's")
    config = json.loads(str(uns["model_config"]))
    check(int(config["d_model"]) == d, label + ": model_config d_model differs from the width")
    md5 = uns["reference_md5"]
    check(sorted(md5.keys()) == sorted(set(chroms)), label + ": reference_md5 does not list exactly the contigs used")
    for chrom in set(chroms):
        want = hashlib.md5(sequences[chrom].upper().encode()).hexdigest()
        check(str(md5[chrom]) == want, "%s: MD5 of %s differs from the FASTA's" % (label, chrom))
    check(str(uns["command"]).startswith("genomamba embed"), label + ": command is not recorded")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pooled", required=True)
    ap.add_argument("--tokens")
    ap.add_argument("--bed")
    ap.add_argument("--fasta", required=True)
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--layers", required=True)
    ap.add_argument("--dtype", default="float32")
    args = ap.parse_args()
    layers = [int(k) for k in args.layers.split(",")]
    sequences = read_fasta(args.fasta)
    bed = read_bed(args.bed) if args.bed else None

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # anndata 0.8's FutureWarnings are not ours
        adata = anndata.read_h5ad(args.pooled)
    n, d = adata.shape
    check(n > 0 and d > 0, "empty embedding matrix")
    check(adata.X.dtype == np.dtype(args.dtype), "X is %s, expected %s" % (adata.X.dtype, args.dtype))
    check(np.isfinite(adata.X).all(), "X has NaN or Inf")
    check(adata.var.shape[0] == d, "var has %d rows for width %d" % (adata.var.shape[0], d))
    for k in layers:
        key = "layer_%d" % k
        check(key in adata.obsm, "obsm has no " + key)
        check(adata.obsm[key].shape == (n, d), key + " has the wrong shape")
    check(np.array_equal(adata.X, adata.obsm["layer_%d" % layers[0]]), "X differs from the first layer's obsm")
    if len(layers) > 1:
        check(not np.array_equal(adata.obsm["layer_%d" % layers[0]], adata.obsm["layer_%d" % layers[1]]),
              "two layers hold identical values")
    check_obs(adata.obs, bed, sequences, "pooled")
    check_provenance(adata.uns, args.checkpoint, sequences, list(adata.obs["chrom"].astype(str)), d, "pooled")
    check(list(adata.uns["layers"]) == layers, "uns layers %s, expected %s" % (list(adata.uns["layers"]), layers))
    with h5py.File(args.pooled, "r") as f:
        check(set(f.keys()) <= {"X", "obs", "var", "obsm", "uns", "layers", "obsp", "varm", "varp"},
              "unexpected top-level keys %s" % sorted(f.keys()))
        check_storage(f["X"], "X")

    if args.tokens:
        with h5py.File(args.tokens, "r") as f:
            tokens, offsets = f["tokens"], f["offsets"][:]
            check(tokens.shape == (offsets[-1], d), "tokens shape %s, offsets end %d" % (tokens.shape, offsets[-1]))
            check(len(offsets) == n + 1 and offsets[0] == 0, "offsets do not have n_regions + 1 entries from 0")
            check_storage(tokens, "tokens")
            starts, ends = f["obs/start"][:], f["obs/end"][:]
            check(np.array_equal(np.diff(offsets), ends - starts), "offsets do not match the region lengths")
            check(np.array_equal(starts, adata.obs["start"].to_numpy()), "per-token obs differs from the pooled obs")
            check(f["uns/checkpoint_sha256"][()].decode() == str(adata.uns["checkpoint_sha256"]),
                  "per-token provenance differs")
            values = tokens[:].astype(np.float64)
            pooled = adata.X.astype(np.float64)
            for i in range(n):
                mean = values[offsets[i]:offsets[i + 1]].mean(axis=0)
                err = np.max(np.abs(mean - pooled[i]) / (1 + np.abs(pooled[i])))
                check(err < 1e-5, "region %d: pooled mean differs from the mean of its tokens by %g" % (i, err))
    print("embed_check: OK (%d regions x %d)" % (n, d))


if __name__ == "__main__":
    main()
