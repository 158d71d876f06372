// PrefetchLoader: runs a BatchSource on a background thread and hands its batches to
// the consumer through a bounded queue, so the consumer (the GPU loop) never waits on
// file I/O and tokenization.
// - next() blocks until a batch is ready; it rethrows, on the consumer's thread, any
//   exception the source threw (in the order it happened: batches made before the
//   failure are delivered first).
// - cursor() is the source's cursor right after the last batch the consumer took
//   (not after what the producer ran ahead to), so a checkpoint saved with it resumes
//   at exactly the next batch.
// - restore() stops the producer, discards what it had queued, restores the source,
//   and starts again. The destructor stops the producer cleanly.
#pragma once

#include <condition_variable>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "genomics/batch.h"

namespace gm {

class PrefetchLoader {
 public:
  // depth: batches the producer may run ahead (>= 1).
  explicit PrefetchLoader(std::unique_ptr<BatchSource> source, size_t depth = 4);
  ~PrefetchLoader();
  PrefetchLoader(const PrefetchLoader&) = delete;
  PrefetchLoader& operator=(const PrefetchLoader&) = delete;

  // Next batch into `batch` (its old buffers are recycled); false at the end of a
  // finite source.
  bool next(Batch& batch);
  std::string cursor() const;
  void restore(const std::string& cursor);

 private:
  struct Item {
    Batch batch;
    std::string cursor_after;
    bool end = false;
    std::exception_ptr error;
  };
  void start();
  void stop();
  void produce();

  std::unique_ptr<BatchSource> source_;
  size_t depth_;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<Item> queue_;
  std::deque<Batch> spare_;  // recycled buffers for the producer
  bool stopping_ = false;
  bool finished_ = false;    // the producer delivered its end/error item
  std::string consumer_cursor_;
  std::thread thread_;
};

}  // namespace gm
