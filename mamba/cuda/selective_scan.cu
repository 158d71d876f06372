// Selective scan (S6) on CUDA: argument checks, scratch buffers and launches of the
// chunked kernels (scan_fwd.cuh, scan_bwd.cuh) and of the single-pass forward
// (scan_fwd_serial.cuh), and the variant selector (scan_variants.h).
//
// `saved` (f32, selective_scan_saved_numel elements) holds the state before every chunk
// of kChunk = 512 steps, laid out [B, K, D, 16] (K = ceil(L / 512); states beyond N are
// 0). It is written by the forward and lets the backward recompute any chunk on its own.
// Without it the backward recomputes those states first (one more forward-like pass).
// Activations (u, delta, z, B, C, out, dout and their gradients) share one dtype, f32 or
// bf16; the recurrence and every reduction run in f32. The variants (scan_variants.h)
// share every launch below but the chunk kernels, which `Kernels` picks per variant.
#include <algorithm>
#include <cstdint>
#include <string>
#include <type_traits>

#include "mamba/cuda/check.cuh"
#include "mamba/cuda/context_cuda.h"
#include "mamba/cuda/reduce.cuh"
#include "mamba/cuda/scan_bwd.cuh"
#include "mamba/cuda/scan_bwd_fast.cuh"
#include "mamba/cuda/scan_bwd_lean.cuh"
#include "mamba/cuda/scan_fwd_serial.cuh"
#include "mamba/cuda/scan_variants.h"
#include "mamba/ops.h"

