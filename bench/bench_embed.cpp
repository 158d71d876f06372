// Embedding throughput, end to end (FASTA -> tokens -> model -> pooling -> finished HDF5,
// one strand, pooled mean of the last layer) against the model alone (forwards of the
// same tokens in the same [rows, columns] shapes with the same seq_start resets and
// stream state, tokenized beforehand, nothing downloaded), for regions of 1 kb, 10 kb and 1 Mb tiled over
// chr20 of the bundled genome. Each run pays a fixed cost once (context, model load,
// hashes: measured on one 1 kb region, after the process's one-time device start);
// "after the fixed cost" is the rate of the rest,
// and the hg38 (3.1 Gbp) projection is that fixed cost plus hg38's tokens at that rate.
// A random-init model of the given config (d256 x 8 by default).
//
// Usage: bench_embed [--device cpu|cuda[:N]] [--precision bf16|fp32] [--threads N]
//                    [--tokens T] [--batch-size B] [--chunk C] [--config MODEL.ini]
//                    [--fasta REF.fa] [--sizes 1000,10000,1000000] [--reps R]
// Run from the repository root (default paths are relative to it). --tokens is the
// token budget of each case (default 1,048,576: 1,048 x 1 kb, 104 x 10 kb, 1 x 1 Mb); each
// rate is the best of R repetitions (default 1).
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "genomics/fasta.h"
#include "genomics/tokenizer.h"
#include "mamba/batch.h"
#include "mamba/checkpoint.h"
#include "mamba/model.h"
#include "pipelines/embed.h"

namespace {

using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

struct Args {
  std::string device = "cpu", precision = "bf16", config = "configs/d256x8.ini";
  std::string fasta = "data/setA/grch38.chr20_and_21_10M.fa.gz";
  int threads = 0, reps = 1;
  int64_t tokens = 1 << 20, batch_size = 0, chunk = 0;
  std::vector<int64_t> sizes = {1000, 10000, 1000000};
};

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--device") a.device = v;
    else if (k == "--precision") a.precision = v;
    else if (k == "--config") a.config = v;
    else if (k == "--fasta") a.fasta = v;
    else if (k == "--threads") a.threads = std::atoi(v.c_str());
    else if (k == "--reps") a.reps = std::max(1, std::atoi(v.c_str()));
    else if (k == "--tokens") a.tokens = std::atoll(v.c_str());
    else if (k == "--batch-size") a.batch_size = std::atoll(v.c_str());
    else if (k == "--chunk") a.chunk = std::atoll(v.c_str());
    else if (k == "--sizes") {
      a.sizes.clear();
      std::stringstream in(v);
      std::string item;
      while (std::getline(in, item, ',')) a.sizes.push_back(std::atoll(item.c_str()));
    } else {
      std::fprintf(stderr, "bench_embed: unknown option %s\n", k.c_str());
      std::exit(1);
    }
  }
  return a;
}

// The engine's layout for `count` regions of `size` tokens starting at chr20:1,000,001:
// `rows` lanes of equal load, `columns` per forward, a reset where each region starts,
// the real tokens (fetched and tokenized before the clock starts). Returns tokens/s of
// the forwards alone (after one untimed warm-up forward).
double model_only_rate(gm::Context& ctx, gm::MambaModel& model, const gm::FastaReader& fasta, int64_t size,
                       int64_t count, int64_t rows, int64_t chunk) {
  // As the engine: fewer regions than rows give fewer, longer lanes (same tokens a forward).
  const int64_t used_rows = std::min(rows, count);
  chunk *= rows / used_rows;
  rows = used_rows;
  const int64_t per_lane = (count + rows - 1) / rows * size;
  const int64_t columns = std::min(chunk, per_lane);
  const int64_t steps = (per_lane + columns - 1) / columns;
  const int contig = *fasta.contigs().find("chr20");
  std::vector<uint8_t> lanes(static_cast<size_t>(rows * steps * columns), gm::token::kPad), flags(lanes.size());
  for (int64_t i = 0; i < count; ++i) {
    const int64_t lane = i / ((count + rows - 1) / rows), offset = i % ((count + rows - 1) / rows) * size;
    const auto seq = fasta.fetch(contig, 1000000 + i * size, 1000000 + (i + 1) * size);
    const size_t at = static_cast<size_t>(lane * steps * columns + offset);
    gm::tokenize(seq.view(), lanes.data() + at, flags.data() + at, "chr20", 1000000 + i * size);
  }
  std::vector<uint8_t> tokens(static_cast<size_t>(rows * columns)), seq(tokens.size());
  gm::StreamState state = model.new_stream_state(ctx, rows);
  auto forward = [&](int64_t step) {
    bool resets = false;  // as the engine: resets only when a region starts after column 0 of the stream
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < columns; ++c) {
        const int64_t pos = step * columns + c;
        tokens[static_cast<size_t>(r * columns + c)] = lanes[static_cast<size_t>(r * steps * columns + pos)];
        seq[static_cast<size_t>(r * columns + c)] = pos % size == 0;
        resets = resets || (pos > 0 && pos % size == 0);
      }
    gm::ForwardRequest req;
    req.tokens = gm::upload_u8(ctx, tokens, {rows, columns});
    if (resets) req.seq_start = gm::upload_u8(ctx, seq, {rows, columns});
    req.state = steps > 1 ? &state : nullptr;
    req.want_logits = false;
    req.capture = {static_cast<int>(model.config().n_layer)};
    model.forward(ctx, req);
  };
  forward(0);
  ctx.synchronize();
  const auto t0 = Clock::now();
  for (int64_t s = 0; s < steps; ++s) forward(s);
  ctx.synchronize();
  return static_cast<double>(count * size) / seconds_since(t0);
}

