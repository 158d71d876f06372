// RegionEmbedder: runs the model over regions and pools (or keeps) the residual stream
// at the requested layers. Independent of the output format.
//
// How the work is laid out
// - Each region becomes one pass (--strand fwd or rc) or two (both). A pass reads the
//   region on one strand, preceded by up to `flank` bases of context in that pass's
//   direction (clipped at the contig ends). The causal model never looks ahead, so the
//   flank after the region cannot change its outputs and is not read at all.
// - Regions are taken in blocks of consecutive regions (bounded in regions, tokens and
//   output bytes). A block's passes are packed into `rows` lanes (longest first, each
//   to the least loaded lane); a lane is one stream of passes back to back, and a
//   seq_start flag resets the model's state where each pass begins, so packing never
//   leaks context between regions and needs no padding except at a lane's end.
// - The lanes advance together `chunk` columns at a time: one forward of [rows, chunk]
//   tokens, the stream state carried between steps, so a region of any length (a whole
//   chromosome) runs in memory that does not grow with its length. A block with fewer
//   passes than rows uses fewer, longer lanes: still about rows x chunk tokens a forward.
// - Pooled modes reduce each step's wanted positions on the model's device (ops::
//   span_reduce: sums, or maxima, of runs of at most 4,096 positions) and bring back one
//   row per run, which the host adds up per pass in double; per-token mode brings back
//   every token. On a device, the host fills the next step and finishes the previous one
//   while the device computes (double-buffered steps).
// - Blocks are handed to the sink in region order.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "genomics/fasta.h"
#include "mamba/context.h"
#include "mamba/model.h"
#include "pipelines/embed_regions.h"
#include "pipelines/pooling.h"

namespace gm {

struct EngineOptions {
  std::vector<int> layers;  // residual-stream capture points, each in [0, n_layer]
  Pool pool = Pool::Mean;
  StrandMode strand = StrandMode::Fwd;
  int64_t flank = 0;
  int64_t chunk = 65536;  // tokens per row per forward (rows x chunk tokens a forward)
  int64_t rows = 1;       // rows (lanes) per forward
  int64_t block_regions = 65536;
  int64_t block_tokens = int64_t{64} << 20;             // model tokens per block
  int64_t block_output_bytes = int64_t{512} << 20;      // per-token values held per block
  int64_t max_region_output_bytes = int64_t{2} << 30;   // per-token values of one region
};

// One block of consecutive regions, embedded.
struct EmbeddedBlock {
  size_t first = 0;  // index of the block's first region in the list given to run()
  size_t count = 0;
  std::vector<int64_t> n_bases;  // N (and IUPAC) bases of each region
  // Per layer slot: pooled [count, d], or per-token [offsets.back(), d] with region i
  // at rows offsets[i]..offsets[i+1] in its strand's order.
  std::vector<std::vector<float>> values;
  std::vector<int64_t> offsets;  // per-token only: count + 1 entries, from 0
};

struct EmbedProgress {
  int64_t regions_done = 0, regions_total = 0;
  int64_t tokens_done = 0, tokens_total = 0;  // model tokens: flanks and both strands included
};

class RegionEmbedder {
 public:
  // Throws std::invalid_argument on options that do not fit the model.
  RegionEmbedder(Context& ctx, MambaModel& model, const FastaReader& fasta, EngineOptions options);

  void run(const std::vector<EmbedRegion>& regions, const std::function<void(const EmbeddedBlock&)>& sink,
           const std::function<void(const EmbedProgress&)>& progress = {});

  // Model tokens embedding `region` costs.
  int64_t model_tokens(const EmbedRegion& region) const;
  int64_t dim() const { return model_.config().d_model; }
  const EngineOptions& options() const { return opt_; }

 private:
  void run_block(const std::vector<EmbedRegion>& regions, size_t first, size_t last,
                 const std::function<void(const EmbeddedBlock&)>& sink,
                 const std::function<void(const EmbedProgress&)>& progress, EmbedProgress& state);

  Context& ctx_;
  MambaModel& model_;
  const FastaReader& fasta_;
  EngineOptions opt_;
};

}  // namespace gm