namespace gm::cuda {

namespace {
using scan::kChunk;
using scan::kMaxState;
using scan::Params;

int64_t num_chunks(int64_t L) { return (L + kChunk - 1) / kChunk; }

// Which kernel family runs the forward and which the backward (its reverse summary and
// main kernel); a backward without `saved` recomputes the states with the forward's.
// kLeanPoly: the lean kernels with kPoly of the 16 exponentials per step of the
// thread-per-channel kernels on the FMA pipe. kSerialG: the single-pass forward with G
// lanes per channel (forward only; the backward recomputes states with it).
enum class Family {
  kReference, kPipelined, kLean, kLeanPoly, kSerial1, kSerial2, kSerial4, kSerial8, kSerial16,
  kSegmented,  // the single-pass kernel over segments, twice (see segmented_forward)
};
struct Kernels {
  Family fwd, bwd;
};
constexpr int kPoly = 4;
bool is_lean(Family f) { return f == Family::kLean || f == Family::kLeanPoly; }
int serial_lanes(Family f) {
  switch (f) {
    case Family::kSerial1: return 1;
    case Family::kSerial2: return 2;
    case Family::kSerial4: return 4;
    case Family::kSerial8: return 8;
    case Family::kSerial16: return 16;
    default: return 0;
  }
}
Family serial_family(int lanes) {
  switch (lanes) {
    case 1: return Family::kSerial1;
    case 2: return Family::kSerial2;
    case 4: return Family::kSerial4;
    case 8: return Family::kSerial8;
    case 16: return Family::kSerial16;
    default: throw std::logic_error("gm::cuda::selective_scan: no serial forward with " + std::to_string(lanes) + " lanes");
  }
}

// The default forward's kernel by batch x channel rows: the serial forward with `lanes`
// lanes per channel from `min_rows` (the first entry that applies), chunk-parallel below.
// Measured (H200, `bench_scan 10 crossover`, bf16, ~2^20 tokens of 512 channels,
// 2026-11-29, G = 8 / 16 by fwd_serial_wide_kernel): forward ms chunked (pipelined) /
// serial G = 16 / G = 8 / G = 4 at
//    2,048 rows 8.96 / 7.87 / 12.09 / 30.21     3,072 rows 9.27 / 6.36 / 9.84 / 20.19
//    4,096 rows 8.88 / 5.72 / 6.79 / 15.02      5,120 rows 9.22 / 6.94 / 7.48 / 13.14
//    6,144 rows 9.21 / 6.36 / 6.29 / 10.94      8,192 rows 8.79 / 5.66 / 4.83 / 8.23
//   10,240 rows 9.16 / 6.03 / 5.91 / 7.39      16,384 rows 8.73 / 5.55 / 4.73 / 5.30
//   32,768 rows 8.62 / 5.46 / 4.62 / 4.72
// and 4 x 1,024 x 32,768 (the d512 model, 4,096 rows) 2.29 / 1.46 / 1.71 / 3.72, 8 x 1,536 x
// 32,768 (12,288 rows) 6.54 / 4.22 / 3.84 / 4.59. Each switch sits halfway between the two
// measured row counts on either side of it; below 2,560 rows the default for sequences of
// 32,768 steps or more is the segmented forward (2,048 rows: 7.73 ms with the chunked first
// pass it had then, against 7.87 for G = 16). G = 8 beats G = 4 up to the largest count
// measured (32,768 rows), by 11% at 16,384 and 2% at 32,768: G = 4 from 49,152 rows is an
// extrapolation of that trend, not a measurement. Below ~2,500 rows a walk along L is
// latency-bound (its time halves as the rows double) and the chunk-parallel kernels win;
// more lanes per channel give more warps at the same rows but more instructions per
// (channel, step), so each G wins in its own range.
struct SerialRule {
  int64_t min_rows;
  int lanes;
};
constexpr SerialRule kSerialRules[] = {{49152, 4}, {5632, 8}, {2560, 16}};

// The segmented forward, for the shapes the rule above leaves chunked (fewer than 2,560
// rows: one or a few long sequences). Each sequence is cut into segments (whole numbers of
// chunks) that the single-pass kernel walks as if they were separate rows: enough rows for
// its fastest regime. A first, states-only pass walks every segment from zero and sums its
// dt; the segment-start states follow from those along the segments (a sequential combine
// of ~66 terms per state); a second pass walks the segments again from their true starts
// and writes y, `saved` and h_last. The exponentials are computed twice, as with the
// chunked forward, but both passes at the single-pass kernel's rate. (Before, the first
// pass was the chunked forward's chunk summaries and combine: 3.37 ms at 1 x 512 x 2^20,
// where the states-only single-pass walk takes 2.78 ms at the same 32,768 rows of 16,384
// steps, `bench_scan states`, H200.) Used from kSegmentedMinLength steps (at least 64
// chunks), so that the segments are long next to the tiles the single-pass kernel walks.
using scan::kSegmentRows;
constexpr int64_t kSegmentedMinLength = 64 * kChunk;
// The wide single-pass kernel (G = 8, 16; also the segmented forward's) walks a row with
// 32-bit step indices and finds its B / C pieces by 32-bit offsets; longer rows or larger
// state strides (sequences of ~2^26 steps and more in one call) take the chunked kernels.
bool wide_rows_fit(const Params& p) {
  return p.length < (int64_t(1) << 30) && (p.B_ns + p.C_ns) * kMaxState < (int64_t(1) << 31);
}

// The kernels of variant v at the shape of p (the default variant picks its forward by shape).
Kernels kernels_of(ScanVariant v, const Params& p) {
  switch (v) {
    case ScanVariant::kReference: return {Family::kReference, Family::kReference};
    case ScanVariant::kPipelined: return {Family::kPipelined, Family::kPipelined};
    case ScanVariant::kLean: return {Family::kLean, Family::kLean};
    case ScanVariant::kLeanBackward: return {Family::kPipelined, Family::kLean};
    case ScanVariant::kLeanPoly: return {Family::kLeanPoly, Family::kLeanPoly};
    case ScanVariant::kSerial4: return {Family::kSerial4, Family::kLean};
    case ScanVariant::kSerial2: return {Family::kSerial2, Family::kLean};
    case ScanVariant::kSerial1: return {Family::kSerial1, Family::kLean};
    case ScanVariant::kSerial8: return {Family::kSerial8, Family::kLean};
    case ScanVariant::kSerial16: return {Family::kSerial16, Family::kLean};
    case ScanVariant::kSegmented: return {Family::kSegmented, Family::kLean};
    case ScanVariant::kDefault: {
      const int lanes = default_fwd_serial_lanes(p.batch, p.channels);
      const bool wide_ok = wide_rows_fit(p);
      if (lanes && (lanes < 8 || wide_ok)) return {serial_family(lanes), Family::kLean};
      if (lanes) return {Family::kPipelined, Family::kLean};
      return {p.length >= kSegmentedMinLength && wide_ok ? Family::kSegmented : Family::kPipelined, Family::kLean};
    }
  }
  throw std::invalid_argument("gm::cuda::selective_scan: unknown scan variant");
}

bool aligned16(const Tensor& t) {
  const int64_t es = static_cast<int64_t>(dtype_size(t.dtype()));
  bool ok = reinterpret_cast<uintptr_t>(t.raw()) % 16 == 0;
  for (int d = 0; d + 1 < t.ndim(); ++d) ok = ok && (t.stride(d) * es) % 16 == 0;
  return ok;
}

void require_act(const Tensor& t, DType dtype, const Tensor::Shape& shape, const char* op, const char* name) {
  require_cuda(t, op, name);
  require(t.dtype() == dtype && t.shape() == shape && (t.size(-1) <= 1 || t.stride(-1) == 1), op,
          std::string(name) + " must be " + dtype_name(dtype) + " with the shape of u's layout and unit inner " +
              "stride, got " + t.describe());
}

void require_dense_f32(const Tensor& t, const Tensor::Shape& shape, const char* op, const char* name) {
  require_cuda(t, op, name);
  require(t.dtype() == DType::F32 && t.shape() == shape && t.is_contiguous(), op,
          std::string(name) + " must be dense f32, got " + t.describe());
}

Params make_params(const char* op, const ScanInputs& in) {
  require(in.u && in.delta && in.A && in.B && in.C, op, "u, delta, A, B and C are required");
  const Tensor& u = *in.u;
  require_cuda(u, op, "u");
  require(is_act(u.dtype()) && u.ndim() == 3, op, "u must be f32 or bf16 [B, D, L], got " + u.describe());
  const DType dt = u.dtype();
  const int64_t B = u.size(0), D = u.size(1), L = u.size(2);
  require_cuda(*in.A, op, "A");
  require(in.A->ndim() == 2 && in.A->size(0) == D, op, "A must be [D, N], got " + in.A->describe());
  const int64_t N = in.A->size(1);
  require(N >= 1 && N <= kMaxState, op, "d_state must be 1..16 on CUDA, got " + std::to_string(N));
  require_dense_f32(*in.A, {D, N}, op, "A");
  require_act(u, dt, {B, D, L}, op, "u");
  require_act(*in.delta, dt, {B, D, L}, op, "delta");
  require_act(*in.B, dt, {B, N, L}, op, "B");
  require_act(*in.C, dt, {B, N, L}, op, "C");
  if (in.z) require_act(*in.z, dt, {B, D, L}, op, "z");
  if (in.Dskip) require_dense_f32(*in.Dskip, {D}, op, "Dskip");
  if (in.delta_bias) require_dense_f32(*in.delta_bias, {D}, op, "delta_bias");
  if (in.seq_start) {
    require_cuda(*in.seq_start, op, "seq_start");
    require(in.seq_start->dtype() == DType::U8 && in.seq_start->shape() == Tensor::Shape{B, L} &&
                (L <= 1 || in.seq_start->stride(1) == 1),
            op, "seq_start must be u8 [B, L], got " + in.seq_start->describe());
  }
  if (in.h0) require_dense_f32(*in.h0, {B, D, N}, op, "h0");

  Params p{};
  p.batch = B;
  p.channels = D;
  p.length = L;
  p.state = N;
  p.chunks = num_chunks(L);
  p.u = u.raw();
  p.u_bs = u.stride(0);
  p.u_cs = u.stride(1);
  p.delta = in.delta->raw();
  p.delta_bs = in.delta->stride(0);
  p.delta_cs = in.delta->stride(1);
  p.z = in.z ? in.z->raw() : nullptr;
  p.z_bs = in.z ? in.z->stride(0) : 0;
  p.z_cs = in.z ? in.z->stride(1) : 0;
  p.Bm = in.B->raw();
  p.B_bs = in.B->stride(0);
  p.B_ns = in.B->stride(1);
  p.Cm = in.C->raw();
  p.C_bs = in.C->stride(0);
  p.C_ns = in.C->stride(1);
  p.A = in.A->data<float>();
  p.Dskip = in.Dskip ? in.Dskip->data<float>() : nullptr;
  p.delta_bias = in.delta_bias ? in.delta_bias->data<float>() : nullptr;
  p.starts = in.seq_start ? in.seq_start->data<uint8_t>() : nullptr;
  p.starts_bs = in.seq_start ? in.seq_start->stride(0) : 0;
  p.softplus = in.delta_softplus;
  p.aligned = aligned16(u) && aligned16(*in.delta) && aligned16(*in.B) && aligned16(*in.C) &&
              (!in.z || aligned16(*in.z));
  return p;
}

dim3 fwd_grid(const Params& p, int64_t chunks) {
  return dim3(static_cast<unsigned>(chunks),
              static_cast<unsigned>((p.channels + scan::kFwdThreads - 1) / scan::kFwdThreads),
              static_cast<unsigned>(p.batch));
}

unsigned state_blocks(const Params& p) { return blocks_for(p.batch * p.channels * kMaxState, 256); }

template <class Kernel>
void serial_kernel_setup(Kernel kernel, int smem) {
  GM_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
  GM_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributePreferredSharedMemoryCarveout,
                                     cudaSharedmemCarveoutMaxShared));
}

