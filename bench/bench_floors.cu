// Compute floors of the selective scan's recurrence, measured: the scan kernels' arithmetic
// with every operand already in registers (no loads, no stores but one result per thread,
// no cross-lane sums), so that a real kernel, which must also move its data, cannot beat
// these times. Prints a table; results in bench/RESULTS.md.
//
// Per element (one state of one channel at one step), the fewest operations the recurrence
// needs: a = 2^(dt A) (a multiply and an exponential), h = a h + x B (a multiply and a
// multiply-add), y += C h (a multiply-add); optionally the per-(channel, step) softplus of
// delta and sigmoid of the gate (the kernels' lean::softplus and lean::sigmoid: two
// exponentials, a logarithm and a reciprocal per 16 elements, as the kernels compute them
// once per channel and step), and k of every 16 exponentials on the FMA pipe
// (lean::exp2_fma). S states per thread:
// S = 1 is the layout of the 16-lane forward (a lane per state), S = 16 that of the
// thread-per-channel kernels. "states only" drops the y multiply-add (a first pass).
//
// Usage: bench_floors [elements (default 8.59e9 = 512 x 16 x 2^20, one pass at PEERS.md's
// rows 1-3)] [repeats (default 5)]
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "mamba/cuda/scan_lean_common.cuh"

