// inspect: composition scan (threaded), window counting from N runs, read filter stats.
#include "pipelines/inspect.h"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <exception>
#include <iomanip>
#include <map>
#include <mutex>
#include <numeric>
#include <sstream>
#include <thread>

#include "genomics/composition.h"
#include "genomics/errors.h"
#include "genomics/fasta.h"
#include "genomics/intervals.h"
#include "genomics/text.h"

namespace gm {
namespace {

int resolve_threads(int threads) {
  if (threads > 0) return threads;
  const unsigned hw = std::thread::hardware_concurrency();
  return hw == 0 ? 1 : static_cast<int>(hw);
}

// Scans the contigs on `threads` workers, each with its own FASTA handle (faidx is
// not thread-safe); the longest contigs go first so the workers finish together.
std::vector<ContigComposition> scan_contigs(const FastaReader& fasta, int threads) {
  const size_t n = fasta.contigs().size();
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return fasta.contigs()[a].length > fasta.contigs()[b].length; });
  std::vector<ContigComposition> out(n);
  std::atomic<size_t> next{0};
  std::exception_ptr error;
  std::mutex error_mutex;
  auto worker = [&] {
    try {
      FastaReader own(fasta.path());
      for (size_t k; (k = next.fetch_add(1)) < n;) {
        const size_t id = order[k];
        out[id] = scan_contig(own, static_cast<int>(id));
      }
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mutex);
      if (!error) error = std::current_exception();
      next.store(n);
    }
  };
  const int workers = std::max(1, std::min<int>(threads, static_cast<int>(n)));
  std::vector<std::thread> pool;
  for (int i = 1; i < workers; ++i) pool.emplace_back(worker);
  worker();
  for (auto& t : pool) t.join();
  if (error) std::rethrow_exception(error);
  return out;
}

std::vector<SplitReport> count_windows(const std::vector<Interval>& intervals, const FastaReader& fasta,
                                       const std::vector<ContigComposition>& composition,
                                       const InspectOptions& options) {
  std::map<Split, std::vector<Interval>> by_split;
  for (const auto& iv : intervals) by_split[iv.split].push_back(iv);
  std::vector<SplitReport> out;
  for (auto& [split, ivs] : by_split) {
    SplitReport s;
    s.split = split;
    s.intervals = ivs.size();
    for (const auto& iv : ivs) s.bases += iv.region.length();
    const WindowPlan plan(std::move(ivs), fasta.contigs(), options.mode, options.window, options.stride);
    s.windows = plan.size();
    for (uint64_t i = 0; i < plan.size(); ++i) {
      const WindowSpan w = plan.window(i);
      const int64_t n = composition[static_cast<size_t>(w.contig_id)].n_runs.count(w.beg, w.end);
      if (options.filter.rejects(w, n, options.window)) ++s.rejected;
    }
    out.push_back(s);
  }
  return out;
}

ReadsReport scan_reads(const InspectOptions& options, const FastaReader& fasta, int threads) {
  ReadReader reader(options.reads, &fasta, options.read_filter, threads);
  Read read;
  if (options.regions.empty()) {
    while (reader.next(read)) {
    }
  } else {
    for (const auto& region : parse_regions(options.regions, fasta.contigs())) {
      reader.set_region(region);
      while (reader.next(read)) {
      }
    }
  }
  return ReadsReport{options.reads, reader.is_cram(), reader.stats()};
}

std::string percent(int64_t part, int64_t whole) {
  if (whole <= 0) return "-";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f%%", 100.0 * static_cast<double>(part) / static_cast<double>(whole));
  return buf;
}

// A left-aligned first column, right-aligned numbers.
class Table {
 public:
  explicit Table(std::vector<std::string> header) { rows_.push_back(std::move(header)); }
  void add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  void print(std::ostream& os) const {
    std::vector<size_t> width(rows_[0].size(), 0);
    for (const auto& r : rows_) {
      for (size_t c = 0; c < r.size(); ++c) width[c] = std::max(width[c], r[c].size());
    }
    for (const auto& r : rows_) {
      for (size_t c = 0; c < r.size(); ++c) {
        if (c == 0) {
          os << std::left << std::setw(static_cast<int>(width[c])) << r[c];
        } else {
          os << "  " << std::right << std::setw(static_cast<int>(width[c])) << r[c];
        }
      }
      os << "\n";
    }
  }

 private:
  std::vector<std::vector<std::string>> rows_;
};

}  // namespace

