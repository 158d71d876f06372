// genomamba embed: embeddings of regions of a FASTA (BED, -r, whole contigs or tiled
// windows) from a checkpoint, written as HDF5 (anndata .h5ad when pooled).
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <iostream>

#include "app/cli.h"
#include "app/commands.h"
#include "pipelines/embed.h"
#include "pipelines/progress.h"

namespace gm::app {

int cmd_embed(int argc, char** argv) {
  const CommandSpec spec{"embed", "genomamba embed -m CKPT [-R BED | -r REGION...] -o OUT.h5ad <ref.fa>",
                         "Embeddings of regions of a FASTA: one row per region (pooled, an .h5ad that anndata "
                         "reads) or one row per base (--pool none)."};
  EmbedJob job;
  std::string layers = "last", pool = "mean", strand = "fwd", dtype = "float32", device = "cpu", precision = "bf16";
  po::options_description opts("Options");
  opts.add_options()
      ("fasta", po::value(&job.fasta)->value_name("REF.fa"), "reference FASTA (positional)")
      ("model,m", po::value(&job.model)->value_name("CKPT"), "weights file, checkpoint or run directory")
      ("output,o", po::value(&job.output)->value_name("OUT.h5ad"), "output HDF5 file")
      ("regions,r", po::value(&job.regions.regions)->composing()->value_name("REGION"),
       "chr:beg-end, 1-based inclusive (repeatable)")
      ("regions-file,R", po::value(&job.regions.bed_path)->value_name("BED"),
       "regions from a BED (name kept; strand '-' embeds the reverse complement)")
      ("window", po::value(&job.regions.window)->default_value(0)->value_name("W"),
       "tile the regions (or the whole genome) into windows of W bases")
      ("stride", po::value(&job.regions.stride)->default_value(0)->value_name("S"), "window step (default: W)")
      ("flank", po::value(&job.flank)->default_value(0)->value_name("N"),
       "context bases read on each side but not pooled (clipped at contig ends)")
      ("layer", po::value(&layers)->default_value(layers)->value_name("K[,K...]"),
       "residual-stream points: 0 = embedding, n_layer = last (before the final norm); 'last'")
      ("pool", po::value(&pool)->default_value(pool), "mean | max | center | last | none (per-token)")
      ("strand", po::value(&strand)->default_value(strand), "fwd | rc | both (average of both passes)")
      ("dtype", po::value(&dtype)->default_value(dtype), "stored values: float32 | float16")
      ("chunk", po::value(&job.chunk)->default_value(0),
       "tokens per row per forward, the streaming step (0: 65,536 on the CPU, 16,384 on CUDA)")
      ("batch-size,b", po::value(&job.batch_size)->default_value(0),
       "rows per forward (0: 1 on the CPU, 64 on CUDA)")
      ("shard", po::value(&job.shard)->value_name("i/N"),
       "embed shard i of N (0-based; default from SLURM_ARRAY_TASK_ID/COUNT)")
      ("device", po::value(&device)->default_value(device), "cpu | cuda | cuda:N")
      ("precision", po::value(&precision)->default_value(precision), "CUDA activations: bf16 | fp32");
  po::positional_options_description pos;
  pos.add("fasta", 1);
  po::variables_map vm;
  if (!parse_command_line(spec, opts, pos, argc, argv, vm)) return 0;
  if (job.fasta.empty()) throw UsageError("a reference FASTA is required");
  if (job.model.empty()) throw UsageError("-m CKPT is required");
  if (job.output.empty()) throw UsageError("-o OUT.h5ad is required");
  if (job.regions.window < 0 || job.regions.stride < 0) throw UsageError("--window and --stride must be >= 0");
  if (job.regions.stride > 0 && job.regions.window == 0) throw UsageError("--stride needs --window");
  if (job.flank < 0) throw UsageError("--flank must be >= 0");
  if (job.chunk < 0) throw UsageError("--chunk must be >= 0");
  if (job.batch_size < 0) throw UsageError("--batch-size must be >= 0");
  try {
    job.pool = parse_pool(pool);
    job.strand = parse_strand_mode(strand);
    job.dtype = parse_stored_dtype(dtype);
    job.device = Device::parse(device);
    job.precision = parse_precision(precision);
  } catch (const std::invalid_argument& e) {
    throw UsageError(e.what());
  }
  job.layers = layers;
  job.threads = threads_option(vm);
  job.command_line = joined_command_line(argc, argv);

  // A bar on a terminal; in logs (batch jobs) a line every 30 s.
  const bool terminal = isatty(STDERR_FILENO);
  const double every = terminal ? 0.5 : 30.0;
  Progress bar(std::cerr, "embed", 0, "tokens");
  const auto start = std::chrono::steady_clock::now();
  double last_report = -every;
  auto report = [&](const EmbedProgress& p) {
    const double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (el - last_report < every && p.regions_done < p.regions_total) return;
    last_report = el;
    const double rate = el > 0 ? static_cast<double>(p.tokens_done) / el : 0;
    const double eta = rate > 0 ? static_cast<double>(p.tokens_total - p.tokens_done) / rate : -1;
    bar.update(p.tokens_done, std::to_string(p.regions_done) + "/" + std::to_string(p.regions_total) + " regions, " +
                                  Progress::format_rate(el > 0 ? p.regions_done / el : 0) + " regions/s, " +
                                  Progress::format_rate(rate) + " tokens/s, ETA " + Progress::format_duration(eta));
  };
  const EmbedSummary s = run_embed(job, [](const char* name) { return std::getenv(name); }, report, std::cerr);
  bar.finish();
  if (s.skipped) {
    std::cerr << "shard " << s.shard.to_string() << " is already complete (" << s.output << " and its .done marker "
              << "match this command and checkpoint): nothing to do\n";
    return 0;
  }
  std::cerr << "embedded " << s.regions << " regions (" << s.model_tokens << " model tokens) in "
            << Progress::format_duration(s.seconds) << ", "
            << Progress::format_rate(s.seconds > 0 ? s.model_tokens / s.seconds : 0) << " tokens/s -> " << s.output
            << "\n";
  return 0;
}

}  // namespace gm::app