gm::EmbedJob job_for(const Args& a, const std::string& model_path, const std::string& out, int64_t size,
                     int64_t count) {
  gm::EmbedJob j;
  j.fasta = a.fasta;
  j.model = model_path;
  j.output = out;
  // chr20 from 1 Mb on: past the telomeric N, the same bases for every size.
  j.regions.regions = {"chr20:1000001-" + std::to_string(1000000 + size * count)};
  j.regions.window = size;
  j.chunk = a.chunk;
  j.batch_size = a.batch_size;
  j.device = gm::Device::parse(a.device);
  j.threads = a.threads;
  j.precision = gm::parse_precision(a.precision);
  j.command_line = "bench_embed";
  return j;
}

}  // namespace

int main(int argc, char** argv) {
  const Args a = parse(argc, argv);
  const gm::Device device = gm::Device::parse(a.device);
  const fs::path tmp = fs::temp_directory_path() / ("bench_embed." + std::to_string(::getpid()));
  fs::create_directories(tmp);
  const std::string model_path = (tmp / "model.safetensors").string();
  gm::ModelConfig cfg = gm::ModelConfig::from_ini(a.config);
  {
    gm::CpuContext cpu(a.threads);
    gm::MambaModel m(cpu, cfg);
    m.init_weights(cpu, 0);
    gm::save_weights(cpu, m, model_path);
  }
  auto ctx = gm::Context::create(device, a.threads, gm::parse_precision(a.precision));
  auto model = gm::load_model(*ctx, model_path);
  const gm::FastaReader fasta(a.fasta);
  const int64_t rows = a.batch_size > 0 ? a.batch_size : gm::default_embed_rows(device);
  const int64_t chunk = a.chunk > 0 ? a.chunk : gm::default_embed_chunk(device);
  std::ostringstream quiet;
  const auto none = [](const char*) -> const char* { return nullptr; };

  // Fixed cost of one run (context, model load, hashes, file): the best of three runs of one
  // 1 kb region, after a first one that also pays the process's one-time device start.
  double fixed = 1e30;
  for (int r = 0; r < 4; ++r) {
    const auto tf = Clock::now();
    gm::run_embed(job_for(a, model_path, (tmp / "warm.h5ad").string(), 1000, 1), none, {}, quiet);
    if (r > 0) fixed = std::min(fixed, seconds_since(tf));
  }

  std::printf("model %s, device %s, precision %s, threads %d, rows %lld, chunk %lld, best of %d\n",
              cfg.summary().c_str(), device.str().c_str(), a.precision.c_str(),
              a.threads, (long long)rows, (long long)chunk, a.reps);
  std::printf("fixed cost of a run (1 region of 1 kb, end to end): %.2f s\n\n", fixed);
  std::printf("| regions | count | tokens | end-to-end tokens/s | after the fixed cost tokens/s | model-only tokens/s | "
              "end-to-end / model | hg38 (3.1 Gbp): fixed cost + tokens at the rate after it |\n");
  std::printf("|---|---|---|---|---|---|---|---|\n");
  for (int64_t size : a.sizes) {
    const int64_t count = std::max<int64_t>(1, a.tokens / size);
    double model_rate = 0, e2e = 0, steady = 0;
    int64_t tokens = 0;
    for (int r = 0; r < a.reps; ++r) {
      model_rate = std::max(model_rate, model_only_rate(*ctx, *model, fasta, size, count, rows, chunk));
      const auto t0 = Clock::now();
      const gm::EmbedSummary s =
          gm::run_embed(job_for(a, model_path, (tmp / "emb.h5ad").string(), size, count), none, {}, quiet);
      const double seconds = seconds_since(t0);
      e2e = std::max(e2e, static_cast<double>(s.model_tokens) / seconds);
      if (seconds > fixed) steady = std::max(steady, static_cast<double>(s.model_tokens) / (seconds - fixed));
      tokens = s.model_tokens;
    }
    const double hg38_min = (fixed + 3.1e9 / steady) / 60.0;
    std::printf("| %lld bp | %lld | %lld | %.0f | %.0f | %.0f | %.2f | %.1f min |\n", (long long)size,
                (long long)count, (long long)tokens, e2e, steady, model_rate, e2e / model_rate, hg38_min);
    std::fflush(stdout);
  }
  fs::remove_all(tmp);
  return 0;
}