// The wide single-pass kernel (G = 8, 16) with tiles of 8 G kTileMul steps.
// dt_sum, row_reset: the states-only kernel's row sums of dt and document-start flags (the
// segmented forward's first pass), null otherwise.
template <class T, int G, int kTileMul, bool kOutput, bool kHasZ>
void launch_serial_wide(CudaContext& c, const Params& p, const float* h0, T* o, int64_t o_bs, int64_t o_cs,
                        float* hl, float* saved, const dim3& grid, float* dt_sum = nullptr,
                        uint8_t* row_reset = nullptr) {
  require(wide_rows_fit(p), "selective_scan_fwd",
          "the wide single-pass forward takes rows of fewer than 2^30 steps and B / C state strides below 2^27 "
          "(the default variant takes the chunked kernels there)");
  auto kernel = scan::serial::fwd_serial_wide_kernel<T, G, kTileMul, kOutput, kHasZ, 4>;
  const int smem =
      static_cast<int>(sizeof(scan::serial::WideSmem<T, G, scan::serial::wide_tile(G, kTileMul)>));
  serial_kernel_setup(kernel, smem);
  kernel<<<grid, scan::serial::kSerialThreads, smem, c.stream()>>>(p, h0, o, o_bs, o_cs, hl, saved, dt_sum,
                                                                   row_reset);
  GM_CUDA_CHECK_LAUNCH();
}

// The single-pass kernels' grid with G lanes per channel: channel blocks x batch rows.
template <int G>
dim3 serial_grid(const Params& p) {
  constexpr int kChannels = scan::serial::kSerialThreads / G;
  require(p.batch <= 65535, "selective_scan_fwd", "the serial forward takes at most 65535 batch rows");
  return dim3(static_cast<unsigned>((p.channels + kChannels - 1) / kChannels), static_cast<unsigned>(p.batch));
}

// The single-pass forward with G lanes per channel: y (kOutput), h_last and `saved` (each
// may be null).
template <class T, int G, bool kOutput, bool kHasZ>
void launch_serial_g(CudaContext& c, const Params& p, const float* h0, T* o, int64_t o_bs, int64_t o_cs, float* hl,
                     float* saved) {
  const dim3 grid = serial_grid<G>(p);
  if constexpr (G >= 8) {
    // G = 16 and 8 are for ~2,500-49,000 rows (320-704 blocks of G = 16, 352-3,072 of
    // G = 8): 4 blocks per SM, 128 registers. 255 registers (2 blocks per SM) gave nothing
    // with the first G = 8 kernel at 4,096 rows (7.48 -> 7.42 ms) and lost with f32 B / C
    // in shared memory (8.12 -> 9.49 ms, spills around the copies). G = 8 takes 128-step
    // tiles when the grid is one wave of at most 3 blocks per SM (67 KB of shared memory per
    // block in bf16): at 4,096 rows they measured 16% faster than 64-step tiles in that f32
    // B / C version (9.49 -> 8.00 ms); 64-step tiles otherwise (35 KB, 4 blocks per SM).
    if constexpr (G == 8) {
      const int64_t blocks = static_cast<int64_t>(grid.x) * grid.y;
      if (blocks <= 3 * static_cast<int64_t>(c.sm_count()))
        return launch_serial_wide<T, G, 2, kOutput, kHasZ>(c, p, h0, o, o_bs, o_cs, hl, saved, grid);
    }
    launch_serial_wide<T, G, 1, kOutput, kHasZ>(c, p, h0, o, o_bs, o_cs, hl, saved, grid);
  } else {
    require(p.seg_chunks == 0, "selective_scan_fwd", "segment rows need the wide single-pass kernel");
    // Blocks per SM the registers are sized for, so that a whole row-3 grid (64 x 512
    // channels: 1,024 blocks of G = 4, 7.8 per SM) is resident at once; shared memory (27 KB
    // per block in bf16) allows 8. G = 4 then gets 64 registers (ptxas: 8-24 bytes of
    // spills, outside the step loop) and measured fastest of the three: 4.86 ms at row 3
    // against 5.13 (G = 2) and 7.94 (G = 1), 4.64 ms at row 4 against 6.00 and 10.71.
    constexpr int kMinBlocks = G == 4 ? 8 : G == 2 ? 4 : 2;
    auto kernel = scan::serial::fwd_serial_kernel<T, G, kOutput, kHasZ, kMinBlocks>;
    const int smem = static_cast<int>(sizeof(scan::serial::SerialSmem<T, G>));
    serial_kernel_setup(kernel, smem);
    kernel<<<grid, scan::serial::kSerialThreads, smem, c.stream()>>>(p, h0, o, o_bs, o_cs, hl, saved);
    GM_CUDA_CHECK_LAUNCH();
  }
}

