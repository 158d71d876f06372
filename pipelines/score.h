// `genomamba score`: variant-effect scores of every record of a VCF/BCF, written as an
// annotated, optionally indexed VCF/BCF (and a TSV). Scores, context modes and window
// geometry: score_options.h, score_alleles.h, score_engine.h; outputs: score_output.h.
//
// Records pass through in input order with all their fields; each gets one value per ALT
// for every selected score ('.' where unscored) and flags:
//   GM_OUTSIDE      the record reaches past the FASTA contig's end, or its contig is not in
//                   the FASTA while --allow-partial-reference says the FASTA is a subset;
//   GM_REFMISMATCH  REF differs from the FASTA (never scored against the wrong base);
//   GM_EDGE         fewer context or window bases than asked at a contig end.
// Symbolic ALTs (<DEL>, *, breakends) are passed through unscored and counted.
//
// Sharding (--shard i/N): full context splits by contig (a contig is always streamed from
// its start, so a record's scores do not depend on the split), window mode by blocks of
// shard_block bases. Each shard writes <output>.shard-IIIII-of-NNNNN.<ext> and a done
// marker; a rerun skips a shard whose marker matches; merge_vcf_shards joins them.
// "Independent of the split" is exact for the full-context stream (LLR: bitwise, the
// chunk grid depends only on the contig); REF/ALT rows batched with other records can
// differ in the last float bits (row lengths and batch layout change the kernels' blocking).
// Full context and sharded runs need the records sorted (contigs contiguous, positions
// non-decreasing): unsorted input is an error that says to run bcftools sort.
// With full context the calling thread only streams the model; a second thread reads the
// records, builds their jobs and writes each record once its scores are final
// (score_handoff.h); window mode runs every step on the calling thread.
#pragma once

#include <iosfwd>

#include "pipelines/score_options.h"

namespace gm {

// Runs the job; progress and the closing summary go to `log`. Throws InputError for bad
// input (naming file and record), std::invalid_argument for bad options.
ScoreSummary run_score(const ScoreOptions& options, std::ostream& log);

}  // namespace gm
