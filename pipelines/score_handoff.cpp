// The two-thread hand-over of a full-context score job (see score_handoff.h).
#include "pipelines/score_handoff.h"

#include <chrono>

namespace gm {

void StreamHandoff::throw_if_failed_locked() const {
  if (error_) throw Stopped();
}

StreamHandoff::Contig& StreamHandoff::contig_locked(int index) {
  if (index < 0 || static_cast<size_t>(index) >= contigs_.size()) throw std::logic_error("StreamHandoff: no such contig");
  return contigs_[static_cast<size_t>(index)];
}

const StreamHandoff::Contig& StreamHandoff::contig_locked(int index) const {
  if (index < 0 || static_cast<size_t>(index) >= contigs_.size()) throw std::logic_error("StreamHandoff: no such contig");
  return contigs_[static_cast<size_t>(index)];
}

int StreamHandoff::open_contig(std::shared_ptr<const ContigTokens> seq, bool incremental) {
  std::lock_guard<std::mutex> lock(mu_);
  throw_if_failed_locked();
  if (!contigs_.empty() && !contigs_.back().closed) throw std::logic_error("StreamHandoff: the last contig is still open");
  Contig& c = contigs_.emplace_back();
  c.seq = std::move(seq);
  c.incremental = incremental;
  stream_wants_ = -1;
  cv_.notify_all();
  return static_cast<int>(contigs_.size()) - 1;
}

void StreamHandoff::add_job(StrandJob* job, int64_t record_pos) {
  std::lock_guard<std::mutex> lock(mu_);
  Contig& c = contigs_.back();
  if (record_pos < c.advanced) throw std::logic_error("StreamHandoff: a job before the contig's advance");
  c.jobs.push_back(job);
  c.job_record_pos.push_back(record_pos);
}

void StreamHandoff::advance(int64_t forward_pos) {
  std::lock_guard<std::mutex> lock(mu_);
  throw_if_failed_locked();
  Contig& c = contigs_.back();
  if (forward_pos < c.advanced) throw std::logic_error("StreamHandoff: records out of order");
  c.advanced = forward_pos;
  // Wake the stream only when it can go on: a wake-up per record would cost more than the reading.
  if (stream_wants_ >= 0 && c.advanced >= stream_wants_) cv_.notify_all();
}

void StreamHandoff::close_contig() {
  std::lock_guard<std::mutex> lock(mu_);
  if (contigs_.empty()) return;
  contigs_.back().closed = true;
  cv_.notify_all();
}

void StreamHandoff::finish_input() {
  std::lock_guard<std::mutex> lock(mu_);
  input_done_ = true;
  cv_.notify_all();
}

StreamHandoff::Progress StreamHandoff::progress(int contig) const {
  std::lock_guard<std::mutex> lock(mu_);
  return contig_locked(contig).progress;
}

void StreamHandoff::wait_progress(int contig, const Progress& seen) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return error_ || !(contig_locked(contig).progress == seen); });
  throw_if_failed_locked();
}

bool StreamHandoff::next_contig(int& index, std::shared_ptr<const ContigTokens>& seq, bool& incremental) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return error_ || handed_ < contigs_.size() || input_done_; });
  throw_if_failed_locked();
  if (handed_ >= contigs_.size()) return false;
  index = static_cast<int>(handed_++);
  const Contig& c = contigs_[static_cast<size_t>(index)];
  seq = c.seq;
  incremental = c.incremental;
  return true;
}

double StreamHandoff::take_before(int contig, int64_t forward_pos, std::vector<StrandJob*>& out) {
  std::unique_lock<std::mutex> lock(mu_);
  Contig& c = contig_locked(contig);
  double waited = 0;
  if (!error_ && !c.closed && c.advanced < forward_pos) {
    const auto start = std::chrono::steady_clock::now();
    stream_wants_ = forward_pos;
    cv_.wait(lock, [&] { return error_ || c.closed || c.advanced >= forward_pos; });
    stream_wants_ = -1;
    waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  throw_if_failed_locked();
  while (c.taken < c.jobs.size() && c.job_record_pos[c.taken] < forward_pos) out.push_back(c.jobs[c.taken++]);
  return waited;
}

bool StreamHandoff::exhausted(int contig) const {
  std::lock_guard<std::mutex> lock(mu_);
  const Contig& c = contig_locked(contig);
  return c.closed && c.taken == c.jobs.size();
}

void StreamHandoff::set_final_before(int contig, int64_t forward_pos) {
  std::lock_guard<std::mutex> lock(mu_);
  Contig& c = contig_locked(contig);
  if (forward_pos > c.progress.final_before) {
    c.progress.final_before = forward_pos;
    cv_.notify_all();
  }
}

void StreamHandoff::set_all_final(int contig) {
  std::lock_guard<std::mutex> lock(mu_);
  contig_locked(contig).progress.all_final = true;
  cv_.notify_all();
}

void StreamHandoff::fail(std::exception_ptr error) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!error_) error_ = error ? error : std::make_exception_ptr(Stopped());
  cv_.notify_all();
}

std::exception_ptr StreamHandoff::error() const {
  std::lock_guard<std::mutex> lock(mu_);
  return error_;
}

}  // namespace gm
