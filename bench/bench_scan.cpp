// Times the CUDA selective scan at the four shapes of PEERS.md with the peer's signature
// (u, delta, z, B, C bf16; A, D, delta_bias f32; softplus on; z on; B, C input-dependent
// [batch, d_state, L]), and at two lengths that are not multiples of the chunk (rows 5, 6:
// the token counts of rows 1, 2 rounded down to 1,000,000 and 8 x 131,000): forward, and
// forward + backward (saved chunk states, every gradient), for every scan variant. Times
// are medians of CUDA-event-timed repeats after warm-up. Inputs are random (tiled from a
// random pool; each input set is gigabytes, far beyond the 60 MB L2, so no rotation is
// needed). Bandwidth is the forward's fewest bytes (read u, delta, z, B, C once, write y
// once) over its time; the ceiling is a measured device-to-device copy. "per 2^20 tok" =
// time scaled to 1,048,576 tokens (batch x L), to compare rows 5, 6 with rows 1, 2.
// Usage: bench_scan [repeats] [row] [variant] [flow MiB]   (row 1..6: one shape only;
// variant: its name, only that one; flow MiB: the backward's flow budget instead of the
// context's default (Context::scan_flow_budget); repeats 0: one untimed forward +
// backward per variant, for a profiler; prints a Markdown table)
//        bench_scan [repeats] crossover   (forward only, chunked vs serial kernels, at
// ~2^20 tokens of 512 channels from 1 x 2^20 to 64 x 2^14, and at the model's d512
// training shape 4 x 1024 x 32,768 and row 4: where the default's forward switches kernels)
//        bench_scan [repeats] layout   (default variant at 8 x 512 x L with the rows of every
// [batch, rows, L] tensor a given pitch apart: what a length costs from its rows' alignment)
//        bench_scan [repeats] states   (the backward with and without `saved` at the four
// PEERS.md shapes: the time of the forward's states-only pass)
#include <cstdio>
#include <cstdlib>

#ifndef GENOMAMBA_HAVE_CUDA
int main() {
  std::printf("bench_scan: built without the CUDA backend\n");
  return 0;
}
#else
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <iterator>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "mamba/context.h"
#include "mamba/cuda/context_cuda.h"
#include "mamba/cuda/scan_variants.h"
#include "mamba/ops.h"

namespace {

using gm::DType;
using gm::Tensor;

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(e));
}

struct Shape {
  int64_t B, D, N, L;
  double peer_fwd_ms, peer_fwdbwd_ms;  // 0: no peer figure
};

std::string ms_or_dash(double ms, const char* fmt) {
  if (ms <= 0) return "-";
  char buf[32];
  std::snprintf(buf, sizeof buf, fmt, ms);
  return buf;
}

// Fills a device bf16 / f32 tensor by tiling a random host pool (odd offsets per tensor).
class RandomFill {
 public:
  explicit RandomFill(gm::cuda::CudaContext& c) : c_(c) {}
  void normal(Tensor& t, float mean, float stddev) { fill(t, [&](std::mt19937& r) {
    return std::normal_distribution<float>(mean, stddev)(r); }); }
  void uniform(Tensor& t, float lo, float hi) { fill(t, [&](std::mt19937& r) {
    return std::uniform_real_distribution<float>(lo, hi)(r); }); }

 private:
  template <class Draw>
  void fill(Tensor& t, Draw draw) {
    const size_t es = gm::dtype_size(t.dtype());
    const int64_t pool_n = std::min<int64_t>(t.numel(), int64_t(1) << 22);
    std::vector<unsigned char> pool(pool_n * es);
    for (int64_t i = 0; i < pool_n; ++i) {
      const float v = draw(rng_);
      if (t.dtype() == DType::BF16) {
        const gm::bf16 b(v);
        std::memcpy(pool.data() + i * es, &b.bits, 2);
      } else {
        std::memcpy(pool.data() + i * es, &v, 4);
      }
    }
    char* dst = static_cast<char*>(t.raw());
    for (int64_t off = 0; off < t.numel(); off += pool_n) {
      const int64_t n = std::min(pool_n, t.numel() - off);
      check(cudaMemcpy(dst + off * es, pool.data(), n * es, cudaMemcpyHostToDevice), "upload");
    }
  }
  gm::cuda::CudaContext& c_;
  std::mt19937 rng_{12345};
};

