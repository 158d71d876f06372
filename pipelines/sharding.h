// Sharded batch jobs (embed, score): which part of the work a shard does, where its
// output goes, and the done marker that lets a rerun skip finished shards.
//
// - Shard i of N is 0-based. Without --shard, SLURM array jobs set it:
//   i = (SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN) / SLURM_ARRAY_TASK_STEP,
//   N = SLURM_ARRAY_TASK_COUNT (STEP defaults to 1, MIN to 0).
// - Items (regions, contigs) are split into N contiguous blocks in input order, so
//   concatenating the shards in index order restores the unsharded order.
// - With N > 1 the output path gets ".shard-IIIII-of-NNNNN" before its extension
//   ("emb.h5" -> "emb.shard-00002-of-00010.h5", "out.vcf.gz" -> "out.shard-...vcf.gz").
// - Done marker: "<output>.done", written after the output is complete, holds the
//   command (without the --shard option itself) and the checkpoint SHA-256. A rerun
//   skips a shard only when its output and a matching marker exist; a marker that does
//   not match is an error (the user changed the command or the model).
#pragma once

#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <utility>

namespace gm {

struct ShardSpec {
  int index = 0;
  int count = 1;
  bool sharded() const { return count > 1; }
  std::string to_string() const;  // "2/10"
};

using EnvLookup = std::function<const char*(const char*)>;

// Parses "i/N" (0 <= i < N); empty text takes the SLURM variables above, else 0/1.
// Throws std::invalid_argument on malformed text or inconsistent variables.
ShardSpec resolve_shard(const std::string& text, const EnvLookup& env);

// [begin, end) of the items shard `s` owns out of `n`.
std::pair<size_t, size_t> shard_range(const ShardSpec& s, size_t n);

// The shard's output path (unchanged when not sharded). Recognised multi-part
// extensions: .vcf.gz, .vcf.bgz, .tsv.gz; otherwise the last extension.
std::string shard_output_path(const std::string& output, const ShardSpec& s);

struct DoneMarker {
  std::string command;            // the command line without --shard
  std::string checkpoint_sha256;
};

std::string done_marker_path(const std::string& output);
void write_done_marker(const std::string& output, const DoneMarker& marker);
std::optional<DoneMarker> read_done_marker(const std::string& output);

// True when `output` is already complete for exactly this job (skip it); false when it
// must be (re)computed; throws std::runtime_error, naming both, when a marker exists
// for a different command or checkpoint.
bool shard_already_done(const std::string& output, const DoneMarker& expected);

// The command line with any "--shard X" / "--shard=X" removed (for the marker).
std::string command_without_shard(const std::string& command_line);

}  // namespace gm
