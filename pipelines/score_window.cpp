// ScoreEngine construction, defaults, and window mode (see score_engine.h).
#include <algorithm>
#include <memory>
#include <stdexcept>

#include "genomics/tokenizer.h"
#include "mamba/batch.h"
#include "mamba/ops.h"
#include "pipelines/score_branch.h"
#include "pipelines/score_engine.h"

namespace gm {

int64_t default_batch_rows(const Device& device) { return device.is_cuda() ? 64 : 8; }

int64_t default_max_tokens(const Device& device) { return device.is_cuda() ? int64_t{1} << 20 : int64_t{1} << 17; }

int64_t default_stream_chunk(const Device& device, const ScoreSelection& scores) {
  // Branch rows start at the grid point before what they need, so a fine grid keeps the
  // rows short; LLR alone only reads the stream, so long chunks keep the device busy.
  if (scores.branches()) return device.is_cuda() ? 2048 : 512;
  return device.is_cuda() ? int64_t{1} << 20 : 32768;
}

ScoreEngine::ScoreEngine(Context& ctx, MambaModel& model, EngineOptions options)
    : ctx_(ctx), model_(model), options_(options) {
  if (options_.batch_rows < 1) throw std::invalid_argument("batch rows must be >= 1");
  if (options_.chunk < 1) throw std::invalid_argument("the streaming chunk must be >= 1");
  if (options_.max_tokens < 1) throw std::invalid_argument("tokens per pass must be >= 1");
  if (options_.layer < 0 || options_.layer > model_.config().n_layer) {
    throw std::invalid_argument("--layer " + std::to_string(options_.layer) + " is outside [0, " +
                                std::to_string(model_.config().n_layer) + "]");
  }
}

void ScoreEngine::score_window(const ContigTokens& seq, const std::vector<StrandJob*>& jobs) {
  const ScoreSelection& sel = options_.scores;
  const bool branching = sel.branches();
  BranchConfig bc;
  bc.dll = sel.dll;
  bc.emb = sel.emb;
  bc.llr = sel.llr;
  bc.layer = options_.layer;
  bc.max_rows = std::max<int64_t>(2, options_.batch_rows);
  bc.max_tokens = options_.max_tokens;
  BranchRunner runner(ctx_, model_, bc);

  std::vector<StrandJob*> todo;
  for (StrandJob* j : jobs) {
    if (branching ? (j->dll || j->emb || j->llr) : j->llr) todo.push_back(j);
  }
  // One prefix row per job; with branches each job then needs two rows of the next pass.
  int64_t longest_prefix = 1;
  for (const StrandJob* j : todo) longest_prefix = std::max(longest_prefix, j->pos - j->context_start);
  int64_t group = branching ? std::max<int64_t>(1, options_.batch_rows / 2) : options_.batch_rows;
  group = std::max<int64_t>(1, std::min(group, options_.max_tokens / longest_prefix));
  const int64_t vocab = model_.config().vocab;
  for (size_t g0 = 0; g0 < todo.size(); g0 += static_cast<size_t>(group)) {
    const auto n = static_cast<int64_t>(std::min<size_t>(static_cast<size_t>(group), todo.size() - g0));
    std::vector<int64_t> starts(static_cast<size_t>(n)), lens(static_cast<size_t>(n));
    int64_t P = 0;
    for (int64_t j = 0; j < n; ++j) {
      const StrandJob& job = *todo[g0 + static_cast<size_t>(j)];
      const int64_t start =
          branching ? std::max(job.context_start, job.pos - bases_needed_before(job, bc)) : job.pos;
      starts[static_cast<size_t>(j)] = start;
      lens[static_cast<size_t>(j)] = start - job.context_start;
      P = std::max(P, start - job.context_start);
    }
    std::shared_ptr<StreamState> state;
    if (P > 0) {
      std::vector<uint8_t> tokens(static_cast<size_t>(n * P), token::kPad);
      std::vector<uint8_t> doc_start(static_cast<size_t>(n * P), 0);
      bool padded = false;
      for (int64_t j = 0; j < n; ++j) {
        const StrandJob& job = *todo[g0 + static_cast<size_t>(j)];
        const int64_t len = lens[static_cast<size_t>(j)], pad = P - len;
        seq.strand_slice(job.strand, job.context_start, job.context_start + len, tokens.data() + j * P + pad);
        // A shorter prefix starts a document where its bases start: the padding is forgotten.
        if (pad > 0 && len > 0) {
          doc_start[static_cast<size_t>(j * P + pad)] = 1;
          padded = true;
        }
      }
      state = std::make_shared<StreamState>(model_.new_stream_state(ctx_, n));
      ForwardRequest req;
      req.tokens = upload_u8(ctx_, tokens, {n, P});
      if (padded) req.seq_start = upload_u8(ctx_, doc_start, {n, P});
      req.state = state.get();
      req.want_logits = !branching;
      ForwardOutput out = model_.forward(ctx_, req);
      tokens_run_ += n * P;
      if (!branching) {
        // Logits of each row's last position: the prediction of the allele's base.
        std::vector<float> last(static_cast<size_t>(n * vocab));
        Tensor host = Tensor::wrap(last.data(), {n, 1, vocab}, DType::F32, Device::cpu());
        ops::copy(ctx_, out.logits.reshape({n, P, vocab}).narrow(1, P - 1, 1), host);
        for (int64_t j = 0; j < n; ++j) {
          StrandJob& job = *todo[g0 + static_cast<size_t>(j)];
          const float* l = last.data() + j * vocab;
          job.llr_value = static_cast<double>(l[job.alt[0]]) - l[job.ref[0]];
        }
      }
    }
    if (!branching) continue;
    for (int64_t j = 0; j < n; ++j) {
      StrandJob* job = todo[g0 + static_cast<size_t>(j)];
      BranchStart bs;
      bs.start = starts[static_cast<size_t>(j)];
      if (lens[static_cast<size_t>(j)] > 0) {
        bs.state = state;
        bs.row = j;
      }
      runner.add(job, seq, std::move(bs));
    }
    runner.flush();
  }
  runner.flush();
  tokens_run_ += runner.tokens_run();
}

}  // namespace gm
