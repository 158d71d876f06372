// REF/ALT branch rows in batches (see score_branch.h). Per-token losses come from
// ops::cross_entropy on the device (4 bytes per token back to the host instead of the
// logits); window sums of the residual stream come from one batched GEMM with a 0/1 mask
// (d floats per row back to the host).
#include "pipelines/score_branch.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "genomics/tokenizer.h"
#include "mamba/batch.h"
#include "mamba/ops.h"

namespace gm {

namespace {

void copy_to_host(Context& ctx, const Tensor& device, std::vector<float>& host) {
  host.resize(static_cast<size_t>(device.numel()));
  Tensor wrapped = Tensor::wrap(host.data(), device.shape(), DType::F32, Device::cpu());
  ops::copy(ctx, device, wrapped);
}

Tensor upload_f32(Context& ctx, std::vector<float>& host, const Tensor::Shape& shape) {
  Tensor out = ctx.empty(shape, DType::F32);
  ops::copy(ctx, Tensor::wrap(host.data(), shape, DType::F32, Device::cpu()), out);
  return out;
}

// 1 - cos(a, b); NaN when either vector is zero.
double cosine_distance(const float* a, const float* b, int64_t n) {
  double ab = 0, aa = 0, bb = 0;
  for (int64_t i = 0; i < n; ++i) {
    ab += static_cast<double>(a[i]) * b[i];
    aa += static_cast<double>(a[i]) * a[i];
    bb += static_cast<double>(b[i]) * b[i];
  }
  if (aa <= 0 || bb <= 0) return kMissingScore;
  return 1.0 - ab / std::sqrt(aa * bb);
}

// Sum of losses[from, to) as log-likelihood (losses are -log p).
double log_likelihood(const float* losses, int64_t from, int64_t to) {
  double s = 0;
  for (int64_t i = std::max<int64_t>(from, 0); i < to; ++i) s -= losses[i];
  return s;
}

}  // namespace

int64_t bases_needed_before(const StrandJob& job, const BranchConfig& c) {
  int64_t need = (c.dll || (c.llr && job.llr)) ? 1 : 0;
  if (c.emb) need = std::max(need, job.left);
  return need;
}

BranchRunner::BranchRunner(Context& ctx, MambaModel& model, BranchConfig config)
    : ctx_(ctx), model_(model), config_(config) {
  config_.max_rows = std::max<int64_t>(2, config_.max_rows);
}

void BranchRunner::add(StrandJob* job, const ContigTokens& seq, BranchStart start) {
  if (start.start > job->pos) throw std::logic_error("branch rows start after their allele");
  Task t;
  t.job = job;
  t.allele_at = job->pos - start.start;
  t.emb_from = t.allele_at - job->left;
  const int64_t m = static_cast<int64_t>(job->ref.size());
  auto build = [&](const std::vector<uint8_t>& allele) {
    std::vector<uint8_t> row(static_cast<size_t>(t.allele_at + static_cast<int64_t>(allele.size()) + job->right));
    seq.strand_slice(job->strand, start.start, job->pos, row.data());
    std::copy(allele.begin(), allele.end(), row.begin() + t.allele_at);
    seq.strand_slice(job->strand, job->pos + m, job->pos + m + job->right,
                     row.data() + t.allele_at + static_cast<int64_t>(allele.size()));
    return row;
  };
  t.ref_row = build(job->ref);
  t.alt_row = build(job->alt);
  t.start = std::move(start);
  const auto longest = static_cast<int64_t>(std::max(t.ref_row.size(), t.alt_row.size()));
  // Run what is queued first when this job would make the pass too large.
  const int64_t rows = 2 * static_cast<int64_t>(tasks_.size() + 1);
  if (!tasks_.empty() && (rows > config_.max_rows || rows * std::max(longest_, longest) > config_.max_tokens)) flush();
  longest_ = std::max(longest_, longest);
  tasks_.push_back(std::move(t));
}

void BranchRunner::load_states(const StreamState& batch) {
  const auto n = static_cast<int64_t>(tasks_.size());
  // Fast path: task j starts from row j of one shared state (window mode's prefix pass):
  // rows 2j and 2j+1 <- row j is two strided copies per tensor.
  const StreamState* shared = tasks_.front().start.state.get();
  bool one_source = shared != nullptr && shared->batch == n;
  for (int64_t j = 0; j < n && one_source; ++j) {
    const Task& t = tasks_[static_cast<size_t>(j)];
    one_source = t.start.state.get() == shared && t.start.row == j;
  }
  auto duplicate_rows = [&](const Tensor& src, const Tensor& dst) {
    const int64_t per_row = src.numel() / n;
    const Tensor s = src.reshape({n, 1, per_row});
    const Tensor pairs = dst.reshape({n, 2, per_row});
    for (int parity = 0; parity < 2; ++parity) {
      Tensor view = pairs.narrow(1, parity, 1);
      ops::copy(ctx_, s, view);
    }
  };
  auto copy_row = [&](const Tensor& src, int64_t src_row, const Tensor& dst, int64_t dst_row) {
    Tensor view = dst.narrow(0, dst_row, 1);
    ops::copy(ctx_, src.narrow(0, src_row, 1), view);
  };
  for (size_t layer = 0; layer < batch.conv.size(); ++layer) {
    if (one_source) {
      duplicate_rows(shared->conv[layer], batch.conv[layer]);
      duplicate_rows(shared->ssm[layer], batch.ssm[layer]);
      continue;
    }
    for (int64_t j = 0; j < n; ++j) {
      const Task& t = tasks_[static_cast<size_t>(j)];
      if (!t.start.state) continue;  // fresh: the zeroed rows are right
      for (int64_t r = 2 * j; r < 2 * j + 2; ++r) {
        copy_row(t.start.state->conv[layer], t.start.row, batch.conv[layer], r);
        copy_row(t.start.state->ssm[layer], t.start.row, batch.ssm[layer], r);
      }
    }
  }
}

void BranchRunner::flush() {
  if (tasks_.empty()) return;
  const auto n = static_cast<int64_t>(tasks_.size());
  const int64_t rows = 2 * n;
  int64_t length = 1;
  for (const auto& t : tasks_) {
    length = std::max<int64_t>(length, static_cast<int64_t>(std::max(t.ref_row.size(), t.alt_row.size())));
  }
  std::vector<uint8_t> tokens(static_cast<size_t>(rows * length), token::kPad);
  for (int64_t j = 0; j < n; ++j) {
    const Task& t = tasks_[static_cast<size_t>(j)];
    std::copy(t.ref_row.begin(), t.ref_row.end(), tokens.begin() + 2 * j * length);
    std::copy(t.alt_row.begin(), t.alt_row.end(), tokens.begin() + (2 * j + 1) * length);
  }

  StreamState state = model_.new_stream_state(ctx_, rows);
  load_states(state);

  const bool want_losses = config_.dll || config_.llr;
  ForwardRequest req;
  req.tokens = upload_u8(ctx_, tokens, {rows, length});
  req.state = &state;
  req.want_logits = want_losses;
  if (config_.emb) req.capture = {config_.layer};
  ForwardOutput out = model_.forward(ctx_, req);

  if (want_losses) {
    // targets[i] = token i + 1 of the same row; the last position has none (PAD weighs 0).
    std::vector<uint8_t> targets(tokens.size(), token::kPad);
    for (int64_t r = 0; r < rows; ++r) {
      std::copy(tokens.begin() + r * length + 1, tokens.begin() + (r + 1) * length, targets.begin() + r * length);
    }
    const Tensor targets_dev = upload_u8(ctx_, targets, {rows * length});
    Tensor losses = ctx_.empty({rows * length}, DType::F32);
    ops::cross_entropy(ctx_, out.logits, targets_dev, nullptr, 1.f, 1.f, losses, nullptr);
    std::vector<float> host;
    copy_to_host(ctx_, losses, host);
    for (int64_t j = 0; j < n; ++j) {
      const Task& t = tasks_[static_cast<size_t>(j)];
      const float* ref_loss = host.data() + 2 * j * length;
      const float* alt_loss = host.data() + (2 * j + 1) * length;
      // Loss i predicts token i + 1: tokens [allele_at, end) are losses [allele_at - 1, end - 1).
      if (config_.dll && t.job->dll) {
        const double ll_ref = log_likelihood(ref_loss, t.allele_at - 1, static_cast<int64_t>(t.ref_row.size()) - 1);
        const double ll_alt = log_likelihood(alt_loss, t.allele_at - 1, static_cast<int64_t>(t.alt_row.size()) - 1);
        t.job->dll_value = ll_alt - ll_ref;
      }
      if (config_.llr && t.job->llr && t.allele_at >= 1) {
        t.job->llr_value = static_cast<double>(ref_loss[t.allele_at - 1]) - alt_loss[t.allele_at - 1];
      }
    }
  }

  if (config_.emb) {
    const int64_t d = model_.config().d_model;
    std::vector<float> mask(static_cast<size_t>(rows * length), 0.f);
    for (int64_t j = 0; j < n; ++j) {
      const Task& t = tasks_[static_cast<size_t>(j)];
      std::fill(mask.begin() + 2 * j * length + t.emb_from,
                mask.begin() + 2 * j * length + static_cast<int64_t>(t.ref_row.size()), 1.f);
      std::fill(mask.begin() + (2 * j + 1) * length + t.emb_from,
                mask.begin() + (2 * j + 1) * length + static_cast<int64_t>(t.alt_row.size()), 1.f);
    }
    const Tensor mask_dev = upload_f32(ctx_, mask, {rows, length});
    Tensor sums = ctx_.empty({rows, d}, DType::F32);
    // sums[r] = mask[r] (1 x L) @ captured[r] (L x d)
    ops::gemm(ctx_, false, false, 1, d, length, 1.f, mask_dev, length, length, out.captured[0], d, length * d, 0.f,
              sums, d, d, rows);
    std::vector<float> host;
    copy_to_host(ctx_, sums, host);
    for (int64_t j = 0; j < n; ++j) {
      const Task& t = tasks_[static_cast<size_t>(j)];
      if (t.job->emb) t.job->emb_value = cosine_distance(host.data() + 2 * j * d, host.data() + (2 * j + 1) * d, d);
    }
  }
  rows_run_ += rows;
  tokens_run_ += rows * length;
  tasks_.clear();
  longest_ = 0;
}

}  // namespace gm
