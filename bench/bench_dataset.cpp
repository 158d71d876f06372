// Dataset throughput: how fast token batches come out of a bgzip FASTA, against the
// raw htslib fetch rate of the same sequence measured in the same run.
//
//   bench_dataset [FASTA] [--window N] [--rows N] [--reps N]
//
// Default FASTA: data/setA/grch38.chr20_and_21_10M.fa.gz (found by walking up from the
// working directory). Windows: 8 x 32,769 tokens, tiled over every contig, in the
// shuffled order training uses. Rows of the table:
//   raw faidx      faidx_fetch_seq64 of the same windows in the same order into a
//                  malloc'd buffer; no tokenization (the floor to compare with)
//   dataset        WindowDataset::next on the calling thread (fetch + tokenize + flags)
//   loader         the same through PrefetchLoader (what a training loop sees)
//   random+N       random windows rejected at >= 10% N (the PEERS.md recipe) via the loader;
//                  rate in emitted bases (rejected windows are extra work)
// Each figure is the best of --reps passes over one epoch. The dataset must reach at
// least half the raw rate.
#include <htslib/faidx.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "genomics/intervals.h"
#include "genomics/prefetch_loader.h"
#include "genomics/window_dataset.h"

namespace {

using Clock = std::chrono::steady_clock;

std::string default_fasta() {
  namespace fs = std::filesystem;
  for (fs::path p = fs::current_path(); !p.empty(); p = p.parent_path()) {
    if (fs::exists(p / "data" / "SOURCES.md")) return (p / "data/setA/grch38.chr20_and_21_10M.fa.gz").string();
    if (p == p.parent_path()) break;
  }
  return "data/setA/grch38.chr20_and_21_10M.fa.gz";
}

struct Measure {
  double seconds = 0;
  int64_t bases = 0;
  double mbases_per_s() const { return static_cast<double>(bases) / seconds / 1e6; }
};

Measure best_of(int reps, const std::function<int64_t()>& pass) {
  Measure best;
  for (int i = 0; i < reps; ++i) {
    const auto t0 = Clock::now();
    const int64_t bases = pass();
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    if (best.bases == 0 || s / static_cast<double>(bases) < best.seconds / static_cast<double>(best.bases)) {
      best = {s, bases};
    }
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  std::string fasta_path;
  int64_t window = 32769;
  int rows = 8;
  int reps = 5;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&] {
      if (i + 1 >= argc) {
        std::cerr << "bench_dataset: " << a << " needs a value\n";
        std::exit(1);
      }
      return std::stoll(argv[++i]);
    };
    if (a == "--window") {
      window = value();
    } else if (a == "--rows") {
      rows = static_cast<int>(value());
    } else if (a == "--reps") {
      reps = static_cast<int>(value());
    } else {
      fasta_path = a;
    }
  }
  if (fasta_path.empty()) fasta_path = default_fasta();

  try {
    gm::FastaReader fasta(fasta_path);
    const std::vector<gm::Interval> intervals = gm::intervals_from_regions({}, fasta.contigs());
    gm::WindowDatasetOptions opt;
    opt.mode = gm::WindowMode::Tiled;
    opt.length = window;
    opt.rows = rows;
    opt.seed = 1;
    opt.repeat = false;

    // The windows of one epoch, in the dataset's order, for the raw fetch.
    std::vector<gm::RowInfo> order;
    {
      gm::WindowDataset ds(fasta_path, intervals, opt);
      gm::Batch b;
      while (ds.next(b)) order.insert(order.end(), b.info.begin(), b.info.end());
    }

    faidx_t* fai = fai_load3(fasta_path.c_str(), nullptr, nullptr, 0);
    if (!fai) throw std::runtime_error("cannot load " + fasta_path);
    const Measure raw = best_of(reps, [&] {
      int64_t bases = 0;
      for (const auto& w : order) {
        hts_pos_t len = 0;
        char* seq = faidx_fetch_seq64(fai, w.contig.c_str(), w.start, w.end - 1, &len);
        if (!seq || len != w.end - w.start) throw std::runtime_error("raw fetch failed");
        bases += len;
        std::free(seq);
      }
      return bases;
    });
    fai_destroy(fai);

    const Measure direct = best_of(reps, [&] {
      gm::WindowDataset ds(fasta_path, intervals, opt);
      gm::Batch b;
      int64_t bases = 0;
      while (ds.next(b)) bases += static_cast<int64_t>(b.rows) * b.length;
      return bases;
    });
    const Measure loader = best_of(reps, [&] {
      gm::PrefetchLoader l(std::make_unique<gm::WindowDataset>(fasta_path, intervals, opt), 4);
      gm::Batch b;
      int64_t bases = 0;
      while (l.next(b)) bases += static_cast<int64_t>(b.rows) * b.length;
      return bases;
    });
    gm::WindowDatasetOptions rnd = opt;
    rnd.mode = gm::WindowMode::Random;
    rnd.max_n_frac = 0.1;
    const int64_t random_batches = static_cast<int64_t>(order.size()) / rows;
    const Measure random = best_of(reps, [&] {
      gm::PrefetchLoader l(std::make_unique<gm::WindowDataset>(fasta_path, intervals, rnd), 4);
      gm::Batch b;
      int64_t bases = 0;
      for (int64_t i = 0; i < random_batches && l.next(b); ++i) bases += static_cast<int64_t>(b.rows) * b.length;
      return bases;
    });

    std::printf("dataset throughput: %s, %zu windows of %lld tokens, batches of %d, best of %d\n\n",
                fasta_path.c_str(), order.size(), static_cast<long long>(window), rows, reps);
    std::printf("%-34s %12s %10s %12s\n", "path", "Mbases", "seconds", "Mbases/s");
    auto line = [](const char* name, const Measure& m) {
      std::printf("%-34s %12.2f %10.3f %12.1f\n", name, static_cast<double>(m.bases) / 1e6, m.seconds, m.mbases_per_s());
    };
    line("raw faidx_fetch_seq64", raw);
    line("dataset (tiled, shuffled)", direct);
    line("loader (tiled, shuffled)", loader);
    line("loader (random, reject >= 10% N)", random);
    const double ratio = loader.mbases_per_s() / raw.mbases_per_s();
    std::printf("\nloader / raw = %.2f (required >= 0.50): %s\n", ratio, ratio >= 0.5 ? "ok" : "TOO SLOW");
    return ratio >= 0.5 ? 0 : 3;
  } catch (const std::exception& e) {
    std::cerr << "bench_dataset: " << e.what() << "\n";
    return 2;
  }
}
