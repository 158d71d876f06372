// Context: everything an op needs to run on one device (allocator, thread count,
// precision; on CUDA also the stream and the cuBLAS handles). Owned by whoever
// runs the model; passed to every op. No global state.
#pragma once

#include <future>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>

#include "mamba/tensor.h"

namespace gm {

// Activation precision. fp32 everywhere on the CPU; on CUDA bf16 activations and
// matrix operands with fp32 accumulation (default), or fp32 for tight checks.
enum class Precision : uint8_t { FP32, BF16 };

Precision parse_precision(const std::string& s);  // "fp32" | "bf16"
const char* precision_name(Precision p);

// Thrown by the CUDA backend when a device allocation fails; the message names the
// size asked for and suggests a smaller batch or length.
class OutOfDeviceMemory : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Wall-clock seconds and call counts per op, filled by the dispatcher (mamba/ops.cpp)
// while a Context's `profile` points at one. For benchmarks: on CUDA each profiled op
// synchronises, which serialises the stream.
struct OpProfile {
  std::map<std::string, double> seconds;
  std::map<std::string, int64_t> calls;
};

class Context {
 public:
  virtual ~Context() = default;
  // CPU: threads = worker threads for ops (0 = all cores). CUDA: device index from
  // `device`; precision picks the activation dtype. Throws when CUDA is not built in
  // or the device does not exist.
  static std::unique_ptr<Context> create(Device device, int threads = 0,
                                         Precision precision = Precision::FP32);
  // create() on another thread: a GPU context takes a few tenths of a second (driver,
  // cuBLAS), which callers overlap with reading their inputs.
  static std::future<std::unique_ptr<Context>> create_async(Device device, int threads = 0,
                                                            Precision precision = Precision::FP32);

  virtual Device device() const = 0;
  virtual Allocator& allocator() = 0;
  virtual void synchronize() = 0;
  int threads() const { return threads_; }
  Precision precision() const { return precision_; }
  // dtype of activations between matrix products
  DType act_dtype() const { return precision_ == Precision::BF16 ? DType::BF16 : DType::F32; }

  Tensor empty(const Tensor::Shape& shape, DType dtype) { return Tensor::empty(allocator(), shape, dtype); }

  OpProfile* profile = nullptr;  // not owned; null = no profiling

  // Bytes the CUDA selective-scan backward may hold at once for its sub-chunk gradient
  // flows (it cuts the chunks into windows to fit: mamba/cuda/scan_segments.h,
  // flow_window_chunks); the CPU ignores it. The model's training step raises it into the
  // memory its plan leaves free (MambaModel::forward_backward, plan_step).
  static constexpr int64_t kDefaultScanFlowBudget = int64_t{1} << 30;
  int64_t scan_flow_budget = kDefaultScanFlowBudget;

 protected:
  int threads_ = 1;
  Precision precision_ = Precision::FP32;
};

class CpuContext final : public Context {
 public:
  explicit CpuContext(int threads);
  Device device() const override { return Device::cpu(); }
  Allocator& allocator() override { return alloc_; }
  void synchronize() override {}

 private:
  CpuAllocator alloc_;
};

// Defined in mamba/cuda/context.cu when the CUDA backend is built.
std::unique_ptr<Context> make_cuda_context(Device device, Precision precision);
bool cuda_available();  // false when not built with CUDA or no device is present

}  // namespace gm
