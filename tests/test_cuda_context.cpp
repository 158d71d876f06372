// The CUDA context: device allocator accounting (in use, peak, reset), reuse of cached
// blocks, the out-of-memory error, and contexts refused for devices that do not exist.
#include "tests/test_cuda_support.h"

#ifdef GENOMAMBA_HAVE_CUDA
#include "mamba/cuda/context_cuda.h"

namespace gm::test {
namespace {

using CudaContextTest = CudaTest;

TEST_F(CudaContextTest, AllocatorCountsBytesAndPeak) {
  Allocator& a = gpu_->allocator();
  EXPECT_TRUE(a.device().is_cuda());
  const size_t base = a.bytes_in_use();
  a.reset_peak();
  {
    Tensor t1 = dev({1000}, DType::F32);  // 4000 B -> 4096 counted (512-byte blocks)
    EXPECT_EQ(a.bytes_in_use(), base + 4096);
    {
      Tensor t2 = dev({3 << 20}, DType::BF16);  // 6 MiB
      EXPECT_EQ(a.bytes_in_use(), base + 4096 + (size_t(6) << 20));
    }
    EXPECT_EQ(a.bytes_in_use(), base + 4096);
    EXPECT_EQ(a.peak_bytes(), base + 4096 + (size_t(6) << 20));
  }
  EXPECT_EQ(a.bytes_in_use(), base);
  a.reset_peak();
  EXPECT_EQ(a.peak_bytes(), base);
}

TEST_F(CudaContextTest, FreedBlocksAreReused) {
  void* first = nullptr;
  {
    Tensor t = dev({12345}, DType::F32);
    first = t.raw();
  }
  Tensor again = dev({12345}, DType::F32);
  EXPECT_EQ(again.raw(), first);
  auto& c = static_cast<gm::cuda::CudaContext&>(*gpu_);
  EXPECT_GE(c.cuda_allocator().reserved_bytes(), c.cuda_allocator().bytes_in_use());
  size_t free_b = 0, total_b = 0;
  c.mem_info(free_b, total_b);
  EXPECT_GT(total_b, free_b);
}

TEST_F(CudaContextTest, OutOfMemoryNamesTheSize) {
  const int64_t huge = int64_t(1) << 48;  // 1 PiB of f32
  try {
    Tensor t = dev({huge}, DType::F32);
    FAIL() << "allocating 1 PiB succeeded";
  } catch (const OutOfDeviceMemory& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("GiB"), std::string::npos) << msg;
    EXPECT_NE(msg.find("1048576.00 GiB"), std::string::npos) << msg;
    EXPECT_NE(msg.find("smaller batch"), std::string::npos) << msg;
  }
  // The context still works afterwards.
  Tensor ok = dev({16}, DType::F32);
  gm::cuda::fill(*gpu_, ok, 2.f);
  EXPECT_EQ(gm::cuda::sum(*gpu_, ok), 32.0);
}

TEST_F(CudaContextTest, MissingDeviceIsAnError) {
  EXPECT_THROW(gm::make_cuda_context(Device::cuda(4096), Precision::FP32), std::runtime_error);
  EXPECT_THROW(Context::create(Device::cuda(4096)), std::runtime_error);
  EXPECT_TRUE(Context::create(Device::cuda(0), 0, Precision::BF16)->device().is_cuda());
}

}  // namespace
}  // namespace gm::test
#else
TEST(CudaContextTest, BuiltWithoutCuda) { GTEST_SKIP() << "built without the CUDA backend"; }
#endif