template <class T, bool kOutput, bool kHasZ>
void launch_serial(CudaContext& c, const Params& p, const float* h0, T* o, int64_t o_bs, int64_t o_cs, float* hl,
                   float* saved, Family fam) {
  switch (serial_lanes(fam)) {
    case 1: launch_serial_g<T, 1, kOutput, kHasZ>(c, p, h0, o, o_bs, o_cs, hl, saved); break;
    case 2: launch_serial_g<T, 2, kOutput, kHasZ>(c, p, h0, o, o_bs, o_cs, hl, saved); break;
    case 4: launch_serial_g<T, 4, kOutput, kHasZ>(c, p, h0, o, o_bs, o_cs, hl, saved); break;
    case 8: launch_serial_g<T, 8, kOutput, kHasZ>(c, p, h0, o, o_bs, o_cs, hl, saved); break;
    case 16: launch_serial_g<T, 16, kOutput, kHasZ>(c, p, h0, o, o_bs, o_cs, hl, saved); break;
    default: throw std::logic_error("gm::cuda::selective_scan: not a serial kernel family");
  }
}

template <class T, bool kOutput, bool kHasZ>
void segmented_forward(CudaContext& c, const Params& p, const float* h0, T* o, int64_t o_bs, int64_t o_cs,
                       float* hl, float* saved);

// The state before every chunk into `starts` ([B, K, D, 16]): chunk summaries, then the
// sequential combine along the chunks; for a serial or the segmented family, its own
// states-only pass(es) (bitwise the states its forward saves).
template <class T>
void chunk_start_states(CudaContext& c, const Params& p, const float* h0, float* starts, Family fam) {
  if (fam == Family::kSegmented) {  // its own two passes: bitwise the states its forward saves
    segmented_forward<T, false, false>(c, p, h0, nullptr, 0, 0, nullptr, starts);
    return;
  }
  if (serial_lanes(fam)) {
    launch_serial<T, false, false>(c, p, h0, nullptr, 0, 0, nullptr, starts, fam);
    return;
  }
  Tensor E, P;
  if (p.chunks > 1) {
    const int64_t n = p.batch * p.chunks * p.channels * kMaxState;
    E = Tensor::empty(c.allocator(), {n}, DType::F32);
    P = Tensor::empty(c.allocator(), {n}, DType::F32);
    const dim3 grid = fwd_grid(p, p.chunks - 1);
    float* e = E.data<float>();
    float* pp = P.data<float>();
    switch (fam) {
      case Family::kReference:
        scan::scan_fwd_summary_kernel<T><<<grid, scan::kFwdThreads, 0, c.stream()>>>(p, e, pp);
        break;
      case Family::kPipelined:
        scan::fast::fwd_chunk_kernel<T, false, false>
            <<<grid, scan::kFwdThreads, 0, c.stream()>>>(p, nullptr, nullptr, 0, 0, nullptr, e, pp);
        break;
      case Family::kLean:
        scan::lean::fwd_chunk_kernel<T, false, false, 0>
            <<<grid, scan::kFwdThreads, 0, c.stream()>>>(p, nullptr, nullptr, 0, 0, nullptr, e, pp);
        break;
      case Family::kLeanPoly:
        scan::lean::fwd_chunk_kernel<T, false, false, kPoly>
            <<<grid, scan::kFwdThreads, 0, c.stream()>>>(p, nullptr, nullptr, 0, 0, nullptr, e, pp);
        break;
      default: throw std::logic_error("gm::cuda::selective_scan: not a chunked kernel family");
    }
    GM_CUDA_CHECK_LAUNCH();
  }
  scan::scan_fwd_combine_kernel<<<state_blocks(p), 256, 0, c.stream()>>>(
      p, p.chunks > 1 ? E.data<float>() : nullptr, p.chunks > 1 ? P.data<float>() : nullptr, h0, starts);
  GM_CUDA_CHECK_LAUNCH();
}

template <class T, bool kHasZ>
void launch_output(CudaContext& c, const Params& p, const float* starts, T* o, int64_t o_bs, int64_t o_cs, float* hl,
                   Family fam) {
  const dim3 grid = fwd_grid(p, p.chunks);
  const unsigned th = scan::kFwdThreads;
  switch (fam) {
    case Family::kReference:
      scan::scan_fwd_output_kernel<T, kHasZ><<<grid, th, 0, c.stream()>>>(p, starts, o, o_bs, o_cs, hl);
      break;
    case Family::kPipelined:
      scan::fast::fwd_chunk_kernel<T, true, kHasZ>
          <<<grid, th, 0, c.stream()>>>(p, starts, o, o_bs, o_cs, hl, nullptr, nullptr);
      break;
    case Family::kLean:
      scan::lean::fwd_chunk_kernel<T, true, kHasZ, 0>
          <<<grid, th, 0, c.stream()>>>(p, starts, o, o_bs, o_cs, hl, nullptr, nullptr);
      break;
    case Family::kLeanPoly:
      scan::lean::fwd_chunk_kernel<T, true, kHasZ, kPoly>
          <<<grid, th, 0, c.stream()>>>(p, starts, o, o_bs, o_cs, hl, nullptr, nullptr);
      break;
    default: throw std::logic_error("gm::cuda::selective_scan: not a chunked kernel family");
  }
  GM_CUDA_CHECK_LAUNCH();
}

