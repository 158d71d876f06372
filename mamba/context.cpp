// Context creation and the CPU context.
#include "mamba/context.h"

#include <future>
#include <thread>

namespace gm {

Precision parse_precision(const std::string& s) {
  if (s == "fp32" || s == "float32") return Precision::FP32;
  if (s == "bf16" || s == "bfloat16") return Precision::BF16;
  throw std::invalid_argument("unknown precision '" + s + "' (expected fp32 or bf16)");
}

const char* precision_name(Precision p) { return p == Precision::BF16 ? "bf16" : "fp32"; }

CpuContext::CpuContext(int threads) {
  const int hw = static_cast<int>(std::thread::hardware_concurrency());
  threads_ = threads > 0 ? threads : (hw > 0 ? hw : 1);
  precision_ = Precision::FP32;
}

std::unique_ptr<Context> Context::create(Device device, int threads, Precision precision) {
  if (device.is_cpu()) return std::make_unique<CpuContext>(threads);
#ifdef GENOMAMBA_HAVE_CUDA
  return make_cuda_context(device, precision);
#else
  (void)precision;
  throw std::runtime_error("this genomamba was built without CUDA; use --device cpu");
#endif
}

std::future<std::unique_ptr<Context>> Context::create_async(Device device, int threads, Precision precision) {
  return std::async(std::launch::async, [=] { return create(device, threads, precision); });
}

#ifndef GENOMAMBA_HAVE_CUDA
bool cuda_available() { return false; }
#endif

}  // namespace gm