template <class Fn>
double median_ms(cudaStream_t s, int warmup, int repeats, Fn fn) {
  cudaEvent_t a, b;
  check(cudaEventCreate(&a), "event");
  check(cudaEventCreate(&b), "event");
  for (int i = 0; i < warmup; ++i) fn();
  std::vector<float> ms;
  for (int i = 0; i < repeats; ++i) {
    check(cudaEventRecord(a, s), "record");
    fn();
    check(cudaEventRecord(b, s), "record");
    check(cudaEventSynchronize(b), "sync");
    float t = 0;
    check(cudaEventElapsedTime(&t, a, b), "elapsed");
    ms.push_back(t);
  }
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

// Device-to-device copy bandwidth (bytes read + written per second) over 4 GiB.
double copy_bandwidth(gm::Context& ctx, cudaStream_t s) {
  const int64_t n = int64_t(1) << 31;
  Tensor src = ctx.empty({n}, DType::BF16), dst = ctx.empty({n}, DType::BF16);
  check(cudaMemsetAsync(src.raw(), 1, src.nbytes(), s), "memset");
  const double ms = median_ms(s, 2, 10, [&] {
    check(cudaMemcpyAsync(dst.raw(), src.raw(), src.nbytes(), cudaMemcpyDeviceToDevice, s), "copy");
  });
  return 2.0 * static_cast<double>(src.nbytes()) / (ms * 1e-3);
}

struct ScanSet {
  Tensor u, delta, z, B, C, A, Dskip, bias, out, saved;
  // The op's view of the tensors (pointers into this set: take it from the set in place).
  gm::ScanInputs inputs() {
    gm::ScanInputs in;
    in.u = &u;
    in.delta = &delta;
    in.A = &A;
    in.B = &B;
    in.C = &C;
    in.Dskip = &Dskip;
    in.z = &z;
    in.delta_bias = &bias;
    in.delta_softplus = true;
    return in;
  }
};

// Random inputs with the peer's signature (bf16 activations, softplus, z, D, bias). Every
// [B, rows, L] tensor is a view of rows `pitch` elements apart (0: L, packed); the whole
// buffer is filled before the view is taken, so that every row of the view is random.
ScanSet make_set(gm::Context& ctx, RandomFill& rnd, int64_t B, int64_t D, int64_t N, int64_t L, int64_t pitch = 0) {
  const int64_t P = pitch > 0 ? pitch : L;
  auto rows = [&](int64_t r) { return ctx.empty({B, r, P}, DType::BF16); };
  auto view = [&](const Tensor& t) { return t.narrow(2, 0, L); };
  ScanSet s;
  s.u = rows(D);
  s.delta = rows(D);
  s.z = rows(D);
  s.B = rows(N);
  s.C = rows(N);
  s.A = ctx.empty({D, N}, DType::F32);
  s.Dskip = ctx.empty({D}, DType::F32);
  s.bias = ctx.empty({D}, DType::F32);
  rnd.normal(s.u, 0.f, 1.f);
  rnd.uniform(s.delta, -1.f, 1.f);
  rnd.uniform(s.z, -3.f, 3.f);
  rnd.normal(s.B, 0.f, 1.f);
  rnd.normal(s.C, 0.f, 1.f);
  rnd.uniform(s.Dskip, 0.5f, 1.5f);
  rnd.uniform(s.bias, -6.9f, -2.25f);  // softplus^-1 of dt in [1e-3, 0.1]
  std::vector<float> a(D * N);
  for (int64_t i = 0; i < D * N; ++i) a[i] = -static_cast<float>(i % N + 1);
  check(cudaMemcpy(s.A.raw(), a.data(), a.size() * 4, cudaMemcpyHostToDevice), "A");
  for (Tensor* t : {&s.u, &s.delta, &s.z, &s.B, &s.C}) *t = view(*t);
  s.out = view(rows(D));
  s.saved = ctx.empty({gm::cuda::selective_scan_saved_numel(ctx, B, D, L, N)}, DType::F32);
  return s;
}

// A random dout and the backward's outputs for make_set's shapes (same row pitch).
struct GradSet {
  Tensor dout, du, ddelta, dz, dB, dC, dA, dD, dbias;
  // The op's view of the outputs (pointers into this set: take it from the set in place).
  gm::ScanGrads grads() { return gm::ScanGrads{&du, &ddelta, &dA, &dB, &dC, &dD, &dz, &dbias, nullptr}; }
};

GradSet make_grads(gm::Context& ctx, RandomFill& rnd, int64_t B, int64_t D, int64_t N, int64_t L,
                   int64_t pitch = 0) {
  const int64_t P = pitch > 0 ? pitch : L;
  auto view = [&](int64_t r) { return ctx.empty({B, r, P}, DType::BF16).narrow(2, 0, L); };
  GradSet g;
  g.dout = ctx.empty({B, D, P}, DType::BF16);
  rnd.normal(g.dout, 0.f, 1.f);
  g.dout = g.dout.narrow(2, 0, L);
  g.du = view(D);
  g.ddelta = view(D);
  g.dz = view(D);
  g.dB = view(N);
  g.dC = view(N);
  g.dA = ctx.empty({D, N}, DType::F32);
  g.dD = ctx.empty({D}, DType::F32);
  g.dbias = ctx.empty({D}, DType::F32);
  return g;
}

// Forward and forward + backward (default variant) at 8 x 512 x L with every [B, rows, L]
// tensor a view of rows `pitch` elements apart: whether a length's cost per token comes from
// the row alignment (pitch * 2 bytes modulo 32 / 128) or from the length itself.
void layouts(gm::Context& ctx, cudaStream_t s, RandomFill& rnd, int repeats) {
  struct Layout {
    int64_t L, pitch;
  };
  const Layout layouts[] = {{131072, 131072}, {131000, 131000}, {131000, 131072}, {131000, 131008},
                            {131000, 131056}, {131072, 131080}, {131072, 131136}};
  const int64_t B = 8, D = 512, N = 16;
  std::printf("\n| L | row pitch (elements) | row start mod 32 B | fwd ms | fwd+bwd ms | "
              "fwd, fwd+bwd per 2^20 tok |\n");
  std::printf("|---|---|---|---|---|---|\n");
  for (const Layout& lay : layouts) {
    ScanSet set = make_set(ctx, rnd, B, D, N, lay.L, lay.pitch);
    GradSet gs = make_grads(ctx, rnd, B, D, N, lay.L, lay.pitch);
    const gm::ScanInputs in = set.inputs();
    const gm::ScanGrads g = gs.grads();
    const auto v = gm::cuda::ScanVariant::kDefault;
    auto fwd = [&] { gm::cuda::selective_scan_fwd_variant(ctx, v, in, set.out, nullptr, &set.saved); };
    auto fwdbwd = [&] {
      fwd();
      gm::cuda::selective_scan_bwd_variant(ctx, v, in, &set.saved, gs.dout, g);
    };
    const double f_ms = median_ms(s, 2, repeats, fwd);
    const double fb_ms = median_ms(s, 1, std::max(3, repeats / 2), fwdbwd);
    const double per = static_cast<double>(1 << 20) / static_cast<double>(B * lay.L);
    std::printf("| %lld | %lld | %lld (odd rows) | %.2f | %.2f | %.2f, %.2f |\n", static_cast<long long>(lay.L),
                static_cast<long long>(lay.pitch), static_cast<long long>((lay.pitch * 2) % 32), f_ms, fb_ms,
                f_ms * per, fb_ms * per);
    std::fflush(stdout);
  }
}

// The backward with and without the forward's `saved` (default variant): without it the
// backward first recomputes the chunk-start states with the default forward's states-only
// pass, so the difference times that pass (the serial kernel's states-only walk where the
// default forward is serial, the segmented forward's two states-only walks where it is
// segmented, the chunk summaries + combine where it is chunked).
void states_pass(gm::Context& ctx, cudaStream_t s, RandomFill& rnd, int repeats) {
  struct Dims {
    int64_t B, D, L;
  };
  const Dims dims[] = {{1, 512, 1 << 20}, {8, 512, 1 << 17}, {64, 512, 1 << 14}, {8, 1536, 1 << 15}};
  std::printf("\n| batch | d_inner | L | bwd ms (saved given) | bwd ms (states recomputed) | difference ms |\n");
  std::printf("|---|---|---|---|---|---|\n");
  for (const Dims& d : dims) {
    const int64_t N = 16;
    ScanSet set = make_set(ctx, rnd, d.B, d.D, N, d.L);
    GradSet gs = make_grads(ctx, rnd, d.B, d.D, N, d.L);
    const gm::ScanInputs in = set.inputs();
    const gm::ScanGrads g = gs.grads();
    const Tensor& dout = gs.dout;
    const auto v = gm::cuda::ScanVariant::kDefault;
    gm::cuda::selective_scan_fwd_variant(ctx, v, in, set.out, nullptr, &set.saved);
    const double with =
        median_ms(s, 1, repeats, [&] { gm::cuda::selective_scan_bwd_variant(ctx, v, in, &set.saved, dout, g); });
    const double without =
        median_ms(s, 1, repeats, [&] { gm::cuda::selective_scan_bwd_variant(ctx, v, in, nullptr, dout, g); });
    std::printf("| %lld | %lld | %lld | %.2f | %.2f | %.2f |\n", static_cast<long long>(d.B),
                static_cast<long long>(d.D), static_cast<long long>(d.L), with, without, without - with);
    std::fflush(stdout);
  }
}

// Forward times (saved written) of the chunked and serial kernels and the default, by
// batch x channels: the measurement behind default_fwd_is_serial.
void crossover(gm::Context& ctx, cudaStream_t s, RandomFill& rnd, int repeats) {
  using gm::cuda::ScanVariant;
  const ScanVariant vs[] = {ScanVariant::kLeanBackward, ScanVariant::kSerial16, ScanVariant::kSerial8,
                            ScanVariant::kSerial4,      ScanVariant::kSerial2,  ScanVariant::kSerial1,
                            ScanVariant::kDefault};
  struct Dims {
    int64_t B, D, L;
  };
  // 2^20 tokens (rounded to a multiple of 8 steps where the batch is not a power of 2, so
  // that rows stay 16-byte aligned) of 512 channels, then the d512 and row-4 shapes.
  const Dims dims[] = {{1, 512, 1 << 20},  {2, 512, 1 << 19},  {4, 512, 1 << 18},  {6, 512, 174760},
                       {8, 512, 1 << 17},  {10, 512, 104856},  {12, 512, 87384},   {16, 512, 1 << 16},
                       {20, 512, 52424},   {32, 512, 1 << 15}, {64, 512, 1 << 14}, {4, 1024, 32768},
                       {8, 1536, 32768}};
  std::printf("\n| batch | d_inner | L | batch x d_inner |");
  for (ScanVariant v : vs) std::printf(" %s fwd ms |", gm::cuda::scan_variant_name(v));
  std::printf(" default's serial lanes (0: chunked) |\n|---|---|---|---|");
  for (size_t i = 0; i < std::size(vs); ++i) std::printf("---|");
  std::printf("---|\n");
  for (const Dims& d : dims) {
    ScanSet set = make_set(ctx, rnd, d.B, d.D, 16, d.L);
    const gm::ScanInputs in = set.inputs();
    std::printf("| %lld | %lld | %lld | %lld |", static_cast<long long>(d.B), static_cast<long long>(d.D),
                static_cast<long long>(d.L), static_cast<long long>(d.B * d.D));
    for (ScanVariant v : vs) {
      const double ms = median_ms(s, 2, repeats, [&] {
        gm::cuda::selective_scan_fwd_variant(ctx, v, in, set.out, nullptr, &set.saved);
      });
      std::printf(" %.2f |", ms);
    }
    std::printf(" %d |\n", gm::cuda::default_fwd_serial_lanes(d.B, d.D));
    std::fflush(stdout);
  }
}

}  // namespace