// The segment-start states of one sequence from its segments' first pass: segment s starts
// from h_s, h_0 = h0 (zero without), h_{s+1} = 2^(A log2(e) dt_sum[s, c]) h_s + end[s] (the
// product of the segment's decays, 0 when a document starts in it, times the state it
// started from, plus the state it reaches from zero). Writes h_s for s < segments into
// starts[s, c, n]; the last segment runs to the end of the sequence, so the state after it
// is the second pass's h_last, not needed here. One thread per (channel, state), the
// segments in order.
__global__ void chain_segment_states_kernel(const float* __restrict__ end, const float* __restrict__ dt_sum,
                                            const uint8_t* __restrict__ reset, const float* __restrict__ A,
                                            const float* __restrict__ h0, int64_t segments, int64_t channels,
                                            int64_t state, float* __restrict__ starts) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= channels * state) return;
  const int64_t c = i / state;
  const float a2 = A[i] * kLog2e;
  float h = h0 ? h0[i] : 0.f;
  for (int64_t s = 0; s < segments; ++s) {
    const int64_t at = s * channels * state + i;
    starts[at] = h;
    if (s + 1 < segments) {
      const float decay = reset[s] ? 0.f : exp2f(a2 * dt_sum[s * channels + c]);
      h = fmaf(decay, h, end[at]);
    }
  }
}

// The segmented forward (see kSegmentRows), one sequence at a time: its segments
// (scan::segments_for) are the rows of two single-pass launches (Params::seg_chunks), the first
// states only and from zero (each segment's end state, sum of dt and document starts), the
// second from the segment starts that chain_segment_states_kernel forms from those,
// writing y, `saved` and h_last. h0, saved, hl: the whole op's, each may be null. kOutput =
// false: `saved` only (non-null), the same states.
template <class T, bool kOutput, bool kHasZ>
void segmented_forward(CudaContext& c, const Params& p, const float* h0, T* o, int64_t o_bs, int64_t o_cs,
                       float* hl, float* saved) {
  const int64_t D = p.channels, N = p.state;
  const scan::Segments seg = scan::segments_for(p.length, p.channels, c.sm_count());
  const int64_t rows = seg.count;
  // The wide kernel (G = 16 or 8) takes segment rows; G = 16 where the rule gives it.
  const int lanes = default_fwd_serial_lanes(rows, D) == 16 ? 16 : 8;
  Tensor ends = Tensor::empty(c.allocator(), {rows * D * N}, DType::F32);
  Tensor h0s = Tensor::empty(c.allocator(), {rows * D * N}, DType::F32);
  Tensor sums = Tensor::empty(c.allocator(), {rows * D}, DType::F32);
  Tensor resets = Tensor::empty(c.allocator(), {rows}, DType::U8);
  Tensor last;  // h_last of every segment: the last one's ends the sequence
  if (hl) last = Tensor::empty(c.allocator(), {rows * D * N}, DType::F32);
  for (int64_t b = 0; b < p.batch; ++b) {
    auto at = [&](const void* base, int64_t bs) -> const void* {
      return base ? static_cast<const void*>(static_cast<const T*>(base) + b * bs) : nullptr;
    };
    Params ps = p;
    ps.batch = rows;
    ps.seg_chunks = seg.chunks;
    ps.seg_extra = seg.extra;
    ps.u = at(p.u, p.u_bs);
    ps.delta = at(p.delta, p.delta_bs);
    ps.z = at(p.z, p.z_bs);
    ps.Bm = at(p.Bm, p.B_bs);
    ps.Cm = at(p.Cm, p.C_bs);
    ps.starts = p.starts ? p.starts + b * p.starts_bs : nullptr;
    T* ob = kOutput ? o + b * o_bs : nullptr;
    const float* h0b = h0 ? h0 + b * D * N : nullptr;
    // The sequence's chunks in `saved` ([B, K, D, 16]), at their own indices (RowSpan).
    float* saved_b = saved ? saved + b * p.chunks * D * kMaxState : nullptr;
    // Both passes with G lanes per channel (G = 16 or 8). The second takes 8 G-step tiles
    // (launch_serial_g would take 16 G-step ones for grids of at most 3 blocks per SM, which
    // the segment count avoids by design).
    auto passes = [&](auto lanes_c) {
      constexpr int G = decltype(lanes_c)::value;
      // First pass: each segment from zero, states only.
      launch_serial_wide<T, G, 1, false, false>(c, ps, nullptr, nullptr, 0, 0, ends.data<float>(), nullptr,
                                                serial_grid<G>(ps), sums.data<float>(), resets.data<uint8_t>());
      chain_segment_states_kernel<<<blocks_for(D * N, 256), 256, 0, c.stream()>>>(
          ends.data<float>(), sums.data<float>(), resets.data<uint8_t>(), p.A, h0b, rows, D, N, h0s.data<float>());
      GM_CUDA_CHECK_LAUNCH();
      // Second pass: from the segment starts.
      launch_serial_wide<T, G, 1, kOutput, kHasZ>(c, ps, h0s.data<float>(), ob, 0, o_cs,
                                                  last.defined() ? last.data<float>() : nullptr, saved_b,
                                                  serial_grid<G>(ps));
    };
    if (lanes == 16)
      passes(std::integral_constant<int, 16>{});
    else
      passes(std::integral_constant<int, 8>{});
    if (last.defined())
      GM_CUDA_CHECK(cudaMemcpyAsync(hl + b * D * N, last.data<float>() + (rows - 1) * D * N,
                                    sizeof(float) * static_cast<size_t>(D * N), cudaMemcpyDeviceToDevice,
                                    c.stream()));
  }
}

