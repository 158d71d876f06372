// Variant scoring throughput: `genomamba score` with --context full and with --context
// 8192 against the naive way existing tools score variants (a fresh 8,192-bp forward pass
// for the REF window and one for the ALT window per variant, 64 windows per pass; the
// peer does 525 variants/s that way on an H200, PEERS.md), on two sets:
//   giab   the GIAB HG002 chr20 truth-set records inside the bundled 10 Mb (16,192)
//   dense  an SNV at every 100th base of chr20:1-10,000,000 (REF from the FASTA, ALT the
//          next base in A>C>G>T>A order; N positions skipped), generated here
// Model: configs/d256x8.ini with random weights (speed does not depend on the weights).
// `genomamba score` runs with its default --strand both (each strand streamed, the score
// the mean of the two); the naive way reads the forward strand only, so full context is
// also timed with --strand forward, like for like.
// Times are wall-clock of the whole job (reading, model, writing), after one warm-up job.
//
// Usage: bench_score [--device cpu|cuda[:N]] [--precision bf16|fp32] [--threads N]
//                    [--sets giab,dense] [--modes full,window,naive] [--scores llr]
//                    [--length BASES] [--subsample K] [--slow-subsample K] [--naive-batch 64]
//                    [--batch-size B] [--config configs/d256x8.ini] [--data DIR] [--keep DIR]
// --length cuts chr20 to its first BASES (a smaller contig, so that full context also
// runs on a CPU); --subsample K keeps every K-th variant of each set; --slow-subsample K
// keeps every K-th of those for --context 8192 and naive only (their cost per variant is
// fixed, so a subsample measures the same rate faster; full context streams the contig
// whatever the number of variants, so it always gets the whole set). --keep DIR writes the
// generated inputs (random model, the sets' VCFs, the cut FASTA) to DIR and leaves them
// there, so that `genomamba score` can be timed on them as a process.
#include <htslib/hts.h>
#include <htslib/vcf.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <unistd.h>

#include "genomics/fasta.h"
#include "genomics/tokenizer.h"
#include "mamba/batch.h"
#include "mamba/checkpoint.h"
#include "mamba/ops.h"
#include "pipelines/score.h"
#include "genomics/vcf_source.h"

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

struct Args {
  std::string device = "cpu", precision = "bf16", sets = "giab,dense", modes = "full,window,naive", scores = "llr";
  std::string config = "configs/d256x8.ini", data = "data";
  std::string keep;  // a directory: the generated inputs (model, VCFs, FASTA) stay there
  int threads = 0;
  int64_t length = 10000000, subsample = 1, slow_subsample = 1, naive_batch = 64, batch_size = 0;
};

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--device") a.device = v;
    else if (k == "--precision") a.precision = v;
    else if (k == "--sets") a.sets = v;
    else if (k == "--modes") a.modes = v;
    else if (k == "--scores") a.scores = v;
    else if (k == "--config") a.config = v;
    else if (k == "--data") a.data = v;
    else if (k == "--threads") a.threads = std::atoi(v.c_str());
    else if (k == "--length") a.length = std::atoll(v.c_str());
    else if (k == "--subsample") a.subsample = std::atoll(v.c_str());
    else if (k == "--slow-subsample") a.slow_subsample = std::atoll(v.c_str());
    else if (k == "--naive-batch") a.naive_batch = std::atoll(v.c_str());
    else if (k == "--batch-size") a.batch_size = std::atoll(v.c_str());
    else if (k == "--keep") a.keep = v;
    else {
      std::fprintf(stderr, "bench_score: unknown option %s\n", k.c_str());
      std::exit(1);
    }
  }
  if (a.subsample < 1 || a.slow_subsample < 1) {
    std::fprintf(stderr, "bench_score: subsampling factors must be >= 1\n");
    std::exit(1);
  }
  if (argc % 2 == 0) {
    std::fprintf(stderr, "bench_score: options take one value each\n");
    std::exit(1);
  }
  return a;
}

