// PrefetchLoader with scripted sources: order, end of stream, exceptions forwarded
// after the batches made before them, clean shutdown with a full queue.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <string>
#include <thread>

#include "genomics/errors.h"
#include "genomics/prefetch_loader.h"

namespace gm {
namespace {

// Batch k holds one row of one token equal to k; throws at `fail_at`, ends at `end_at`.
class CountingSource : public BatchSource {
 public:
  CountingSource(int end_at, int fail_at, std::atomic<int>* produced = nullptr)
      : end_at_(end_at), fail_at_(fail_at), produced_(produced) {}
  bool next(Batch& b) override {
    if (k_ == fail_at_) throw InputError("source failed at batch " + std::to_string(k_));
    if (k_ == end_at_) {
      b.reset(0, 1);
      return false;
    }
    b.reset(1, 1);
    b.tokens[0] = static_cast<uint8_t>(k_++);
    if (produced_) ++*produced_;
    return true;
  }
  std::string save_cursor() const override { return std::to_string(k_); }
  void restore_cursor(const std::string& c) override {
    if (c.empty() || c.find_first_not_of("0123456789") != std::string::npos) throw InputError("bad cursor " + c);
    k_ = std::stoi(c);
  }

 private:
  int k_ = 0;
  int end_at_, fail_at_;
  std::atomic<int>* produced_;
};

TEST(PrefetchLoader, DeliversInOrderThenEnds) {
  PrefetchLoader loader(std::make_unique<CountingSource>(10, -1), 3);
  Batch b;
  for (int k = 0; k < 10; ++k) {
    ASSERT_TRUE(loader.next(b));
    EXPECT_EQ(b.tokens[0], k);
    EXPECT_EQ(loader.cursor(), std::to_string(k + 1));
  }
  EXPECT_FALSE(loader.next(b));
  EXPECT_FALSE(loader.next(b));
}

TEST(PrefetchLoader, ForwardsTheSourcesExceptionAfterEarlierBatches) {
  PrefetchLoader loader(std::make_unique<CountingSource>(100, 4), 8);
  Batch b;
  for (int k = 0; k < 4; ++k) {
    ASSERT_TRUE(loader.next(b));
    EXPECT_EQ(b.tokens[0], k);
  }
  try {
    loader.next(b);
    FAIL() << "no exception";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("batch 4"), std::string::npos);
  }
  EXPECT_EQ(loader.cursor(), "4");
}

TEST(PrefetchLoader, QueueIsBoundedAndShutdownIsClean) {
  std::atomic<int> produced{0};
  {
    PrefetchLoader loader(std::make_unique<CountingSource>(1 << 30, -1, &produced), 2);
    Batch b;
    ASSERT_TRUE(loader.next(b));
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    // One taken, two queued, at most one more in the producer's hands.
    EXPECT_LE(produced.load(), 4);
  }  // destroyed while the producer waits on a full queue: must not hang
  SUCCEED();
}

TEST(PrefetchLoader, RestoreRestartsAtTheCursorAndSurvivesABadOne) {
  PrefetchLoader loader(std::make_unique<CountingSource>(50, -1), 4);
  Batch b;
  for (int k = 0; k < 5; ++k) ASSERT_TRUE(loader.next(b));
  loader.restore("20");
  ASSERT_TRUE(loader.next(b));
  EXPECT_EQ(b.tokens[0], 20);
  EXPECT_THROW(loader.restore("x"), InputError);
  ASSERT_TRUE(loader.next(b));
  EXPECT_EQ(b.tokens[0], 21);
}

}  // namespace
}  // namespace gm
