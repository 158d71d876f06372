// Bounded producer/consumer queue around a BatchSource.
#include "genomics/prefetch_loader.h"

#include <stdexcept>

namespace gm {

PrefetchLoader::PrefetchLoader(std::unique_ptr<BatchSource> source, size_t depth)
    : source_(std::move(source)), depth_(depth < 1 ? 1 : depth) {
  if (!source_) throw std::invalid_argument("PrefetchLoader: null source");
  consumer_cursor_ = source_->save_cursor();
  start();
}

PrefetchLoader::~PrefetchLoader() { stop(); }

void PrefetchLoader::start() {
  stopping_ = false;
  finished_ = false;
  thread_ = std::thread([this] { produce(); });
}

void PrefetchLoader::stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  changed_.notify_all();
  if (thread_.joinable()) thread_.join();
  std::lock_guard<std::mutex> lock(mutex_);
  queue_.clear();
}

void PrefetchLoader::produce() {
  for (;;) {
    Item item;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      changed_.wait(lock, [this] { return stopping_ || queue_.size() < depth_; });
      if (stopping_) return;
      if (!spare_.empty()) {
        item.batch = std::move(spare_.front());
        spare_.pop_front();
      }
    }
    // The source runs outside the lock: the consumer keeps taking batches meanwhile.
    try {
      item.end = !source_->next(item.batch);
      item.cursor_after = source_->save_cursor();
    } catch (...) {
      item.error = std::current_exception();
    }
    const bool last = item.end || item.error;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (stopping_) return;
      queue_.push_back(std::move(item));
    }
    changed_.notify_all();
    if (last) return;
  }
}

bool PrefetchLoader::next(Batch& batch) {
  Item item;
  {
    std::unique_lock<std::mutex> lock(mutex_);
    if (finished_) return false;
    changed_.wait(lock, [this] { return !queue_.empty(); });
    item = std::move(queue_.front());
    queue_.pop_front();
    if (item.end || item.error) finished_ = true;
    if (!item.error) consumer_cursor_ = item.cursor_after;
    if (batch.tokens.capacity() > 0 && spare_.size() < depth_) spare_.push_back(std::move(batch));
  }
  changed_.notify_all();
  if (item.error) std::rethrow_exception(item.error);
  batch = std::move(item.batch);
  return !item.end;
}

std::string PrefetchLoader::cursor() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return consumer_cursor_;
}

void PrefetchLoader::restore(const std::string& cursor) {
  stop();
  try {
    source_->restore_cursor(cursor);
  } catch (...) {
    // A bad cursor leaves the loader where the consumer was, still usable.
    source_->restore_cursor(consumer_cursor_);
    start();
    throw;
  }
  consumer_cursor_ = source_->save_cursor();
  start();
}

}  // namespace gm
