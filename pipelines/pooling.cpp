// Streaming pooling of a pass (see pooling.h).
#include "pipelines/pooling.h"

#include <algorithm>
#include <limits>
#include <stdexcept>
#include <tuple>

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

std::pair<int64_t, int64_t> pool_wanted_range(Pool pool, int64_t P) {
  switch (pool) {
    case Pool::Center: return P % 2 ? std::pair{P / 2, P / 2 + 1} : std::pair{P / 2 - 1, P / 2 + 1};
    case Pool::Last: return {P - 1, P};
    default: return {0, P};
  }
}

PassPooler::PassPooler(Pool pool, int64_t dim) : pool_(pool), dim_(dim) {
  if (pool == Pool::None) throw std::invalid_argument("PassPooler: pool 'none' keeps every token, nothing to pool");
  acc_.assign(static_cast<size_t>(dim), 0.0);
  if (pool == Pool::Max) max_.assign(static_cast<size_t>(dim), 0.f);
}

void PassPooler::begin(int64_t length) {
  if (length < 1) throw std::invalid_argument("PassPooler: empty pass");
  std::tie(wanted_begin_, wanted_end_) = pool_wanted_range(pool_, length);
  fed_ = 0;
  std::fill(acc_.begin(), acc_.end(), 0.0);
  std::fill(max_.begin(), max_.end(), -std::numeric_limits<float>::infinity());
}

void PassPooler::feed_reduced(int64_t q0, int64_t q1, const float* reduced) {
  if (q0 < wanted_begin_ || q1 > wanted_end_ || q0 >= q1)
    throw std::logic_error("PassPooler: positions " + std::to_string(q0) + ".." + std::to_string(q1) +
                           " are not a part of the wanted range");
  fed_ += q1 - q0;
  const size_t d = static_cast<size_t>(dim_);
  if (pool_ == Pool::Max) {
    for (size_t j = 0; j < d; ++j) max_[j] = std::max(max_[j], reduced[j]);
  } else {
    for (size_t j = 0; j < d; ++j) acc_[j] += reduced[j];
  }
}

void PassPooler::finish(float weight, float* out) const {
  const int64_t wanted = wanted_end_ - wanted_begin_;
  if (fed_ != wanted)
    throw std::logic_error("PassPooler: " + std::to_string(fed_) + " of " + std::to_string(wanted) + " positions fed");
  const size_t d = static_cast<size_t>(dim_);
  const double scale = 1.0 / static_cast<double>(wanted);
  for (size_t j = 0; j < d; ++j) {
    const double v = pool_ == Pool::Max ? static_cast<double>(max_[j]) : acc_[j] * scale;
    out[j] += static_cast<float>(weight * v);
  }
}

}  // namespace gm