template <class T>
void fwd_chunked(CudaContext& c, const Params& p, const ScanInputs& in, Tensor& out, Tensor* h_last, Tensor* saved,
                 Family fam) {
  if (serial_lanes(fam)) {  // one pass: no chunk summaries; `saved` is written on the way
    const float* h0 = in.h0 ? in.h0->data<float>() : nullptr;
    float* hl = h_last ? h_last->data<float>() : nullptr;
    float* sv = saved ? saved->data<float>() : nullptr;
    T* o = static_cast<T*>(out.raw());
    if (p.z)
      launch_serial<T, true, true>(c, p, h0, o, out.stride(0), out.stride(1), hl, sv, fam);
    else
      launch_serial<T, true, false>(c, p, h0, o, out.stride(0), out.stride(1), hl, sv, fam);
    return;
  }
  if (fam == Family::kSegmented) {
    const float* h0 = in.h0 ? in.h0->data<float>() : nullptr;
    float* hl = h_last ? h_last->data<float>() : nullptr;
    float* sv = saved ? saved->data<float>() : nullptr;
    T* o = static_cast<T*>(out.raw());
    if (p.z)
      segmented_forward<T, true, true>(c, p, h0, o, out.stride(0), out.stride(1), hl, sv);
    else
      segmented_forward<T, true, false>(c, p, h0, o, out.stride(0), out.stride(1), hl, sv);
    return;
  }
  const int64_t n = p.batch * p.chunks * p.channels * kMaxState;
  Tensor scratch;
  float* starts = nullptr;
  if (saved) {
    starts = saved->data<float>();
  } else {
    scratch = Tensor::empty(c.allocator(), {n}, DType::F32);
    starts = scratch.data<float>();
  }
  chunk_start_states<T>(c, p, in.h0 ? in.h0->data<float>() : nullptr, starts, fam);
  float* hl = h_last ? h_last->data<float>() : nullptr;
  T* o = static_cast<T*>(out.raw());
  if (p.z)
    launch_output<T, true>(c, p, starts, o, out.stride(0), out.stride(1), hl, fam);
  else
    launch_output<T, false>(c, p, starts, o, out.stride(0), out.stride(1), hl, fam);
}

// The lean families: summaries, carries and the main kernel per window of chunks, from the
// last window to the first (scan_segments.h, flow_window_chunks).
template <class T, bool kHasZ>
void bwd_lean_launch(CudaContext& c, const Params& p, const scan::BwdArgs& o, float* Q, float* P, float* carry,
                     Family fam) {
  const int64_t window = scan::flow_window_chunks(p.batch, p.channels, p.chunks, c.scan_flow_budget);
  Tensor flows = Tensor::empty(c.allocator(), {p.batch * window * scan::kFlowSubs * p.channels * kMaxState}, DType::F32);
  Tensor dt_after = Tensor::empty(c.allocator(), {p.batch * window * scan::kFlowSubs * p.channels}, DType::F32);
  const auto main = scan::lean::bwd_main_kernel<T, kHasZ>;
  const size_t smem = sizeof(scan::lean::MainSmem<T>);
  GM_CUDA_CHECK(cudaFuncSetAttribute(main, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
  GM_CUDA_CHECK(cudaFuncSetAttribute(main, cudaFuncAttributePreferredSharedMemoryCarveout,
                                     static_cast<int>(cudaSharedmemCarveoutMaxShared)));
  int per_sm = 0;
  GM_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, main, scan::lean::kMainThreads, smem));
  for (int64_t k1 = p.chunks; k1 > 0;) {
    const int64_t k0 = std::max<int64_t>(0, k1 - window);
    const scan::lean::FlowArgs f{k0, k1 - k0, reinterpret_cast<float4*>(flows.data<float>()), dt_after.data<float>()};
    const dim3 grid = fwd_grid(p, k1 - k0);
    const unsigned th = scan::kFwdThreads;
    if (fam == Family::kLeanPoly)
      scan::lean::bwd_summary_kernel<T, kHasZ, kPoly>
          <<<grid, th, 0, c.stream()>>>(p, o.dout, o.g_bs, o.g_cs, Q, P, f);
    else
      scan::lean::bwd_summary_kernel<T, kHasZ, 0><<<grid, th, 0, c.stream()>>>(p, o.dout, o.g_bs, o.g_cs, Q, P, f);
    GM_CUDA_CHECK_LAUNCH();
    scan::scan_bwd_combine_kernel<<<state_blocks(p), 256, 0, c.stream()>>>(p, Q, P, carry, k0, k1);
    GM_CUDA_CHECK_LAUNCH();
    // Persistent grid: as many blocks as fit the GPU at once (3 per SM), each walking
    // (batch, group, chunk) items.
    const int64_t items = p.batch * o.groups * f.window;
    const int64_t blocks = std::min<int64_t>(items, static_cast<int64_t>(std::max(per_sm, 1)) * c.sm_count());
    main<<<static_cast<unsigned>(blocks), scan::lean::kMainThreads, smem, c.stream()>>>(p, o, f);
    GM_CUDA_CHECK_LAUNCH();
    k1 = k0;
  }
}

