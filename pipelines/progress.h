// Progress reporting for long jobs: a one-line bar redrawn in place on a terminal,
// periodic log lines otherwise (batch jobs, SLURM logs), with throughput and ETA.
#pragma once

#include <chrono>
#include <cstdint>
#include <iosfwd>
#include <string>

namespace gm {

class Progress {
 public:
  // total: units of work (steps, regions, ...) or 0 when unknown; unit: "steps".
  Progress(std::ostream& out, std::string label, int64_t total, std::string unit, bool force_lines = false);
  // done units so far; `rate_text` is extra text such as "1.2 M tok/s loss 1.93".
  void update(int64_t done, const std::string& detail);
  // Ends the bar line (no-op in line mode).
  void finish();
  double elapsed_seconds() const;
  static std::string format_duration(double seconds);  // "1h02m", "3m05s", "12s"
  static std::string format_rate(double per_second);   // "1.23 M", "456 k"

 private:
  std::ostream& out_;
  std::string label_, unit_;
  int64_t total_;
  bool terminal_;
  bool drawn_ = false;
  std::chrono::steady_clock::time_point start_, last_line_;
};

}  // namespace gm
