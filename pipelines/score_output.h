// Outputs of `genomamba score`: the annotated VCF/BCF (every input record once, with its
// original fields, samples and FORMAT, plus the GM_* INFO fields) and the optional TSV.
//
// Header: one ##INFO line per selected score (Number=A, Type=Float) and per flag
// (GM_EDGE, GM_OUTSIDE, GM_REFMISMATCH), and ##genomamba_command, ##genomamba_model
// (checkpoint SHA-256), ##genomamba_reference, ##genomamba_settings, ##genomamba_version,
// and ##genomamba_shard=i/N in a shard's output. genomamba lines of an earlier run are
// replaced; GM_* values already in the records are removed before the new ones are set,
// so a rescored file never mixes runs.
//
// The header edited is the INPUT header itself (records keep their dictionary ids,
// including tags htslib adds while parsing). Files are written under a temporary name and
// renamed by finish(); the index (-W) likewise. "-" writes to stdout (no index).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "pipelines/score_options.h"

struct bcf_hdr_t;
struct bcf1_t;

namespace gm {

struct AlleleScores {
  double llr, dll, emb;  // NaN = missing ('.')
};

struct RecordResult {
  std::vector<AlleleScores> alleles;  // one per ALT
  bool edge = false, outside = false, ref_mismatch = false;
};

struct ScoreProvenance {
  std::string command_line;
  std::string model_sha256;
  std::string reference;
  std::string settings;  // "scores=llr,dll;context=8192;window=8192;strand=both;layer=8"
  std::string shard;     // "i/N" when sharded, else ""
};

// Adds the INFO/flag definitions and provenance lines to `header` (see above). Throws
// std::runtime_error when the header already defines a GM_* tag with another type.
// provenance.model_sha256 may be empty: set_score_model_line adds that line later (it has no
// dictionary entry, so it may follow records already read with the header).
void prepare_score_header(bcf_hdr_t* header, const ScoreSelection& scores, const ScoreProvenance& provenance);
// Sets the ##genomamba_model line (checkpoint SHA-256), replacing one already there.
void set_score_model_line(bcf_hdr_t* header, const std::string& model_sha256);

class ScoreVcfWriter {
 public:
  // type: v z u b (as bcftools -O); index_format: "", "csi" or "tbi".
  ScoreVcfWriter(const std::string& path, char type, const std::string& index_format, bcf_hdr_t* header,
                 int threads);
  ~ScoreVcfWriter();
  ScoreVcfWriter(const ScoreVcfWriter&) = delete;
  ScoreVcfWriter& operator=(const ScoreVcfWriter&) = delete;

  void write(bcf1_t* record, const ScoreSelection& scores, const RecordResult& result);
  // A record as it is (merging shards).
  void write_unchanged(bcf1_t* record);
  // Closes, saves the index and renames both into place.
  void finish();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

class ScoreTsvWriter {
 public:
  ScoreTsvWriter(const std::string& path, const ScoreSelection& scores);
  ~ScoreTsvWriter();
  ScoreTsvWriter(const ScoreTsvWriter&) = delete;
  ScoreTsvWriter& operator=(const ScoreTsvWriter&) = delete;
  // One line per ALT: chrom, pos (1-based), ref, alt, selected scores, flags.
  void write(const bcf_hdr_t* header, bcf1_t* record, const RecordResult& result);
  void finish();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The htslib write mode of an output type, and whether it can be indexed.
std::string hts_write_mode(char type);

}  // namespace gm
