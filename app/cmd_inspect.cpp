// genomamba inspect: option parsing only; pipelines/inspect does the work.
#include <iostream>
#include <string>
#include <vector>

#include "app/cli.h"
#include "app/commands.h"
#include "pipelines/inspect.h"

namespace gm::app {
namespace {

uint16_t parse_flags(const std::string& text) {
  try {
    size_t used = 0;
    const unsigned long v = std::stoul(text, &used, 0);  // decimal, 0x.. hex or 0.. octal, as samtools
    if (used != text.size() || v > 0xffff) throw std::invalid_argument(text);
    return static_cast<uint16_t>(v);
  } catch (const std::exception&) {
    throw UsageError("--exclude-flags: expected a number such as 0xF00, got '" + text + "'");
  }
}

}  // namespace

int cmd_inspect(int argc, char** argv) {
  const CommandSpec spec{"inspect", "genomamba inspect [options] <ref.fa>",
                         "Checks input data before a long run: per-contig length, N, soft-masked and GC fractions;\n"
                         "with --window, the windows each split yields (BED split column train|valid|test) and how\n"
                         "many the N filters reject; with --reads, the reads a BAM/CRAM keeps after filtering."};
  po::options_description options("inspect options");
  std::vector<std::string> regions;
  options.add_options()
      ("reference", po::value<std::string>()->value_name("FILE"), "FASTA, plain or bgzip (also the first positional argument)")
      ("regions-file,R", po::value<std::string>()->value_name("BED"), "intervals (0-based BED; a 4th column train|valid|test sets the split)")
      ("regions,r", po::value<std::vector<std::string>>(&regions)->composing()->value_name("REGION"),
       "chr, chr:beg-end or chr:beg- (1-based, inclusive); repeatable; used without -R")
      ("reads", po::value<std::string>()->value_name("BAM/CRAM"), "reads to check; a CRAM decodes with the reference")
      ("window,w", po::value<int64_t>()->default_value(0)->value_name("N"), "window length in bases (0: no window table)")
      ("stride", po::value<int64_t>()->default_value(0)->value_name("N"), "window stride (0: the window length)")
      ("mode", po::value<std::string>()->default_value("tiled")->value_name("tiled|strided"),
       "tiled: cover every interval (short ones extended); strided: only whole windows")
      ("max-n-frac", po::value<double>()->default_value(1.0)->value_name("F"),
       "reject windows whose N fraction is >= F (1: keep all)")
      ("min-non-n", po::value<int64_t>()->default_value(0)->value_name("N"), "reject windows with fewer non-N bases")
      ("min-mapq,q", po::value<int>()->default_value(0)->value_name("Q"), "drop mapped reads with MAPQ < Q")
      ("exclude-flags,F", po::value<std::string>()->default_value("0xF00")->value_name("FLAGS"),
       "drop reads with any of these SAM flags (default: secondary, QC-fail, duplicate, supplementary)")
      ("drop-unmapped", po::bool_switch(), "drop unmapped reads (kept by default)");
  po::positional_options_description positional;
  positional.add("reference", 1);
  po::variables_map vm;
  if (!parse_command_line(spec, options, positional, argc, argv, vm)) return 0;

  InspectOptions opt;
  if (!vm.count("reference")) throw UsageError("no reference FASTA given");
  opt.fasta = vm["reference"].as<std::string>();
  if (vm.count("regions-file")) opt.bed = vm["regions-file"].as<std::string>();
  opt.regions = regions;
  if (!opt.bed.empty() && !opt.regions.empty()) throw UsageError("give either -R/--regions-file or -r/--regions, not both");
  if (vm.count("reads")) opt.reads = vm["reads"].as<std::string>();
  opt.window = vm["window"].as<int64_t>();
  opt.stride = vm["stride"].as<int64_t>();
  if (opt.window < 0 || opt.stride < 0) throw UsageError("--window and --stride must be >= 0");
  const std::string mode = vm["mode"].as<std::string>();
  if (mode == "tiled") {
    opt.mode = WindowMode::Tiled;
  } else if (mode == "strided") {
    opt.mode = WindowMode::Strided;
  } else {
    throw UsageError("--mode must be tiled or strided, got '" + mode + "'");
  }
  opt.filter.max_n_frac = vm["max-n-frac"].as<double>();
  if (!(opt.filter.max_n_frac > 0.0 && opt.filter.max_n_frac <= 1.0)) throw UsageError("--max-n-frac must be in (0, 1]");
  opt.filter.min_non_n = vm["min-non-n"].as<int64_t>();
  opt.read_filter.min_mapq = vm["min-mapq"].as<int>();
  opt.read_filter.exclude_flags = parse_flags(vm["exclude-flags"].as<std::string>());
  opt.read_filter.keep_unmapped = !vm["drop-unmapped"].as<bool>();
  opt.threads = threads_option(vm);

  const InspectReport report = run_inspect(opt);
  print_inspect_report(report, opt, std::cout);
  return 0;
}

}  // namespace gm::app
