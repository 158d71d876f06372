// Whole-model benchmark at the language-model configurations of PEERS.md: training
// tokens/s (forward, loss, backward, AdamW), peak device memory (the allocator's
// high-water mark, as torch.cuda.max_memory_allocated reports for the peer, with the
// device's total use from cudaMemGetInfo beside it) and inference tokens/s (forward
// with logits). Random A/C/G/T tokens; medians of timed steps after warm-up. The
// allocator's cached blocks are handed back before each row, so "device used" is that
// row's own footprint (parameters, optimizer state, cached activation blocks).
// Rows with a memory budget train under it (TrainOptions::memory_budget: the model
// recomputes as few layers as fit); the others let the model plan against the device's
// free memory. The "recomputed" column says how many layers the plan recomputed, and how
// many it kept whole (TrainOptions::keep: nothing recomputed in their backward).
//
// Usage: bench_model [--device cuda] [--precision bf16|fp32] [--steps N] [--only ROW]
//        [--profile ROW]   (one training step of ROW when it trains, then one inference forward,
//                          every op timed, synchronised)
//        [--keep plan|none] (none: no layer kept whole, whatever memory is left; to measure
//                          what keeping buys)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "mamba/batch.h"
#include "mamba/context.h"
#include "mamba/model.h"
#include "mamba/optim.h"
#ifdef GENOMAMBA_HAVE_CUDA
#include "mamba/cuda/context_cuda.h"
#endif

