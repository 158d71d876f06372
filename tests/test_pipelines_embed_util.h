// Helpers for the embed tests (tests/test_pipelines_embed*.cpp, tests/test_cli_embed*.cpp):
// a tiny random checkpoint, the independent reference embedding of a region (one plain
// forward of the model over the region's tokens, no packing, no streaming), and small
// comparisons.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "genomics/fasta.h"
#include "genomics/tokenizer.h"
#include "mamba/batch.h"
#include "mamba/checkpoint.h"
#include "mamba/model.h"
#include "mamba/ops.h"
#include "mamba/rng.h"

namespace gm::test {

inline ModelConfig tiny_embed_config(int64_t d_model = 16, int64_t n_layer = 2, int64_t vocab = 16) {
  ModelConfig c;
  c.d_model = d_model;
  c.n_layer = n_layer;
  c.d_state = 8;
  c.vocab = vocab;
  return c.resolved();
}

// A random model whose out_proj is large enough that every layer visibly changes the
// residual stream (at init it is tiny), saved as a weights file at `path`.
inline void save_tiny_model(const std::string& path, uint64_t seed = 7, const ModelConfig& cfg = tiny_embed_config()) {
  CpuContext ctx(1);
  MambaModel model(ctx, cfg);
  model.init_weights(ctx, seed);
  ParamStore& ps = model.params();
  Rng rng(seed + 1);
  for (size_t i = 0; i < ps.size(); ++i) {
    if (ps.infos()[i].name.find("out_proj") == std::string::npos) continue;
    std::vector<float> v = ps.download(ctx, static_cast<int>(i));
    for (float& x : v) x = static_cast<float>(rng.uniform(-0.3, 0.3));
    ps.upload(ctx, static_cast<int>(i), v);
  }
  ps.mark_updated();
  save_weights(ctx, model, path);
}

// Forward-strand tokens of [beg, end) of a contig.
inline std::vector<uint8_t> fetch_tokens(const FastaReader& fasta, int contig, int64_t beg, int64_t end) {
  const auto seq = fasta.fetch(contig, beg, end);
  std::vector<uint8_t> tokens(static_cast<size_t>(end - beg)), flags(tokens.size());
  tokenize(seq.view(), tokens.data(), flags.data(), fasta.contigs()[static_cast<size_t>(contig)].name, beg);
  return tokens;
}

// Residual stream at `layer` for one row of tokens in one plain forward: [L * d].
inline std::vector<float> direct_forward(Context& ctx, MambaModel& model, const std::vector<uint8_t>& tokens,
                                         int layer) {
  ForwardRequest req;
  req.tokens = upload_u8(ctx, tokens, {1, static_cast<int64_t>(tokens.size())});
  req.want_logits = false;
  req.capture = {layer};
  const Tensor t = model.forward(ctx, req).captured[0];
  std::vector<float> out(static_cast<size_t>(t.numel()));
  Tensor dst = Tensor::wrap(out.data(), t.shape(), DType::F32, Device::cpu());
  ops::copy(ctx, t, dst);
  return out;
}

// Per-token reference of a region [beg, end) on `minus` strand with `flank` bases of
// context before it in reading order (clipped): rows in the region's strand order.
inline std::vector<float> reference_tokens(Context& ctx, MambaModel& model, const FastaReader& fasta, int contig,
                                           int64_t beg, int64_t end, bool minus, int64_t flank, int layer) {
  const int64_t d = model.config().d_model;
  const int64_t length = fasta.contigs()[static_cast<size_t>(contig)].length;
  std::vector<uint8_t> tokens;
  int64_t lead = 0;
  if (!minus) {
    lead = std::min(flank, beg);
    tokens = fetch_tokens(fasta, contig, beg - lead, end);
  } else {
    lead = std::min(flank, length - end);
    tokens = fetch_tokens(fasta, contig, beg, end + lead);
    std::vector<uint8_t> flags(tokens.size());
    reverse_complement(tokens.data(), flags.data(), tokens.size());
  }
  const std::vector<float> all = direct_forward(ctx, model, tokens, layer);
  return std::vector<float>(all.begin() + lead * d, all.end());
}

// Largest |a - b| / (1 + |b|); +inf when sizes differ or anything is not finite.
inline double max_rel_diff(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size() || a.empty()) return std::numeric_limits<double>::infinity();
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!std::isfinite(a[i]) || !std::isfinite(b[i])) return std::numeric_limits<double>::infinity();
    worst = std::max(worst, std::fabs(static_cast<double>(a[i]) - b[i]) / (1.0 + std::fabs(static_cast<double>(b[i]))));
  }
  return worst;
}

// Rows [r0, r1) of a [*, d] matrix in reverse row order.
inline std::vector<float> reversed_rows(const std::vector<float>& m, int64_t d) {
  std::vector<float> out;
  const int64_t rows = static_cast<int64_t>(m.size()) / d;
  for (int64_t r = rows - 1; r >= 0; --r) out.insert(out.end(), m.begin() + r * d, m.begin() + (r + 1) * d);
  return out;
}

}  // namespace gm::test