namespace gm::cuda {
namespace {

#define CHECK(x)                                                                            \
  do {                                                                                      \
    cudaError_t e_ = (x);                                                                   \
    if (e_ != cudaSuccess) {                                                                \
      std::fprintf(stderr, "bench_floors: %s: %s\n", #x, cudaGetErrorString(e_));          \
      std::exit(1);                                                                         \
    }                                                                                       \
  } while (0)

using scan::lean::exp2_fma;
using scan::lean::sigmoid;
using scan::lean::softplus;

// Each thread: S states, `steps` steps; element (n, t) takes the polynomial when its index
// among 16 (n for S = 16, t for S = 1) is one of the last kPoly.
// kPerStep: 0 nothing per (channel, step), 1 softplus, 2 softplus and SiLU.
template <int S, int kPoly, bool kOutput, int kPerStep>
__global__ void __launch_bounds__(128) recurrence_kernel(int steps, float* out) {
  const int tid = blockIdx.x * blockDim.x + threadIdx.x;
  float A[S], Bv[S], Cv[S], h[S];
#pragma unroll
  for (int n = 0; n < S; ++n) {
    A[n] = -1.4426950f * (1 + (n + tid) % 16);
    Bv[n] = 0.5f + 0.01f * n;
    Cv[n] = 0.25f - 0.01f * n;
    h[n] = 0.f;
  }
  float dt0 = 0.01f + 1e-6f * (tid % 97), y = 0.f;
  constexpr int kGroup = 16 / S;  // steps per 16 elements
  for (int t0 = 0; t0 < steps; t0 += 16) {
    dt0 += 16e-7f;
#pragma unroll
    for (int i = 0; i < 16; ++i) {
      // A new (dt, x) each step, as loaded in the kernels (no chain from step to step).
      const float dt = dt0 + 1e-7f * i;
      const float x = dt * 0.75f;
#pragma unroll
      for (int n = 0; n < S; ++n) {
        const int e = S == 1 ? i : n;
        const float arg = dt * A[n];
        const float a = e >= 16 - kPoly ? exp2_fma(arg) : ex2_approx(arg);
        h[n] = fmaf(a, h[n], x * Bv[n]);
        if constexpr (kOutput) y = fmaf(Cv[n], h[n], y);
      }
      if constexpr (kPerStep > 0) {
        // softplus of delta and the gate's sigmoid of this channel and step (the kernels'
        // functions), once per 16 elements: every kGroup-th step here.
        if (i % kGroup == kGroup - 1) {
          const float sp = softplus(dt);
          if constexpr (kPerStep > 1)
            y = fmaf(sp, sigmoid(x), y);
          else
            y += sp;
        }
      }
    }
  }
  float r = y;
#pragma unroll
  for (int n = 0; n < S; ++n) r += h[n];
  out[tid] = r;
}

struct Config {
  const char* name;
  int S, poly, per_step;  // per_step: special-function operations per 16 elements beyond the 16 exponentials
  void (*kernel)(int, float*);
};

}  // namespace
}  // namespace gm::cuda

int main(int argc, char** argv) {
  using namespace gm::cuda;
  const double elements = argc > 1 ? std::atof(argv[1]) : 512.0 * 16 * 1048576;
  const int repeats = argc > 2 ? std::atoi(argv[2]) : 5;
  int dev = 0, sms = 0, clock_khz = 0;
  CHECK(cudaGetDevice(&dev));
  CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
  CHECK(cudaDeviceGetAttribute(&clock_khz, cudaDevAttrClockRate, dev));
  cudaDeviceProp prop{};
  CHECK(cudaGetDeviceProperties(&prop, dev));
  std::printf("%s, %d SMs, %.0f MHz max clock; %.3g elements a pass\n\n", prop.name, sms, clock_khz / 1e3, elements);
  const Config configs[] = {
      {"output", 1, 0, 0, recurrence_kernel<1, 0, true, 0>},
      {"output, softplus + SiLU", 1, 0, 4, recurrence_kernel<1, 0, true, 2>},
      {"output, softplus + SiLU, 2 of 16 by polynomial", 1, 2, 4, recurrence_kernel<1, 2, true, 2>},
      {"output, softplus + SiLU, 4 of 16 by polynomial", 1, 4, 4, recurrence_kernel<1, 4, true, 2>},
      {"states only, softplus", 1, 0, 2, recurrence_kernel<1, 0, false, 1>},
      {"output", 16, 0, 0, recurrence_kernel<16, 0, true, 0>},
      {"output, softplus + SiLU", 16, 0, 4, recurrence_kernel<16, 0, true, 2>},
      {"output, softplus + SiLU, 2 of 16 by polynomial", 16, 2, 4, recurrence_kernel<16, 2, true, 2>},
      {"output, softplus + SiLU, 4 of 16 by polynomial", 16, 4, 4, recurrence_kernel<16, 4, true, 2>},
      {"states only, softplus", 16, 0, 2, recurrence_kernel<16, 0, false, 1>},
  };
  std::printf("| arithmetic per element | states per thread | warps per SM | ms a pass | elements per SM and clock "
              "| special-function results per SM and clock |\n|---|---|---|---|---|---|\n");
  float* out = nullptr;
  CHECK(cudaMalloc(&out, static_cast<size_t>(sms) * 64 * 32 * sizeof(float)));
  cudaEvent_t e0, e1;
  CHECK(cudaEventCreate(&e0));
  CHECK(cudaEventCreate(&e1));
  for (const Config& c : configs) {
    int resident = 0;
    CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&resident, c.kernel, 128, 0));
    for (int warps : {8, 16, 32, 48, 64}) {
      if (warps > 4 * resident) continue;  // not resident at once
      const int blocks = sms * warps / 4;
      const double threads = static_cast<double>(blocks) * 128;
      // Steps per thread for `elements` in all, a multiple of 16.
      const int steps = std::max(16, static_cast<int>(elements / (threads * c.S) / 16) * 16);
      const double done = threads * c.S * steps;
      c.kernel<<<blocks, 128>>>(16, out);  // warm-up
      CHECK(cudaGetLastError());
      std::vector<float> ms;
      for (int r = 0; r < repeats; ++r) {
        CHECK(cudaEventRecord(e0));
        c.kernel<<<blocks, 128>>>(steps, out);
        CHECK(cudaEventRecord(e1));
        CHECK(cudaEventSynchronize(e1));
        float t = 0;
        CHECK(cudaEventElapsedTime(&t, e0, e1));
        ms.push_back(t);
      }
      CHECK(cudaGetLastError());
      std::sort(ms.begin(), ms.end());
      const double t = ms[ms.size() / 2] * 1e-3;
      const double cycles = t * clock_khz * 1e3 * sms;
      const double sfu = done * (16.0 - c.poly + c.per_step) / 16.0;
      std::printf("| %s | %d | %d | %.3f | %.2f | %.2f |\n", c.name, c.S, warps, t * elements / done * 1e3,
                  done / cycles, sfu / cycles);
    }
  }
  CHECK(cudaFree(out));
  return 0;
}
