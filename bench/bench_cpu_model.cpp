// CPU model benchmark: training and inference tokens/s of a small Mamba LM on the CPU
// reference backend, with the share of time in matrix products, the selective scan
// and everything else, and OpenBLAS's sgemm rate measured in the same run for scale.
//
// Usage: bench_cpu_model [--threads N] [--d-model D] [--n-layer L] [--seq-len T]
//                        [--batch B] [--steps S]
// Defaults: d_model 128, 4 layers, 1 x 4096 tokens, 2 threads (issue: CPU speed).
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "mamba/batch.h"
#include "mamba/context.h"
#include "mamba/model.h"
#include "mamba/ops.h"
#include "mamba/optim.h"

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

struct Args {
  int threads = 2;
  int64_t d_model = 128, n_layer = 4, seq_len = 4096, batch = 1, steps = 5;
};

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i];
    const int64_t v = std::atoll(argv[i + 1]);
    if (k == "--threads") a.threads = static_cast<int>(v);
    else if (k == "--d-model") a.d_model = v;
    else if (k == "--n-layer") a.n_layer = v;
    else if (k == "--seq-len") a.seq_len = v;
    else if (k == "--batch") a.batch = v;
    else if (k == "--steps") a.steps = v;
    else {
      std::fprintf(stderr, "bench_cpu_model: unknown option %s\n", k.c_str());
      std::exit(1);
    }
  }
  return a;
}

// sgemm rate (GFLOP/s) at the shape of the model's in_proj for one row of tokens.
double sgemm_gflops(gm::Context& ctx, int64_t M, int64_t N, int64_t K) {
  auto A = ctx.empty({M, K}, gm::DType::F32), B = ctx.empty({N, K}, gm::DType::F32), C = ctx.empty({M, N}, gm::DType::F32);
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> u(-1, 1);
  for (auto* t : {&A, &B}) for (int64_t i = 0; i < t->numel(); ++i) t->data<float>()[i] = u(rng);
  gm::ops::gemm(ctx, false, true, M, N, K, 1.f, A, K, 0, B, K, 0, 0.f, C, N, 0, 1);
  int reps = 0;
  const auto t0 = Clock::now();
  while (seconds_since(t0) < 1.0) {
    gm::ops::gemm(ctx, false, true, M, N, K, 1.f, A, K, 0, B, K, 0, 0.f, C, N, 0, 1);
    ++reps;
  }
  return 2.0 * M * N * K * reps / seconds_since(t0) / 1e9;
}

void print_split(const char* what, const gm::OpProfile& p, double total) {
  double gemm = 0, scan = 0;
  for (const auto& [name, s] : p.seconds) {
    if (name.rfind("gemm", 0) == 0) gemm += s;  // keyed "gemm MxNxK ..." per shape
    else if (name.rfind("selective_scan", 0) == 0) scan += s;
  }
  const double rest = total - gemm - scan;
  std::printf("| %s time split | matmul %.0f%% | scan %.0f%% | rest %.0f%% |\n", what, 100 * gemm / total,
              100 * scan / total, 100 * rest / total);
}

}  // namespace

int main(int argc, char** argv) {
  const Args a = parse(argc, argv);
  gm::CpuContext ctx(a.threads);
  gm::ModelConfig cfg;
  cfg.d_model = a.d_model;
  cfg.n_layer = a.n_layer;
  gm::MambaModel model(ctx, cfg);
  model.init_weights(ctx, 0);
  gm::AdamW opt(ctx, model.params(), {});

  std::mt19937 rng(42);
  std::vector<uint8_t> windows(static_cast<size_t>(a.batch * (a.seq_len + 1)));
  for (auto& t : windows) t = static_cast<uint8_t>(7 + rng() % 4);
  const auto host = gm::NextTokenBatch::from_windows(windows, {}, a.batch, a.seq_len + 1);
  const auto inputs = host.upload(ctx, 1.f);
  const float scale = static_cast<float>(1.0 / host.weight_sum(1.f));
  const double tokens = static_cast<double>(a.batch * a.seq_len);

  // Warm-up, then timed training steps (forward, loss, backward, AdamW).
  model.params().zero_grads(ctx);
  model.forward_backward(ctx, inputs, scale);
  opt.step(ctx, 1e-3);
  gm::OpProfile train_profile;
  double train_s = 0;
  for (int64_t s = 0; s < a.steps; ++s) {
    const auto t0 = Clock::now();
    model.params().zero_grads(ctx);
    model.forward_backward(ctx, inputs, scale);
    opt.step(ctx, 1e-3);
    train_s += seconds_since(t0);
  }
  ctx.profile = &train_profile;
  const auto tp = Clock::now();
  model.params().zero_grads(ctx);
  model.forward_backward(ctx, inputs, scale);
  opt.step(ctx, 1e-3);
  const double train_profiled = seconds_since(tp);
  ctx.profile = nullptr;

  gm::ForwardRequest req;
  req.tokens = inputs.tokens;
  model.forward(ctx, req);
  double infer_s = 0;
  for (int64_t s = 0; s < a.steps; ++s) {
    const auto t0 = Clock::now();
    model.forward(ctx, req);
    infer_s += seconds_since(t0);
  }
  gm::OpProfile infer_profile;
  ctx.profile = &infer_profile;
  const auto ti = Clock::now();
  model.forward(ctx, req);
  const double infer_profiled = seconds_since(ti);
  ctx.profile = nullptr;

  const double gflops = sgemm_gflops(ctx, 2 * cfg.d_inner(), a.seq_len, cfg.d_model);
  std::printf("| model | threads | batch x L | train tokens/s | inference tokens/s | OpenBLAS sgemm GFLOP/s |\n");
  std::printf("|---|---|---|---|---|---|\n");
  std::printf("| d%lld x %lld | %d | %lld x %lld | %.0f | %.0f | %.1f |\n", (long long)a.d_model, (long long)a.n_layer,
              a.threads, (long long)a.batch, (long long)a.seq_len, tokens * a.steps / train_s,
              tokens * a.steps / infer_s, gflops);
  print_split("train", train_profile, train_profiled);
  print_split("inference", infer_profile, infer_profiled);
  return 0;
}
