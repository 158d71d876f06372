// Streaming pooling of a pass (see pooling.h).
#include "pipelines/pooling.h"

#include <algorithm>
#include <limits>
#include <stdexcept>

namespace gm {

Pool parse_pool(const std::string& text) {
  if (text == "mean") return Pool::Mean;
  if (text == "max") return Pool::Max;
  if (text == "center" || text == "centre") return Pool::Center;
  if (text == "last") return Pool::Last;
  if (text == "none") return Pool::None;
  throw std::invalid_argument("unknown --pool '" + text + "' (expected mean, max, center, last or none)");
}

const char* pool_name(Pool p) {
  switch (p) {
    case Pool::Mean: return "mean";
    case Pool::Max: return "max";
    case Pool::Center: return "center";
    case Pool::Last: return "last";
    case Pool::None: return "none";
  }
  return "?";
}

StrandMode parse_strand_mode(const std::string& text) {
  if (text == "fwd" || text == "forward") return StrandMode::Fwd;
  if (text == "rc") return StrandMode::Rc;
  if (text == "both") return StrandMode::Both;
  throw std::invalid_argument("unknown --strand '" + text + "' (expected fwd, rc or both)");
}

const char* strand_mode_name(StrandMode s) {
  switch (s) {
    case StrandMode::Fwd: return "fwd";
    case StrandMode::Rc: return "rc";
    case StrandMode::Both: return "both";
  }
  return "?";
}

PassPooler::PassPooler(Pool pool, int64_t dim) : pool_(pool), dim_(dim) {
  if (pool == Pool::None) throw std::invalid_argument("PassPooler: pool 'none' keeps every token, nothing to pool");
  acc_.assign(static_cast<size_t>(dim), 0.0);
  if (pool == Pool::Max) max_.assign(static_cast<size_t>(dim), 0.f);
}

void PassPooler::begin(int64_t length) {
  if (length < 1) throw std::invalid_argument("PassPooler: empty pass");
  length_ = length;
  fed_ = 0;
  std::fill(acc_.begin(), acc_.end(), 0.0);
  std::fill(max_.begin(), max_.end(), -std::numeric_limits<float>::infinity());
}

void PassPooler::feed(int64_t q, const float* x) {
  ++fed_;
  const size_t d = static_cast<size_t>(dim_);
  switch (pool_) {
    case Pool::Mean:
      for (size_t j = 0; j < d; ++j) acc_[j] += x[j];
      break;
    case Pool::Max:
      for (size_t j = 0; j < d; ++j) max_[j] = std::max(max_[j], x[j]);
      break;
    case Pool::Center: {
      const bool middle = length_ % 2 ? q == length_ / 2 : (q == length_ / 2 - 1 || q == length_ / 2);
      if (middle)
        for (size_t j = 0; j < d; ++j) acc_[j] += x[j];
      break;
    }
    case Pool::Last:
      if (q == length_ - 1)
        for (size_t j = 0; j < d; ++j) acc_[j] = x[j];
      break;
    case Pool::None: break;
  }
}

void PassPooler::finish(float weight, float* out) const {
  if (fed_ != length_)
    throw std::logic_error("PassPooler: " + std::to_string(fed_) + " of " + std::to_string(length_) + " positions fed");
  const size_t d = static_cast<size_t>(dim_);
  double scale = 1.0;
  if (pool_ == Pool::Mean) scale = 1.0 / static_cast<double>(length_);
  if (pool_ == Pool::Center) scale = length_ % 2 ? 1.0 : 0.5;
  for (size_t j = 0; j < d; ++j) {
    const double v = pool_ == Pool::Max ? static_cast<double>(max_[j]) : acc_[j] * scale;
    out[j] += static_cast<float>(weight * v);
  }
}

}  // namespace gm