bool has(const std::string& list, const std::string& item) {
  std::stringstream ss(list);
  std::string x;
  while (std::getline(ss, x, ',')) {
    if (x == item) return true;
  }
  return false;
}

struct Variant {
  int64_t pos;  // 0-based
  std::string ref, alt;
};

// chr20:1-length as a FASTA of its own (the bundled file itself when nothing is cut).
std::string reference_for(const std::string& bundled, int64_t length, const fs::path& dir) {
  gm::FastaReader fasta(bundled);
  const int id = fasta.contigs().require("chr20", bundled);
  if (length >= fasta.contigs()[static_cast<size_t>(id)].length) return bundled;
  const std::string path = (dir / "chr20_cut.fa").string();
  std::ofstream out(path);
  out << ">chr20\n";
  for (int64_t p = 0; p < length; p += 60) {
    out << fasta.fetch(id, p, std::min(length, p + 60)).view() << "\n";
  }
  return path;
}

// The GIAB records inside [0, length), every `subsample`-th, as a plain VCF.
std::vector<Variant> write_giab(const std::string& giab, int64_t length, int64_t subsample, const std::string& out) {
  gm::VcfSource in(giab);
  htsFile* fp = hts_open(out.c_str(), "w");
  if (!fp || bcf_hdr_write(fp, in.mutable_header()) != 0) throw std::runtime_error("cannot write " + out);
  std::vector<Variant> kept;
  int64_t n = 0;
  while (bcf1_t* rec = in.next()) {
    if (rec->pos + rec->rlen > length) continue;
    if (n++ % subsample != 0) continue;
    if (bcf_write(fp, in.mutable_header(), rec) != 0) throw std::runtime_error("cannot write " + out);
    kept.push_back({rec->pos, rec->d.allele[0], rec->n_allele > 1 ? rec->d.allele[1] : rec->d.allele[0]});
  }
  hts_close(fp);
  return kept;
}

// An SNV every 100 * subsample bases of chr20:1-length (1-based positions 100, 200, ...).
std::vector<Variant> write_dense(const std::string& reference, int64_t length, int64_t subsample, const std::string& out) {
  gm::FastaReader fasta(reference);
  const int id = fasta.contigs().require("chr20", reference);
  const auto seq = fasta.fetch(id, 0, length);
  std::ofstream f(out);
  f << "##fileformat=VCFv4.2\n##contig=<ID=chr20,length=" << length
    << ">\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n";
  const std::string next = "CGTA";  // A>C, C>G, G>T, T>A
  std::vector<Variant> kept;
  for (int64_t pos1 = 100 * subsample; pos1 <= length; pos1 += 100 * subsample) {
    const char base = static_cast<char>(std::toupper(static_cast<unsigned char>(seq.view()[static_cast<size_t>(pos1 - 1)])));
    const auto k = std::string("ACGT").find(base);
    if (k == std::string::npos) continue;
    const std::string ref(1, base), alt(1, next[k]);
    f << "chr20\t" << pos1 << "\t.\t" << ref << "\t" << alt << "\t.\t.\t.\n";
    kept.push_back({pos1 - 1, ref, alt});
  }
  return kept;
}

// Every k-th record of a VCF written by this program (same header).
std::vector<Variant> thin(const std::string& vcf, const std::vector<Variant>& all, int64_t k, const std::string& out) {
  gm::VcfSource in(vcf);
  htsFile* fp = hts_open(out.c_str(), "w");
  if (!fp || bcf_hdr_write(fp, in.mutable_header()) != 0) throw std::runtime_error("cannot write " + out);
  std::vector<Variant> kept;
  int64_t n = 0;
  while (bcf1_t* rec = in.next()) {
    if (n % k == 0) {
      if (bcf_write(fp, in.mutable_header(), rec) != 0) throw std::runtime_error("cannot write " + out);
      kept.push_back(all[static_cast<size_t>(n)]);
    }
    ++n;
  }
  hts_close(fp);
  return kept;
}

