// CUDA embedding forward / backward against the CPU twin; the backward is bitwise
// deterministic.
#include "tests/test_cuda_support.h"

#ifdef GENOMAMBA_HAVE_CUDA
#include <tuple>

namespace gm::test {
namespace {

using CudaEmbedding = CudaTest;

TEST_F(CudaEmbedding, MatchesCpuAndIsDeterministic) {
  SCOPED_TRACE(seed_note());
  const int64_t V = 16;
  for (auto [B, L, d] : {std::tuple<int64_t, int64_t, int64_t>{1, 1, 8}, {3, 1000, 256}, {2, 5000, 130}}) {
    SCOPED_TRACE("B" + std::to_string(B) + " L" + std::to_string(L) + " d" + std::to_string(d));
    Tensor tokens = host({B, L}, DType::U8);
    std::uniform_int_distribution<int> tok(0, V - 1);
    for (int64_t i = 0; i < tokens.numel(); ++i) tokens.data<uint8_t>()[i] = static_cast<uint8_t>(tok(rng_));
    Tensor w = normal({V, d}, 0.02f);
    Tensor out = host({B, L, d});
    Tensor dtok = upload(tokens), dw = upload(w), dout_ = dev({B, L, d}, DType::F32);
    poison(dout_);
    gm::cpu::embedding_fwd(*cpu_, tokens, w, out);
    gm::cuda::embedding_fwd(*gpu_, dtok, dw, dout_);
    EXPECT_TRUE(bitwise_equal(download(dout_), out));

    Tensor g = normal({B, L, d});
    Tensor dwg = normal({V, d});  // accumulated into
    Tensor dg = upload(g), ddwg = upload(dwg), ddwg2 = upload(dwg);
    gm::cpu::embedding_bwd(*cpu_, tokens, g, dwg);
    gm::cuda::embedding_bwd(*gpu_, dtok, dg, ddwg);
    gm::cuda::embedding_bwd(*gpu_, dtok, dg, ddwg2);
    const Tensor got = download(ddwg);
    EXPECT_LE(rel_error(got, dwg), 1e-5);
    EXPECT_TRUE(bitwise_equal(got, download(ddwg2)));
  }
}

}  // namespace
}  // namespace gm::test
#endif
