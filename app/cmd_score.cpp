// genomamba score: variant-effect scores (GM_LLR, GM_DLL, GM_EMB) of every record of a
// VCF/BCF, written as an annotated VCF/BCF (pipelines/score.h).
#include <cstdlib>
#include <iostream>

#include "app/cli.h"
#include "app/commands.h"
#include "genomics/text.h"
#include "pipelines/checkpoint_path.h"
#include "pipelines/score.h"

namespace gm::app {

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// -O when not given: from the output name, as most users expect (.vcf.gz -> z, .bcf -> b).
char output_type_for(const std::string& output) {
  if (ends_with(output, ".vcf.gz") || ends_with(output, ".vcf.bgz")) return 'z';
  if (ends_with(output, ".bcf")) return 'b';
  return 'v';
}

}  // namespace

int cmd_score(int argc, char** argv) {
  const CommandSpec spec{
      "score", "genomamba score -m CKPT -f REF.fa [options] <in.vcf.gz|in.bcf|->",
      "Score the variants of a VCF/BCF with a model: GM_LLR (log-likelihood ratio at the variant, SNVs), GM_DLL\n"
      "(change of the summed log-likelihood of the --window centred on the variant, SNVs and indels), GM_EMB\n"
      "(cosine distance of mean embeddings); every record is written back with its fields, one value per ALT."};
  ScoreOptions o;
  std::string model, scores = "llr,dll", context = "8192", strand = "both", device = "cpu", precision = "bf16";
  std::string output_type, write_index, shard_text;
  po::options_description opts("Options");
  opts.add_options()
      ("input", po::value(&o.vcf)->value_name("VCF"), "VCF/BCF (plain, bgzip or BCF), '-' for stdin (positional)")
      ("model,m", po::value(&model)->value_name("CKPT"), "weights file, checkpoint or run directory")
      ("fasta-ref,f", po::value(&o.fasta)->value_name("REF.fa"), "reference FASTA the VCF is against (indexed)")
      ("output,o", po::value(&o.output)->default_value("-")->value_name("FILE"), "output file, '-' = stdout")
      ("output-type,O", po::value(&output_type)->value_name("v|z|u|b"),
       "VCF, bgzip VCF, uncompressed BCF, BCF (default: from the -o name, else v)")
      ("write-index,W", po::value(&write_index)->implicit_value("csi")->value_name("csi|tbi"),
       "also write the index (-W alone: csi)")
      ("tsv", po::value(&o.tsv)->value_name("FILE"), "also write a table: chrom, pos, ref, alt, scores, flags")
      ("regions,r", po::value(&o.regions)->composing()->value_name("REGION"),
       "only records overlapping chr:beg-end (1-based, VCF contig names; repeatable; needs the index)")
      ("regions-file,R", po::value(&o.regions_file)->value_name("FILE"),
       "regions from a BED (.bed[.gz]) or CHROM POS / CHROM BEG END file (1-based)")
      ("rename-contigs", po::value(&o.rename_contigs)->value_name("FILE"),
       "map VCF contig names to FASTA names: 'VCF-name FASTA-name' per line")
      ("allow-partial-reference", po::bool_switch(&o.allow_partial_reference),
       "accept FASTA contigs shorter than the VCF header says (a subset of the same assembly); records past "
       "their end, or on contigs the FASTA lacks, are flagged GM_OUTSIDE")
      ("scores", po::value(&scores)->default_value(scores), "any of llr, dll, emb, comma-separated (or all)")
      ("context", po::value(&context)->default_value(context)->value_name("N|full"),
       "bases of context on each side, or 'full': the whole contig, streamed once per strand")
      ("window", po::value(&o.window)->default_value(o.window), "DLL/EMB window centred on the variant (bp)")
      ("strand", po::value(&strand)->default_value(strand), "forward | reverse | both (mean of the two)")
      ("layer", po::value(&o.layer)->default_value(-1),
       "EMB: residual-stream capture point 0..n_layer (-1 = n_layer, the input of the final norm)")
      ("device", po::value(&device)->default_value(device), "cpu | cuda | cuda:N")
      ("precision", po::value(&precision)->default_value(precision), "CUDA activations: bf16 | fp32")
      ("batch-size,b", po::value(&o.batch_rows)->default_value(0),
       "rows per forward pass (0: cpu 8, cuda 64, fewer when rows are long)")
      ("chunk", po::value(&o.chunk)->default_value(0),
       "--context full: streaming chunk (0: by device and scores; fixed per run)")
      ("shard", po::value(&shard_text)->value_name("i/N"),
       "do shard i of N (0-based; default from SLURM_ARRAY_TASK_*); full context splits by contig")
      ("shard-block", po::value(&o.shard_block)->default_value(o.shard_block),
       "window mode: sharding unit along a contig (bp)");
  po::positional_options_description pos;
  pos.add("input", 1);
  po::variables_map vm;
  if (!parse_command_line(spec, opts, pos, argc, argv, vm)) return 0;
  // Boost gives an optional-value option the next word: "-W in.vcf.gz" reads as
  // --write-index=in.vcf.gz. As with bcftools, the format must be attached (-Wtbi,
  // --write-index=tbi); a detached word after -W is the input file.
  if (vm.count("write-index") && write_index != "csi" && write_index != "tbi") {
    if (!o.vcf.empty()) throw UsageError("--write-index takes csi or tbi, not '" + write_index + "'");
    o.vcf = write_index;
    write_index = "csi";
  }
  if (o.vcf.empty()) throw UsageError("an input VCF/BCF is required ('-' for stdin)");
  if (o.fasta.empty()) throw UsageError("-f REF.fa is required");
  if (model.empty()) throw UsageError("-m CKPT is required");

  try {
    o.scores = parse_score_selection(scores);
    o.strand = parse_score_strands(strand);
    o.device = Device::parse(device);
    o.precision = parse_precision(precision);
    o.shard = resolve_shard(shard_text, [](const char* name) { return std::getenv(name); });
  } catch (const std::invalid_argument& e) {
    throw UsageError(e.what());
  }
  if (context == "full") {
    o.full_context = true;
  } else {
    const auto n = parse_int64(context, /*allow_commas=*/true);
    if (!n || *n < 1) throw UsageError("--context must be a number of bases >= 1 or 'full', not '" + context + "'");
    o.context = *n;
  }
  if (output_type.empty()) {
    o.output_type = output_type_for(o.output);
  } else if (output_type.size() == 1 && std::string("vzub").find(output_type[0]) != std::string::npos) {
    o.output_type = output_type[0];
  } else {
    throw UsageError("-O must be one of v, z, u, b, not '" + output_type + "'");
  }
  if (vm.count("write-index")) o.write_index = write_index;
  if (o.window < 1) throw UsageError("--window must be >= 1");
  if (o.batch_rows < 0 || o.chunk < 0 || o.shard_block < 1) {
    throw UsageError("--batch-size and --chunk must be >= 0, --shard-block >= 1");
  }
  o.threads = threads_option(vm);
  o.command_line = joined_command_line(argc, argv);
  o.weights = resolve_weights_path(model);
  try {
    run_score(o, std::cerr);
  } catch (const std::invalid_argument& e) {
    throw UsageError(e.what());
  }
  return 0;
}

}  // namespace gm::app