namespace {

struct Row {
  int64_t d_model, n_layer, batch, length;
  double peer_train, peer_mem_gib, peer_infer;  // M tok/s, GiB, M tok/s (0: not measured)
  bool train;
  double budget_gib;  // training memory budget beyond the model's own buffers; 0 = device's free memory
};

// PEERS.md, H200, mamba_ssm fast path (the long rows: "Longer single sequences").
const Row kRows[] = {
    {256, 8, 8, 131072, 1.81, 47.4, 8.72, true, 0},
    {256, 8, 1, 1048576, 1.40, 47.4, 8.21, true, 0},
    {256, 8, 1, 1048576, 1.40, 47.4, 8.21, true, 23},
    {512, 16, 4, 32768, 0.47, 21.3, 2.02, true, 0},
    {256, 8, 1, 1000000, 0, 0, 4.17, false, 0},
    {256, 8, 8, 131000, 0, 0, 5.87, false, 0},
    {256, 8, 1, 4194304, 0, 0, 0, true, 0},
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

double gib(size_t bytes) { return static_cast<double>(bytes) / (1024.0 * 1024.0 * 1024.0); }

size_t device_used(gm::Context& ctx) {
#ifdef GENOMAMBA_HAVE_CUDA
  if (ctx.device().is_cuda()) {
    size_t free_b = 0, total_b = 0;
    gm::cuda::as_cuda(ctx).mem_info(free_b, total_b);
    return total_b - free_b;
  }
#endif
  (void)ctx;
  return 0;
}

void release_cached(gm::Context& ctx) {
#ifdef GENOMAMBA_HAVE_CUDA
  if (ctx.device().is_cuda()) gm::cuda::as_cuda(ctx).cuda_allocator().release_cached();
#endif
  (void)ctx;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void print_profile(const gm::OpProfile& p) {
  double total = 0;
  for (const auto& [name, s] : p.seconds) total += s;
  std::vector<std::pair<double, std::string>> rows;
  for (const auto& [name, s] : p.seconds) rows.emplace_back(s, name);
  std::sort(rows.rbegin(), rows.rend());
  std::printf("\n| op | calls | ms | share |\n|---|---|---|---|\n");
  for (const auto& [s, name] : rows)
    std::printf("| %s | %lld | %.2f | %.1f%% |\n", name.c_str(), static_cast<long long>(p.calls.at(name)), s * 1e3,
                100.0 * s / total);
  std::printf("| all | | %.2f | |\n", total * 1e3);
}

}  // namespace

int main(int argc, char** argv) {
  std::string device = "cuda", precision = "bf16";
  int steps = 5, only = -1, profile = -1;
  bool keep = true;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--device") device = v;
    else if (k == "--precision") precision = v;
    else if (k == "--steps") steps = std::stoi(v);
    else if (k == "--only") only = std::stoi(v);
    else if (k == "--profile") profile = std::stoi(v);
    else if (k == "--keep" && (v == "plan" || v == "none")) keep = v == "plan";
    else {
      std::fprintf(stderr, "bench_model: unknown option %s\n", k.c_str());
      return 1;
    }
  }
  auto ctx = gm::Context::create(gm::Device::parse(device), 0, gm::parse_precision(precision));
  std::printf("| d_model x layers | batch x L | budget | recomputed | train tok/s | ratio | peak alloc GiB (device used) "
              "| peer GiB | inference tok/s | ratio |\n|---|---|---|---|---|---|---|---|---|---|\n");
  const int n_rows = static_cast<int>(sizeof kRows / sizeof kRows[0]);
  for (int index = 0; index < n_rows; ++index) {
    const Row& row = kRows[index];
    if (only >= 0 && index != only) continue;
    if (profile >= 0 && index != profile) continue;
    release_cached(*ctx);
    gm::ModelConfig cfg;
    cfg.d_model = row.d_model;
    cfg.n_layer = row.n_layer;
    std::mt19937 rng(1234);
    std::vector<uint8_t> windows(static_cast<size_t>(row.batch * (row.length + 1)));
    for (auto& t : windows) t = static_cast<uint8_t>(7 + rng() % 4);
    const auto host = gm::NextTokenBatch::from_windows(windows, {}, row.batch, row.length + 1);
    const double tokens = static_cast<double>(row.batch * row.length);
    // Rows of millions of tokens per step take seconds a step: fewer repeats.
    const bool heavy = tokens > 2e6;
    const int timed = heavy ? std::max(1, steps / 2) : steps, warm = heavy ? 1 : 2;
    double train_tps = 0, peak = 0, used = 0, infer_tps = 0;
    int recomputed = 0, kept = 0;
    try {
      gm::MambaModel model(*ctx, cfg);
      model.init_weights(*ctx, 0);
      const auto inputs = host.upload(*ctx, 1.f);
      const float scale = static_cast<float>(1.0 / host.weight_sum(1.f));
      gm::TrainOptions opt;
      opt.memory_budget = static_cast<int64_t>(row.budget_gib * 1024.0 * 1024.0 * 1024.0);
      std::unique_ptr<gm::AdamW> adamw;
      if (row.train) {
        adamw = std::make_unique<gm::AdamW>(*ctx, model.params(), gm::AdamWConfig{});
        const gm::StepPlan plan = model.plan_step(*ctx, row.batch, row.length, opt);
        recomputed = static_cast<int>(std::count(plan.recompute.begin(), plan.recompute.end(), true));
        kept = static_cast<int>(std::count(plan.keep.begin(), plan.keep.end(), true));
        opt.recompute = plan.recompute;  // the same plan every step
        opt.keep = keep ? plan.keep : std::vector<bool>(plan.keep.size(), false);
        if (!keep) kept = 0;
        if (profile >= 0) {
          model.params().zero_grads(*ctx);
          model.forward_backward(*ctx, inputs, scale, opt);  // warm-up
          gm::OpProfile prof;
          ctx->profile = &prof;
          model.params().zero_grads(*ctx);
          model.forward_backward(*ctx, inputs, scale, opt);
          adamw->step(*ctx, 1e-3);
          ctx->profile = nullptr;
          std::printf("profile of one training step, row %d (d%lld x %lld, %lld x %lld, %d recomputed, %d kept):\n", index,
                      (long long)row.d_model, (long long)row.n_layer, (long long)row.batch, (long long)row.length,
                      recomputed, kept);
          print_profile(prof);
          std::printf("\n");
        }
      }
      if (profile >= 0) {
        gm::OpProfile iprof;
        gm::ForwardRequest ireq;
        ireq.tokens = inputs.tokens;
        model.forward(*ctx, ireq);  // warm-up
        ctx->profile = &iprof;
        model.forward(*ctx, ireq);
        ctx->profile = nullptr;
        std::printf("profile of one inference forward (logits), row %d (d%lld x %lld, %lld x %lld):\n", index,
                    (long long)row.d_model, (long long)row.n_layer, (long long)row.batch, (long long)row.length);
        print_profile(iprof);
        return 0;
      }
      if (row.train) {
        ctx->allocator().reset_peak();
        std::vector<double> times;
        for (int s = 0; s < timed + warm; ++s) {
          ctx->synchronize();
          const auto t0 = std::chrono::steady_clock::now();
          model.params().zero_grads(*ctx);
          model.forward_backward(*ctx, inputs, scale, opt);
          adamw->step(*ctx, 1e-3);
          ctx->synchronize();
          if (s >= warm) times.push_back(seconds_since(t0));
        }
        train_tps = tokens / median(times);
        peak = gib(ctx->allocator().peak_bytes());
        used = gib(device_used(*ctx));
      }
      gm::ForwardRequest req;
      req.tokens = inputs.tokens;
      std::vector<double> times;
      for (int s = 0; s < timed + warm; ++s) {
        ctx->synchronize();
        const auto t0 = std::chrono::steady_clock::now();
        model.forward(*ctx, req);
        ctx->synchronize();
        if (s >= warm) times.push_back(seconds_since(t0));
      }
      infer_tps = tokens / median(times);
    } catch (const std::exception& e) {
      std::printf("| d%lld x %lld | %lld x %lld | failed: %s |\n", (long long)row.d_model, (long long)row.n_layer,
                  (long long)row.batch, (long long)row.length, e.what());
      std::fflush(stdout);
      continue;
    }
    char budget[32] = "free", rec[32] = "-", train_cell[64] = "-", ratio_t[32] = "-", mem_cell[64] = "-",
         peer_mem[32] = "-", ratio_i[32] = "-";
    if (row.budget_gib > 0) std::snprintf(budget, sizeof budget, "%.0f GiB", row.budget_gib);
    if (row.train) {
      std::snprintf(rec, sizeof rec, "%d of %lld (%d kept)", recomputed, (long long)row.n_layer, kept);
      std::snprintf(train_cell, sizeof train_cell, "%.3f M", train_tps / 1e6);
      if (row.peer_train > 0) std::snprintf(ratio_t, sizeof ratio_t, "%.2f", train_tps / 1e6 / row.peer_train);
      std::snprintf(mem_cell, sizeof mem_cell, "%.1f (%.1f)", peak, used);
      if (row.peer_mem_gib > 0) std::snprintf(peer_mem, sizeof peer_mem, "%.1f", row.peer_mem_gib);
    } else {
      std::snprintf(budget, sizeof budget, "-");
    }
    if (row.peer_infer > 0) std::snprintf(ratio_i, sizeof ratio_i, "%.2f", infer_tps / 1e6 / row.peer_infer);
    std::printf("| d%lld x %lld | %lld x %lld | %s | %s | %s | %s | %s | %s | %.3f M | %s |\n", (long long)row.d_model,
                (long long)row.n_layer, (long long)row.batch, (long long)row.length, budget, rec, train_cell, ratio_t,
                mem_cell, peer_mem, infer_tps / 1e6, ratio_i);
    std::fflush(stdout);
  }
  return 0;
}
