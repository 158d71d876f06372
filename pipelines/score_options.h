// Options and summary of `genomamba score` (pipelines/score.h runs it).
//
// Scores (INFO fields, Number=A, Type=Float, one value per ALT, '.' when unscored):
//   GM_LLR  log p(ALT base | context) - log p(REF base | context) at the variant (natural
//           log), SNVs between A/C/G/T only.
//   GM_DLL  summed log-likelihood of the ALT window minus that of the REF window
//           (window geometry: pipelines/score_alleles.h), SNVs, MNPs and indels.
//   GM_EMB  cosine distance (1 - cos) between the mean residual-stream vectors, at capture
//           point `layer`, of the REF window and of the ALT window.
// With strand Both every score is the mean of the forward strand (context upstream) and the
// reverse-complement strand (context downstream, complemented alleles); a strand that has no
// context at all (a variant on a contig's first or last base) is left out and the record
// flagged GM_EDGE.
//
// Context: `context` bases on each side (fewer only at a contig end: GM_EDGE), or the whole
// contig (`full_context`: one streaming pass per strand and contig).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "mamba/context.h"
#include "pipelines/sharding.h"

namespace gm {

struct ScoreSelection {
  bool llr = false, dll = false, emb = false;
  bool any() const { return llr || dll || emb; }
  bool branches() const { return dll || emb; }  // scores that run REF and ALT rows
  std::string to_string() const;                // "llr,dll"
};

// "llr,dll,emb" in any order and combination; throws std::invalid_argument otherwise.
ScoreSelection parse_score_selection(const std::string& text);

enum class ScoreStrands : uint8_t { Forward, Reverse, Both };
ScoreStrands parse_score_strands(const std::string& text);  // "forward" | "reverse" | "both"
const char* score_strands_name(ScoreStrands m);

struct ScoreOptions {
  // inputs
  std::string vcf;                    // VCF/BCF path, or "-" for stdin
  std::string fasta;                  // reference (plain or bgzip, indexed)
  std::string weights;                // model weights file (already resolved)
  std::vector<std::string> regions;   // -r: VCF contig names, 1-based inclusive
  std::string regions_file;           // -R: BED (.bed, .bed.gz) or CHROM POS / CHROM BEG END (1-based)
  std::string rename_contigs;         // two columns per line: VCF name, FASTA name
  bool allow_partial_reference = false;  // FASTA contigs may be shorter than the header's

  // outputs
  std::string output = "-";           // "-" = stdout
  char output_type = 'v';             // v (VCF), z (bgzip VCF), u (uncompressed BCF), b (BCF)
  std::string write_index;            // "" = none, "csi" or "tbi"
  std::string tsv;                    // optional table, "" = none

  // scoring
  ScoreSelection scores{true, true, false};
  bool full_context = false;
  int64_t context = 8192;             // bases on each side (ignored with full_context)
  int64_t window = 8192;              // DLL / EMB window
  ScoreStrands strand = ScoreStrands::Both;
  int layer = -1;                     // capture point for EMB, -1 = n_layer (input of the final norm)

  // execution
  Device device = Device::cpu();
  Precision precision = Precision::BF16;  // CUDA activations
  int threads = 0;
  int64_t batch_rows = 0;             // rows per forward pass, 0 = by device (cpu 8, cuda 64)
  int64_t chunk = 0;                  // full-context streaming chunk, 0 = by device and scores
  int64_t shard_block = 1000000;      // window mode: sharding unit along a contig (bp)
  ShardSpec shard;
  std::string command_line;           // provenance (header line, done marker)
  bool progress = true;
};

// Counts reported at the end (and by the CLI on stderr).
struct ScoreSummary {
  std::string output;                 // the file written (shard name when sharded)
  bool skipped = false;               // sharded and already done: nothing was recomputed
  int64_t records = 0;                // records written
  int64_t alleles = 0;                // ALT alleles seen
  int64_t scored_alleles = 0;         // ALT alleles with at least one score
  int64_t symbolic_alleles = 0;       // <DEL>, *, breakends, other non-sequence ALTs: unscored
  int64_t ref_mismatch = 0;           // records flagged GM_REFMISMATCH
  int64_t outside = 0;                // records flagged GM_OUTSIDE
  int64_t edge = 0;                   // records flagged GM_EDGE
  // Where the time went. Window mode runs every step in turn on one thread. With --context
  // full a second thread reads the records, fetches contigs and writes while the model
  // streams, so `write`, `sequence` and `read` overlap the model there; the job's own thread
  // is then open + setup + model + feed_wait + drain.
  double seconds = 0;                 // the whole job
  double model_seconds = 0;           // streaming / window passes through the model
  double write_seconds = 0;           // writing the scored records, closing the outputs
  double close_seconds = 0;           // of which closing the outputs (last blocks, sync, rename)
  double setup_seconds = 0;           // waiting for the device context and loading the model
  double sequence_seconds = 0;        // reading contig sequence from the FASTA
  double open_seconds = 0;            // opening inputs, preparing the output header
  double read_seconds = 0;            // reading and decoding the input records, building their jobs
  double feed_wait_seconds = 0;       // full context: the stream waiting for contigs and records
  double drain_seconds = 0;           // full context: after the stream, waiting for the last writes
};

}  // namespace gm