// One `genomamba score` job: its rate and where its time went.
struct JobTiming {
  double rate = NAN;  // variants / whole job
  double seconds = 0, model_seconds = 0, write_seconds = 0, setup_seconds = 0, sequence_seconds = 0;
  double open_seconds = 0, read_seconds = 0, feed_wait_seconds = 0, drain_seconds = 0, close_seconds = 0;
  double outside_seconds = 0;  // before and after the job's own clock: releasing the device context
  int64_t records = 0;
};

JobTiming run_pipeline(const Args& a, const std::string& vcf, const std::string& reference, const std::string& weights,
                       bool full, gm::ScoreStrands strand, const fs::path& dir) {
  gm::ScoreOptions o;
  o.vcf = vcf;
  o.fasta = reference;
  o.weights = weights;
  o.output = (dir / "scored.vcf.gz").string();
  o.output_type = 'z';
  o.scores = gm::parse_score_selection(a.scores);
  o.full_context = full;
  o.strand = strand;
  o.context = 8192;
  o.allow_partial_reference = true;
  o.device = gm::Device::parse(a.device);
  o.precision = gm::parse_precision(a.precision);
  o.threads = a.threads;
  o.batch_rows = a.batch_size;
  o.progress = false;
  std::ostringstream log;
  const auto t0 = Clock::now();
  const gm::ScoreSummary s = gm::run_score(o, log);
  const double t = seconds_since(t0);
  JobTiming j;
  j.rate = static_cast<double>(s.records) / t;
  j.seconds = t;
  j.model_seconds = s.model_seconds;
  j.write_seconds = s.write_seconds;
  j.setup_seconds = s.setup_seconds;
  j.sequence_seconds = s.sequence_seconds;
  j.open_seconds = s.open_seconds;
  j.read_seconds = s.read_seconds;
  j.feed_wait_seconds = s.feed_wait_seconds;
  j.drain_seconds = s.drain_seconds;
  j.close_seconds = s.close_seconds;
  j.outside_seconds = t - s.seconds;
  j.records = s.records;
  return j;
}

