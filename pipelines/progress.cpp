// Progress bar / log lines.
#include "pipelines/progress.h"

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <iostream>
#include <sstream>

namespace gm {

Progress::Progress(std::ostream& out, std::string label, int64_t total, std::string unit, bool force_lines)
    : out_(out), label_(std::move(label)), unit_(std::move(unit)), total_(total) {
  terminal_ = !force_lines && (&out == &std::cerr ? isatty(STDERR_FILENO) : (&out == &std::cout && isatty(STDOUT_FILENO)));
  start_ = last_line_ = std::chrono::steady_clock::now();
}

double Progress::elapsed_seconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

std::string Progress::format_duration(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  char buf[32];
  const auto t = static_cast<int64_t>(s + 0.5);
  if (t >= 3600) std::snprintf(buf, sizeof buf, "%lldh%02lldm", (long long)(t / 3600), (long long)(t % 3600 / 60));
  else if (t >= 60) std::snprintf(buf, sizeof buf, "%lldm%02llds", (long long)(t / 60), (long long)(t % 60));
  else std::snprintf(buf, sizeof buf, "%llds", (long long)t);
  return buf;
}

std::string Progress::format_rate(double r) {
  char buf[32];
  if (r >= 1e9) std::snprintf(buf, sizeof buf, "%.2f G", r / 1e9);
  else if (r >= 1e6) std::snprintf(buf, sizeof buf, "%.2f M", r / 1e6);
  else if (r >= 1e3) std::snprintf(buf, sizeof buf, "%.1f k", r / 1e3);
  else std::snprintf(buf, sizeof buf, "%.1f", r);
  return buf;
}

void Progress::update(int64_t done, const std::string& detail) {
  const double el = elapsed_seconds();
  std::ostringstream line;
  line << label_ << " " << done;
  if (total_ > 0) line << "/" << total_;
  line << " " << unit_;
  if (total_ > 0 && done > 0) {
    const double eta = el / static_cast<double>(done) * static_cast<double>(total_ - done);
    line << " | " << format_duration(el) << " elapsed, ETA " << format_duration(eta);
  }
  if (!detail.empty()) line << " | " << detail;
  if (terminal_) {
    std::string bar;
    if (total_ > 0) {
      const int width = 20;
      const int filled = static_cast<int>(width * std::min<double>(1.0, double(done) / double(total_)));
      bar = "[" + std::string(filled, '#') + std::string(width - filled, '.') + "] ";
    }
    out_ << "\r" << bar << line.str() << "\033[K" << std::flush;
    drawn_ = true;
  } else {
    out_ << line.str() << "\n" << std::flush;
  }
}

void Progress::finish() {
  if (terminal_ && drawn_) out_ << "\n" << std::flush;
  drawn_ = false;
}

}  // namespace gm