InspectReport run_inspect(const InspectOptions& options) {
  if (options.window < 0) throw InputError("window length must be >= 0");
  if (options.mode == WindowMode::Random) throw InputError("inspect counts tiled or strided windows, not random ones");
  const int threads = resolve_threads(options.threads);
  FastaReader fasta(options.fasta);
  InspectReport report;
  report.fasta = options.fasta;
  report.bgzip = fasta.bgzip_compressed();

  // Intervals are checked before the long scan, so a bad BED fails at once.
  std::vector<Interval> intervals;
  if (!options.bed.empty()) {
    intervals = intervals_from_bed(read_bed(options.bed), fasta.contigs());
    report.intervals_source = "BED " + options.bed;
  } else {
    intervals = intervals_from_regions(options.regions, fasta.contigs());
    report.intervals_source = options.regions.empty() ? "whole contigs" : "regions";
  }

  const std::vector<ContigComposition> composition = scan_contigs(fasta, threads);
  for (const auto& c : composition) {
    report.contigs.push_back(ContigReport{fasta.contigs()[static_cast<size_t>(c.contig_id)].name, c.length, c.counts});
  }
  if (options.window > 0) report.splits = count_windows(intervals, fasta, composition, options);
  if (!options.reads.empty()) report.reads = scan_reads(options, fasta, threads);
  return report;
}

void print_inspect_report(const InspectReport& report, const InspectOptions& options, std::ostream& os) {
  int64_t total_length = 0;
  BaseCounts total;
  for (const auto& c : report.contigs) {
    total_length += c.length;
    total.add(c.counts);
  }
  os << "FASTA " << report.fasta << " (" << (report.bgzip ? "bgzip" : "plain") << "): " << report.contigs.size()
     << " contig" << (report.contigs.size() == 1 ? "" : "s") << ", " << with_commas(total_length) << " bp\n\n";
  Table contigs({"contig", "length", "N", "N%", "soft-masked%", "GC% of non-N"});
  auto add_row = [&](const std::string& name, int64_t length, const BaseCounts& c) {
    contigs.add({name, with_commas(length), with_commas(c.n), percent(c.n, length), percent(c.soft_masked, length),
                 percent(c.gc, length - c.n)});
  };
  for (const auto& c : report.contigs) add_row(c.name, c.length, c.counts);
  if (report.contigs.size() > 1) add_row("total", total_length, total);
  contigs.print(os);

  if (!report.splits.empty() || options.window > 0) {
    const int64_t stride = options.stride > 0 ? options.stride : options.window;
    os << "\nwindows: " << window_mode_name(options.mode) << ", length " << with_commas(options.window) << ", stride "
       << with_commas(stride) << ", over " << report.intervals_source;
    if (options.filter.max_n_frac < 1.0) os << "; rejected when N fraction >= " << options.filter.max_n_frac;
    if (options.filter.min_non_n > 0) os << "; rejected below " << with_commas(options.filter.min_non_n) << " non-N";
    os << "\n";
    Table windows({"split", "intervals", "bases", "windows", "rejected", "kept"});
    for (const auto& s : report.splits) {
      windows.add({split_name(s.split), with_commas(static_cast<int64_t>(s.intervals)), with_commas(s.bases),
                   with_commas(static_cast<int64_t>(s.windows)), with_commas(static_cast<int64_t>(s.rejected)),
                   with_commas(static_cast<int64_t>(s.windows - s.rejected))});
    }
    windows.print(os);
  }

  if (report.reads) {
    const ReadStats& r = report.reads->stats;
    std::ostringstream flags;
    flags << "0x" << std::hex << options.read_filter.exclude_flags;
    os << "\nreads " << report.reads->path << " (" << (report.reads->cram ? "CRAM" : "BAM") << ")\n";
    Table reads({"reads", "count", "%"});
    reads.add({"records", with_commas(r.records), percent(r.records, r.records)});
    reads.add({"kept", with_commas(r.kept), percent(r.kept, r.records)});
    reads.add({"dropped: flags " + flags.str(), with_commas(r.dropped_flags), percent(r.dropped_flags, r.records)});
    reads.add({"dropped: unmapped", with_commas(r.dropped_unmapped), percent(r.dropped_unmapped, r.records)});
    reads.add({"dropped: MAPQ < " + std::to_string(options.read_filter.min_mapq), with_commas(r.dropped_mapq),
               percent(r.dropped_mapq, r.records)});
    reads.add({"skipped: no SEQ", with_commas(r.no_seq), percent(r.no_seq, r.records)});
    reads.print(os);
    os << "kept bases " << with_commas(r.kept_bases);
    if (r.kept > 0) os << ", mean read length " << with_commas(r.kept_bases / r.kept);
    os << "\n";
  }
}

}  // namespace gm