// The naive way: REF and ALT windows of 8,192 bases centred on the variant (clipped at the
// contig ends, padded), each a fresh forward pass, `batch` windows per pass; score = the
// summed log-likelihood difference, computed on the device as the pipeline does.
double run_naive(const Args& a, const std::vector<Variant>& variants, const std::string& reference,
                 const std::string& weights) {
  constexpr int64_t W = 8192;
  auto ctx = gm::Context::create(gm::Device::parse(a.device), a.threads, gm::parse_precision(a.precision));
  auto model = gm::load_model(*ctx, weights);
  gm::FastaReader fasta(reference);
  const int id = fasta.contigs().require("chr20", reference);
  const int64_t length = fasta.contigs()[static_cast<size_t>(id)].length;
  const int64_t per_pass = std::max<int64_t>(1, a.naive_batch / 2);
  std::vector<uint8_t> tokens, targets, flags(W + 1024);
  std::vector<float> losses;
  double checksum = 0;
  const auto t0 = Clock::now();
  for (size_t v0 = 0; v0 < variants.size(); v0 += static_cast<size_t>(per_pass)) {
    const int64_t n = std::min<int64_t>(per_pass, static_cast<int64_t>(variants.size() - v0));
    tokens.assign(static_cast<size_t>(2 * n * W), gm::token::kPad);
    for (int64_t j = 0; j < n; ++j) {
      const Variant& v = variants[v0 + static_cast<size_t>(j)];
      const int64_t beg = std::max<int64_t>(0, v.pos - W / 2), end = std::min(length, beg + W);
      const std::string window(fasta.fetch(id, beg, end).view());
      std::string alt = window.substr(0, static_cast<size_t>(v.pos - beg)) + v.alt +
                        window.substr(std::min(window.size(), static_cast<size_t>(v.pos - beg) + v.ref.size()));
      alt.resize(std::min(alt.size(), static_cast<size_t>(W)));
      gm::tokenize(window, tokens.data() + 2 * j * W, flags.data(), "chr20", beg);
      gm::tokenize(alt, tokens.data() + (2 * j + 1) * W, flags.data(), "chr20", beg);
    }
    const int64_t rows = 2 * n;
    targets.assign(tokens.size(), gm::token::kPad);
    for (int64_t r = 0; r < rows; ++r) {
      std::copy(tokens.begin() + r * W + 1, tokens.begin() + (r + 1) * W, targets.begin() + r * W);
    }
    gm::ForwardRequest req;
    req.tokens = gm::upload_u8(*ctx, tokens, {rows, W});
    gm::ForwardOutput out = model->forward(*ctx, req);
    gm::Tensor loss = ctx->empty({rows * W}, gm::DType::F32);
    gm::ops::cross_entropy(*ctx, out.logits, gm::upload_u8(*ctx, targets, {rows * W}), nullptr, 1.f, 1.f, loss, nullptr);
    losses.resize(static_cast<size_t>(rows * W));
    gm::Tensor host = gm::Tensor::wrap(losses.data(), {rows * W}, gm::DType::F32, gm::Device::cpu());
    gm::ops::copy(*ctx, loss, host);
    for (int64_t j = 0; j < n; ++j) {
      double ref = 0, alt = 0;
      for (int64_t i = 0; i < W; ++i) {
        ref += losses[static_cast<size_t>(2 * j * W + i)];
        alt += losses[static_cast<size_t>((2 * j + 1) * W + i)];
      }
      checksum += ref - alt;
    }
  }
  const double t = seconds_since(t0);
  if (!std::isfinite(checksum)) std::fprintf(stderr, "bench_score: naive scores are not finite\n");
  return static_cast<double>(variants.size()) / t;
}

}  // namespace

