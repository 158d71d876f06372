// genomamba eval: held-out loss, perplexity and bits per base of a checkpoint on
// regions of a FASTA (non-overlapping windows, each from a fresh state).
#include <iomanip>
#include <iostream>

#include "app/cli.h"
#include "app/commands.h"
#include "genomics/bed.h"
#include "genomics/fasta.h"
#include "genomics/intervals.h"
#include "mamba/checkpoint.h"
#include "pipelines/checkpoint_path.h"
#include "pipelines/evaluate.h"
#include "pipelines/progress.h"

namespace gm::app {

int cmd_eval(int argc, char** argv) {
  const CommandSpec spec{"eval", "genomamba eval -m CKPT [-r REGION]... [-R BED] <ref.fa>",
                         "Held-out loss, perplexity and bits per base of a model on regions of a FASTA."};
  std::string fasta_path, model_path, bed_path, device = "cpu", precision = "bf16";
  std::vector<std::string> regions;
  EvalOptions eo;
  po::options_description opts("Options");
  opts.add_options()
      ("fasta", po::value(&fasta_path)->value_name("REF.fa"), "reference FASTA (positional)")
      ("model,m", po::value(&model_path)->value_name("CKPT"), "weights file, checkpoint or run directory")
      ("regions,r", po::value(&regions)->composing()->value_name("REGION"), "chr:beg-end (repeatable; default: all contigs)")
      ("regions-file,R", po::value(&bed_path)->value_name("BED"), "regions from a BED (a split column selects --split)")
      ("split", po::value<std::string>()->default_value("valid"), "with a split BED: train | valid | test")
      ("window", po::value(&eo.window)->default_value(eo.window), "targets per window")
      ("batch-size,b", po::value(&eo.batch_size)->default_value(eo.batch_size), "windows per forward pass")
      ("min-acgt", po::value(&eo.min_acgt)->default_value(eo.min_acgt), "skip windows with fewer A/C/G/T")
      ("max-windows", po::value(&eo.max_windows)->default_value(0), "evaluate at most this many windows (0: all)")
      ("device", po::value(&device)->default_value(device), "cpu | cuda | cuda:N")
      ("precision", po::value(&precision)->default_value(precision), "CUDA activations: bf16 | fp32");
  po::positional_options_description pos;
  pos.add("fasta", 1);
  po::variables_map vm;
  if (!parse_command_line(spec, opts, pos, argc, argv, vm)) return 0;
  if (fasta_path.empty()) throw UsageError("a reference FASTA is required");
  if (model_path.empty()) throw UsageError("-m CKPT is required");
  if (eo.window < 1 || eo.batch_size < 1) throw UsageError("--window and --batch-size must be >= 1");

  FastaReader fasta(fasta_path);
  std::vector<Interval> intervals;
  if (!bed_path.empty()) {
    const BedFile bed = read_bed(bed_path);
    const Split split = bed.has_split_column ? parse_split(vm["split"].as<std::string>()) : Split::All;
    intervals = intervals_from_bed(bed, fasta.contigs(), split);
  } else {
    intervals = intervals_from_regions(regions, fasta.contigs());
  }
  auto ctx = Context::create(Device::parse(device), threads_option(vm), parse_precision(precision));
  auto model = load_model(*ctx, resolve_weights_path(model_path));
  Progress progress(std::cerr, "eval", 0, "windows");
  const EvalResult r = evaluate_windows(*ctx, *model, fasta_path, intervals, eo,
                                        [&](int64_t done, int64_t) { progress.update(done, ""); });
  progress.finish();
  if (r.windows == 0) throw std::runtime_error("no window qualified (regions shorter than --window + 1, or too much N)");
  std::cout << std::fixed << std::setprecision(6) << "windows\t" << r.windows << "\nbases\t"
            << static_cast<int64_t>(r.targets) << "\nloss\t" << r.mean_loss() << "\nperplexity\t" << r.perplexity()
            << "\nbits_per_base\t" << r.bits_per_base() << "\n";
  return 0;
}

}  // namespace gm::app