template <class T, bool kHasZ>
void bwd_launch(CudaContext& c, const Params& p, const scan::BwdArgs& o, float* Q, float* P, float* carry,
                Family fam) {
  if (is_lean(fam)) {
    bwd_lean_launch<T, kHasZ>(c, p, o, Q, P, carry, fam);
    return;
  }
  if (p.chunks > 1) {
    const dim3 grid = fwd_grid(p, p.chunks - 1);
    const unsigned th = scan::kFwdThreads;
    switch (fam) {
      case Family::kReference:
        scan::scan_bwd_summary_kernel<T, kHasZ><<<grid, th, 0, c.stream()>>>(p, o, Q, P);
        break;
      case Family::kPipelined:
        scan::fast::bwd_summary_kernel<T, kHasZ><<<grid, th, 0, c.stream()>>>(p, o.dout, o.g_bs, o.g_cs, Q, P);
        break;
      default: throw std::logic_error("gm::cuda::selective_scan: not a backward kernel family");
    }
    GM_CUDA_CHECK_LAUNCH();
  }
  scan::scan_bwd_combine_kernel<<<state_blocks(p), 256, 0, c.stream()>>>(p, Q, P, carry, 0, p.chunks);
  GM_CUDA_CHECK_LAUNCH();
  const dim3 grid(static_cast<unsigned>(p.chunks), static_cast<unsigned>(o.groups), static_cast<unsigned>(p.batch));
  if (fam == Family::kPipelined) {
    const size_t smem = sizeof(scan::fast::BwdFastSmem<T>);
    GM_CUDA_CHECK(cudaFuncSetAttribute(scan::fast::bwd_main_kernel<T, kHasZ>,
                                       cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
    scan::fast::bwd_main_kernel<T, kHasZ><<<grid, scan::kBwdThreads, smem, c.stream()>>>(p, o);
  } else {
    const size_t smem = sizeof(scan::BwdSmem);
    GM_CUDA_CHECK(cudaFuncSetAttribute(scan::scan_bwd_main_kernel<T, kHasZ>,
                                       cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
    scan::scan_bwd_main_kernel<T, kHasZ><<<grid, scan::kBwdThreads, smem, c.stream()>>>(p, o);
  }
  GM_CUDA_CHECK_LAUNCH();
}

template <class T>
void bwd_chunked(CudaContext& c, const Params& p, const ScanInputs& in, const Tensor* saved, const Tensor& dout,
                 const ScanGrads& grads, Kernels kern) {
  const int64_t B = p.batch, D = p.channels, N = p.state, L = p.length, K = p.chunks;
  const int64_t n = B * K * D * kMaxState;
  Tensor starts_t;
  const float* starts = nullptr;
  // The lean main kernel reads the saved states 4 at a time: a view that is not 16-byte
  // aligned is recomputed instead (bitwise the same states).
  if (saved && is_lean(kern.bwd) && reinterpret_cast<uintptr_t>(saved->raw()) % 16 != 0) saved = nullptr;
  if (saved) {
    starts = saved->data<float>();
  } else {
    starts_t = Tensor::empty(c.allocator(), {n}, DType::F32);
    chunk_start_states<T>(c, p, in.h0 ? in.h0->data<float>() : nullptr, starts_t.data<float>(), kern.fwd);
    starts = starts_t.data<float>();
  }
  Tensor Q = Tensor::empty(c.allocator(), {n}, DType::F32);
  Tensor P = Tensor::empty(c.allocator(), {n}, DType::F32);
  Tensor carry = Tensor::empty(c.allocator(), {n}, DType::F32);
  Tensor part_dA = Tensor::empty(c.allocator(), {B * K, D * kMaxState}, DType::F32);
  Tensor part_dD = Tensor::empty(c.allocator(), {B * K, D}, DType::F32);
  Tensor part_ddb = Tensor::empty(c.allocator(), {B * K, D}, DType::F32);
  const int64_t groups = (D + scan::kBwdChannels - 1) / scan::kBwdChannels;
  Tensor part_bc;
  if (grads.dB || grads.dC) part_bc = Tensor::empty(c.allocator(), {2 * B * groups * kMaxState * L}, DType::F32);

  scan::BwdArgs o{};
  o.dout = dout.raw();
  o.g_bs = dout.stride(0);
  o.g_cs = dout.stride(1);
  auto out_rows = [](Tensor* t, void*& ptr, int64_t& bs, int64_t& cs) {
    ptr = t ? t->raw() : nullptr;
    bs = t ? t->stride(0) : 0;
    cs = t ? t->stride(1) : 0;
  };
  out_rows(grads.du, o.du, o.du_bs, o.du_cs);
  out_rows(grads.ddelta, o.ddelta, o.dd_bs, o.dd_cs);
  out_rows(grads.dz, o.dz, o.dz_bs, o.dz_cs);
  o.starts = starts;
  o.carry = carry.data<float>();
  o.part_bc = part_bc.defined() ? part_bc.data<float>() : nullptr;
  o.groups = groups;
  o.part_dA = part_dA.data<float>();
  o.part_dD = part_dD.data<float>();
  o.part_ddb = part_ddb.data<float>();
  o.dh0 = grads.dh0 ? grads.dh0->data<float>() : nullptr;
  if (p.z)
    bwd_launch<T, true>(c, p, o, Q.data<float>(), P.data<float>(), carry.data<float>(), kern.bwd);
  else
    bwd_launch<T, false>(c, p, o, Q.data<float>(), P.data<float>(), carry.data<float>(), kern.bwd);

  if (part_bc.defined()) {
    T* dB = grads.dB ? static_cast<T*>(grads.dB->raw()) : nullptr;
    T* dC = grads.dC ? static_cast<T*>(grads.dC->raw()) : nullptr;
    scan::scan_bc_reduce_kernel<T><<<capped_blocks(2 * B * N * L, 256), 256, 0, c.stream()>>>(
        part_bc.data<float>(), B, groups, N, L, dB, grads.dB ? grads.dB->stride(0) : 0,
        grads.dB ? grads.dB->stride(1) : 0, dC, grads.dC ? grads.dC->stride(0) : 0, grads.dC ? grads.dC->stride(1) : 0);
    GM_CUDA_CHECK_LAUNCH();
  }
  if (grads.dA) {
    Tensor sums = Tensor::empty(c.allocator(), {D * kMaxState}, DType::F32);
    column_sum(c, part_dA.data<float>(), B * K, D * kMaxState, sums.data<float>(), false);
    scan::scan_compact_state_kernel<<<blocks_for(D * N, 256), 256, 0, c.stream()>>>(sums.data<float>(), D, N,
                                                                                  grads.dA->data<float>());
    GM_CUDA_CHECK_LAUNCH();
  }
  if (grads.dDskip) column_sum(c, part_dD.data<float>(), B * K, D, grads.dDskip->data<float>(), false);
  if (grads.ddelta_bias) column_sum(c, part_ddb.data<float>(), B * K, D, grads.ddelta_bias->data<float>(), false);
}

void check_saved(const Tensor* saved, const Params& p, const char* op) {
  if (!saved) return;
  require_cuda(*saved, op, "saved");
  const int64_t need = p.batch * p.chunks * p.channels * kMaxState;
  require(saved->dtype() == DType::F32 && saved->is_contiguous() && saved->numel() >= need, op,
          "saved must be dense f32 with selective_scan_saved_numel elements (" + std::to_string(need) + "), got " +
              saved->describe());
}

void zero(CudaContext& c, Tensor* t) {
  if (t && t->numel() > 0) GM_CUDA_CHECK(cudaMemsetAsync(t->raw(), 0, t->nbytes(), c.stream()));
}

}  // namespace

const char* scan_variant_name(ScanVariant v) {
  switch (v) {
    case ScanVariant::kReference: return "reference";
    case ScanVariant::kPipelined: return "pipelined";
    case ScanVariant::kLean: return "lean";
    case ScanVariant::kLeanBackward: return "lean-backward";
    case ScanVariant::kLeanPoly: return "lean-poly";
    case ScanVariant::kSerial4: return "serial-g4";
    case ScanVariant::kSerial2: return "serial-g2";
    case ScanVariant::kSerial1: return "serial-g1";
    case ScanVariant::kSerial8: return "serial-g8";
    case ScanVariant::kSerial16: return "serial-g16";
    case ScanVariant::kDefault: return "default";
    case ScanVariant::kSegmented: return "segmented";
  }
  return "?";
}

std::vector<ScanVariant> scan_variants() {
  return {ScanVariant::kDefault, ScanVariant::kLeanBackward, ScanVariant::kLean,    ScanVariant::kLeanPoly,
          ScanVariant::kPipelined, ScanVariant::kReference, ScanVariant::kSerial16, ScanVariant::kSerial8,
          ScanVariant::kSerial4,   ScanVariant::kSerial2,   ScanVariant::kSerial1, ScanVariant::kSegmented};
}

int default_fwd_serial_lanes(int64_t batch, int64_t channels) {
  const int64_t rows = batch * channels;
  for (const SerialRule& r : kSerialRules)
    if (rows >= r.min_rows) return r.lanes;
  return 0;
}

bool default_fwd_is_serial(int64_t batch, int64_t channels) { return default_fwd_serial_lanes(batch, channels) != 0; }

void selective_scan_fwd_variant(Context& ctx, ScanVariant v, const ScanInputs& in, Tensor& out, Tensor* h_last,
                                Tensor* saved) {
  CudaContext& c = as_cuda(ctx);
  const char* op = "selective_scan_fwd";
  Params p = make_params(op, in);
  const Kernels kern = kernels_of(v, p);
  const DType dt = in.u->dtype();
  require_act(out, dt, in.u->shape(), op, "out");
  p.aligned = p.aligned && aligned16(out);
  if (h_last) require_dense_f32(*h_last, {p.batch, p.channels, p.state}, op, "h_last");
  check_saved(saved, p, op);
  if (p.batch * p.channels == 0) return;
  if (p.length == 0) {
    if (h_last) {
      if (in.h0)
        GM_CUDA_CHECK(cudaMemcpyAsync(h_last->raw(), in.h0->raw(), h_last->nbytes(), cudaMemcpyDeviceToDevice,
                                      c.stream()));
      else
        zero(c, h_last);
    }
    return;
  }
  if (dt == DType::BF16)
    fwd_chunked<bf16_t>(c, p, in, out, h_last, saved, kern.fwd);
  else
    fwd_chunked<float>(c, p, in, out, h_last, saved, kern.fwd);
}

void selective_scan_bwd_variant(Context& ctx, ScanVariant v, const ScanInputs& in, const Tensor* saved,
                                const Tensor& dout, const ScanGrads& grads) {
  CudaContext& c = as_cuda(ctx);
  const char* op = "selective_scan_bwd";
  Params p = make_params(op, in);
  const Kernels kern = kernels_of(v, p);
  const DType dt = in.u->dtype();
  const Tensor::Shape bdl = in.u->shape(), bnl{p.batch, p.state, p.length};
  require_act(dout, dt, bdl, op, "dout");
  p.aligned = p.aligned && aligned16(dout);
  if (grads.du) require_act(*grads.du, dt, bdl, op, "du");
  if (grads.ddelta) require_act(*grads.ddelta, dt, bdl, op, "ddelta");
  if (grads.dz) require_act(*grads.dz, dt, bdl, op, "dz");
  if (grads.dB) require_act(*grads.dB, dt, bnl, op, "dB");
  if (grads.dC) require_act(*grads.dC, dt, bnl, op, "dC");
  if (grads.dA) require_dense_f32(*grads.dA, {p.channels, p.state}, op, "dA");
  if (grads.dDskip) require_dense_f32(*grads.dDskip, {p.channels}, op, "dDskip");
  if (grads.ddelta_bias) require_dense_f32(*grads.ddelta_bias, {p.channels}, op, "ddelta_bias");
  if (grads.dh0) require_dense_f32(*grads.dh0, {p.batch, p.channels, p.state}, op, "dh0");
  require(!grads.dz || in.z, op, "dz given without z");
  check_saved(saved, p, op);
  if (p.batch * p.channels == 0 || p.length == 0) {
    // Nothing to differentiate through: every (overwritten) gradient is zero.
    for (Tensor* t : {grads.dA, grads.dDskip, grads.ddelta_bias, grads.dh0}) zero(c, t);
    return;
  }
  if (dt == DType::BF16)
    bwd_chunked<bf16_t>(c, p, in, saved, dout, grads, kern);
  else
    bwd_chunked<float>(c, p, in, saved, dout, grads, kern);
}

int64_t selective_scan_saved_numel(Context&, int64_t batch, int64_t d_inner, int64_t length, int64_t) {
  return batch * num_chunks(length) * d_inner * kMaxState;
}

void selective_scan_fwd(Context& ctx, const ScanInputs& in, Tensor& out, Tensor* h_last, Tensor* saved) {
  selective_scan_fwd_variant(ctx, scan_variants().front(), in, out, h_last, saved);
}

void selective_scan_bwd(Context& ctx, const ScanInputs& in, const Tensor* saved, const Tensor& dout,
                        const ScanGrads& grads) {
  selective_scan_bwd_variant(ctx, scan_variants().front(), in, saved, dout, grads);
}

}  // namespace gm::cuda
