// Row pitch of the mixer's channel-major activations (MixerDims::pitch, channel_major):
// the rounding rule, and that the allocated tensors are views whose rows start that far
// apart. That the mixer computes the same function on such views is the golden and
// gradient tests' job (their lengths are not multiples of 64).
#include <gtest/gtest.h>

#include "mamba/context.h"
#include "mamba/mixer.h"

namespace gm {
namespace {

MixerDims dims_of(int64_t batch, int64_t length) {
  MixerDims m;
  m.batch = batch;
  m.length = length;
  m.d_model = 8;
  m.d_inner = 16;
  m.d_state = 4;
  m.dt_rank = 2;
  m.d_conv = 4;
  return m;
}

TEST(MixerLayout, PitchRoundsToLinesAndLongRowsToKibibytes) {
  EXPECT_EQ(dims_of(1, 1).pitch(), 64);
  EXPECT_EQ(dims_of(1, 37).pitch(), 64);
  EXPECT_EQ(dims_of(1, 64).pitch(), 64);
  EXPECT_EQ(dims_of(1, 65).pitch(), 128);
  EXPECT_EQ(dims_of(1, 1000).pitch(), 1024);
  EXPECT_EQ(dims_of(1, 8191).pitch(), 8192);
  EXPECT_EQ(dims_of(1, 8192).pitch(), 8192);
  EXPECT_EQ(dims_of(1, 8193).pitch(), 8704);
  EXPECT_EQ(dims_of(8, 131000).pitch(), 131072);
  EXPECT_EQ(dims_of(1, 1000000).pitch(), 1000448);
  EXPECT_EQ(dims_of(1, 1 << 20).pitch(), 1 << 20);
}

TEST(MixerLayout, ChannelMajorTensorsAreViewsWithPitchedRows) {
  CpuContext ctx(1);
  const MixerDims m = dims_of(3, 37);
  Tensor t = channel_major(ctx, m, 5, DType::F32);
  EXPECT_EQ(t.shape(), (Tensor::Shape{3, 5, 37}));
  EXPECT_EQ(t.stride(2), 1);
  EXPECT_EQ(t.stride(1), 64);
  EXPECT_EQ(t.stride(0), 5 * 64);
  EXPECT_FALSE(t.is_contiguous());
  // Halves along the channels (x and z of xz) keep the pitch.
  const Tensor half = t.narrow(1, 2, 3);
  EXPECT_EQ(half.stride(1), 64);
  // Every element of the view can be written and read back.
  float* base = t.data<float>();
  for (int64_t b = 0; b < 3; ++b)
    for (int64_t c = 0; c < 5; ++c)
      for (int64_t l = 0; l < 37; ++l)
        base[b * t.stride(0) + c * t.stride(1) + l] = static_cast<float>(b * 1000 + c * 100 + l);
  EXPECT_EQ(base[2 * t.stride(0) + 4 * t.stride(1) + 36], 2436.f);
}

}  // namespace
}  // namespace gm