int main(int argc, char** argv) {
  const int asked = argc > 1 ? std::atoi(argv[1]) : 10;
  const bool once = asked == 0;
  const int repeats = std::max(3, asked);
  const bool cross = argc > 2 && std::string(argv[2]) == "crossover";
  const bool layout = argc > 2 && std::string(argv[2]) == "layout";
  const bool states = argc > 2 && std::string(argv[2]) == "states";
  const int only_row = argc > 2 && !cross && !layout && !states ? std::atoi(argv[2]) : 0;
  const std::string only_variant = argc > 3 ? argv[3] : "";
  if (!gm::cuda_available()) {
    std::printf("bench_scan: no CUDA device\n");
    return 0;
  }
  auto ctx = gm::make_cuda_context(gm::Device::cuda(0), gm::Precision::BF16);
  auto& c = gm::cuda::as_cuda(*ctx);
  if (argc > 4) ctx->scan_flow_budget = static_cast<int64_t>(std::atoll(argv[4])) << 20;
  cudaStream_t s = c.stream();
  cudaDeviceProp prop{};
  check(cudaGetDeviceProperties(&prop, 0), "properties");
  const double copy_bw = once || cross || layout || states ? 0.0 : copy_bandwidth(*ctx, s);
  std::printf("GPU: %s, %d SMs; device-to-device copy %.2f TB/s (read + write)\n\n", prop.name,
              prop.multiProcessorCount, copy_bw / 1e12);
  RandomFill rnd(c);
  if (cross) {
    crossover(*ctx, s, rnd, repeats);
    return 0;
  }
  if (layout) {
    layouts(*ctx, s, rnd, repeats);
    return 0;
  }
  if (states) {
    states_pass(*ctx, s, rnd, repeats);
    return 0;
  }

  const Shape shapes[] = {{1, 512, 16, 1 << 20, 11.31, 74.4},  {8, 512, 16, 131072, 11.47, 54.1},
                          {64, 512, 16, 16384, 11.53, 55.0},   {8, 1536, 16, 32768, 8.40, 38.7},
                          {1, 512, 16, 1000000, 0.0, 0.0},     {8, 512, 16, 131000, 0.0, 0.0}};
  std::printf("| variant | batch | d_inner | d_state | L | fwd ms | fwd GB/s floor-bytes | of copy BW | peer fwd ms | "
              "fwd ratio | fwd+bwd ms | peer fwd+bwd ms | fwd+bwd ratio | fwd, fwd+bwd ms per 2^20 tok |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
  for (int row = 1; row <= 6; ++row) {
    if (only_row && row != only_row) continue;
    const Shape& sh = shapes[row - 1];
    const int64_t B = sh.B, D = sh.D, N = sh.N, L = sh.L;
    ScanSet set = make_set(*ctx, rnd, B, D, N, L);
    const gm::ScanInputs in = set.inputs();
    Tensor &out = set.out, &saved = set.saved;
    GradSet gs = make_grads(*ctx, rnd, B, D, N, L);
    const gm::ScanGrads g = gs.grads();
    const Tensor& dout = gs.dout;
    const Tensor &dA = gs.dA, &dD = gs.dD;
    const double floor_bytes = static_cast<double>((3 * B * D * L + 2 * B * N * L + B * D * L) * 2);
    for (gm::cuda::ScanVariant v : gm::cuda::scan_variants()) {
      if (!only_variant.empty() && only_variant != gm::cuda::scan_variant_name(v)) continue;
      auto fwd = [&] { gm::cuda::selective_scan_fwd_variant(*ctx, v, in, out, nullptr, &saved); };
      auto fwdbwd = [&] {
        gm::cuda::selective_scan_fwd_variant(*ctx, v, in, out, nullptr, &saved);
        gm::cuda::selective_scan_bwd_variant(*ctx, v, in, &saved, dout, g);
      };
      if (once) {
        fwdbwd();
        check(cudaStreamSynchronize(s), "sync");
        std::printf("ran %s once at row %d\n", gm::cuda::scan_variant_name(v), row);
        continue;
      }
      const double f_ms = median_ms(s, 2, repeats, fwd);
      const double fb_ms = median_ms(s, 1, std::max(3, repeats / 2), fwdbwd);
      if (gm::cuda::has_nonfinite(*ctx, dA) || gm::cuda::has_nonfinite(*ctx, dD))
        throw std::runtime_error("non-finite gradients in the benchmark run");
      const double bw = floor_bytes / (f_ms * 1e-3);
      const double per = static_cast<double>(1 << 20) / static_cast<double>(B * L);
      std::printf("| %s | %lld | %lld | %lld | %lld | %.2f | %.0f | %.0f%% | %s | %s | %.2f | %s | %s | %.2f, %.2f |\n",
                  gm::cuda::scan_variant_name(v), static_cast<long long>(B), static_cast<long long>(D),
                  static_cast<long long>(N), static_cast<long long>(L), f_ms, bw / 1e9, 100.0 * bw / copy_bw,
                  ms_or_dash(sh.peer_fwd_ms, "%.2f").c_str(), ms_or_dash(sh.peer_fwd_ms / f_ms, "%.2f").c_str(), fb_ms,
                  ms_or_dash(sh.peer_fwdbwd_ms, "%.1f").c_str(), ms_or_dash(sh.peer_fwdbwd_ms / fb_ms, "%.2f").c_str(),
                  f_ms * per, fb_ms * per);
      std::fflush(stdout);
    }
  }
  std::printf("\npeak device memory in use: %.2f GiB\n",
              static_cast<double>(ctx->allocator().peak_bytes()) / (1024.0 * 1024 * 1024));
  return 0;
}
#endif