int main(int argc, char** argv) {
  const Args a = parse(argc, argv);
  try {
    const fs::path dir =
        a.keep.empty() ? fs::temp_directory_path() / ("bench_score." + std::to_string(getpid())) : fs::path(a.keep);
    fs::create_directories(dir);
    const std::string bundled = a.data + "/setA/grch38.chr20_and_21_10M.fa.gz";
    const std::string reference = reference_for(bundled, a.length, dir);

    gm::ModelConfig cfg = gm::ModelConfig::from_ini(a.config);
    const std::string weights = (dir / "model.safetensors").string();
    {
      gm::CpuContext cpu(a.threads > 0 ? a.threads : 2);
      gm::MambaModel model(cpu, cfg);
      model.init_weights(cpu, 1);
      gm::save_weights(cpu, model, weights);
    }
    std::printf("bench_score: %s, device %s (%s), scores %s, chr20:1-%lld, subsample %lld\n", cfg.summary().c_str(),
                a.device.c_str(), a.precision.c_str(), a.scores.c_str(), static_cast<long long>(a.length),
                static_cast<long long>(a.subsample));
    std::printf("| set | variants (full / 8192, naive) | full, both strands v/s | full, forward v/s | 8192, both "
                "strands v/s | naive (forward) v/s | full both / naive | full forward / naive |\n");
    std::printf("|---|---|---|---|---|---|---|---|\n");
    bool warmed = false;
    std::vector<std::string> breakdown;
    auto note = [&](const std::string& set, const char* mode, const JobTiming& j) {
      char line[512];
      // The job's own thread: open, setup, model, then in window mode the reading, sequence
      // and writing it does itself, in full-context mode the waits for the thread that does them.
      const bool full = j.feed_wait_seconds > 0 || j.drain_seconds > 0;
      const double own = j.open_seconds + j.setup_seconds + j.model_seconds + j.feed_wait_seconds + j.drain_seconds +
                         (full ? 0 : j.read_seconds + j.sequence_seconds + j.write_seconds);
      std::snprintf(line, sizeof line,
                    "| %s | %s | %lld | %.3f | %.3f | %.3f | %.3f | %.3f | %.3f | %.3f | %.3f | %.3f | %.3f | %.3f | "
                    "%.3f | %.0f |",
                    set.c_str(), mode, static_cast<long long>(j.records), j.seconds, j.model_seconds, j.open_seconds,
                    j.setup_seconds, j.feed_wait_seconds, j.drain_seconds, j.outside_seconds,
                    j.seconds - j.outside_seconds - own, j.read_seconds, j.sequence_seconds, j.write_seconds,
                    j.close_seconds, static_cast<double>(j.records) / j.model_seconds);
      breakdown.push_back(line);
    };
    for (const std::string set : {"giab", "dense"}) {
      if (!has(a.sets, set)) continue;
      const std::string vcf = (dir / (set + ".vcf")).string();
      const std::vector<Variant> variants =
          set == "giab" ? write_giab(a.data + "/setA/HG002_GIAB_v4.2.1.chr20_1-10M.vcf.gz", a.length, a.subsample, vcf)
                        : write_dense(reference, a.length, a.subsample, vcf);
      if (!warmed) {  // first use of the device, allocator and caches
        std::vector<Variant> few(variants.begin(), variants.begin() + std::min<size_t>(4, variants.size()));
        run_naive(a, few, reference, weights);
        warmed = true;
      }
      const std::string slow_vcf = (dir / (set + "_slow.vcf")).string();
      const std::vector<Variant> slow = thin(vcf, variants, a.slow_subsample, slow_vcf);
      double full = NAN, full_fwd = NAN, window = NAN, naive = NAN;
      if (has(a.modes, "full")) {
        const JobTiming both = run_pipeline(a, vcf, reference, weights, true, gm::ScoreStrands::Both, dir);
        const JobTiming fwd = run_pipeline(a, vcf, reference, weights, true, gm::ScoreStrands::Forward, dir);
        full = both.rate;
        full_fwd = fwd.rate;
        note(set, "full, both strands", both);
        note(set, "full, forward", fwd);
      }
      if (has(a.modes, "window")) {
        const JobTiming w = run_pipeline(a, slow_vcf, reference, weights, false, gm::ScoreStrands::Both, dir);
        window = w.rate;
        note(set, "8192, both strands", w);
      }
      if (has(a.modes, "naive")) naive = run_naive(a, slow, reference, weights);
      std::printf("| %s | %zu / %zu | %.1f | %.1f | %.1f | %.1f | %.1fx | %.1fx |\n", set.c_str(), variants.size(),
                  slow.size(), full, full_fwd, window, naive, full / naive, full_fwd / naive);
      std::fflush(stdout);
    }
    // Where each job's time went. On the job's own thread: model = the passes through the
    // model (synchronised); open = opening inputs, preparing the output header; setup =
    // waiting for the device context and loading the model; feed wait / drain (--context
    // full) = the stream waiting for contigs and records, and after it for the last writes;
    // teardown = releasing the model and device context after the job's own clock; rest =
    // none of these (window mode: also reading, sequence, writing, done on this thread).
    // records / sequence / writing = reading and decoding the VCF and building the jobs,
    // fetching contigs, writing (of it closing: the last blocks, sync and rename): with
    // --context full on the second thread, beside the model.
    std::printf("\n| set | job | variants | whole job s | model s | open s | setup s | feed wait s | drain s | "
                "teardown s | rest s | records s | sequence s | writing s | of it closing s | variants / model s |\n"
                "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for (const auto& line : breakdown) std::printf("%s\n", line.c_str());
    if (a.keep.empty()) fs::remove_all(dir);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_score: %s\n", e.what());
    return 1;
  }
  return 0;
}
