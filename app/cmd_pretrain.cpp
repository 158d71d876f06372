// genomamba pretrain: options -> gm::PretrainOptions -> gm::run_pretrain.
#include <filesystem>
#include <iostream>
#include <sstream>

#include "app/cli.h"
#include "app/commands.h"
#include "pipelines/pretrain.h"

namespace gm::app {

namespace {

// "STEP:LEN,STEP:LEN,..." e.g. "0:1024,200:2048,400:4096".
std::vector<SeqLenStage> parse_schedule(const std::string& text) {
  std::vector<SeqLenStage> stages;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    const auto colon = item.find(':');
    if (colon == std::string::npos) throw UsageError("--seq-len-schedule: expected STEP:LEN, got '" + item + "'");
    try {
      stages.push_back({std::stoll(item.substr(0, colon)), std::stoll(item.substr(colon + 1))});
    } catch (const std::exception&) {
      throw UsageError("--seq-len-schedule: bad number in '" + item + "'");
    }
  }
  if (stages.empty() || stages.front().from_step != 0)
    throw UsageError("--seq-len-schedule must start at step 0");
  for (size_t i = 1; i < stages.size(); ++i)
    if (stages[i].from_step <= stages[i - 1].from_step)
      throw UsageError("--seq-len-schedule steps must increase");
  for (const auto& s : stages)
    if (s.seq_len < 1) throw UsageError("--seq-len-schedule lengths must be >= 1");
  return stages;
}

// A path from a config file is taken relative to the working directory when it exists
// there, else relative to the config file's directory.
std::string resolve_path(const po::variables_map& vm, const std::string& path) {
  namespace fs = std::filesystem;
  if (path.empty() || fs::path(path).is_absolute() || fs::exists(path) || !vm.count("config")) return path;
  const fs::path beside = fs::path(vm["config"].as<std::string>()).parent_path() / path;
  return fs::exists(beside) ? beside.string() : path;
}

}  // namespace

int cmd_pretrain(int argc, char** argv) {
  const CommandSpec spec{"pretrain", "genomamba pretrain [options] -o RUN_DIR <ref.fa>",
                         "Train a causal Mamba language model on a genome (FASTA windows or BAM/CRAM reads)."};
  PretrainOptions o;
  std::vector<std::string> train_regions, valid_regions;
  po::options_description data("Data");
  data.add_options()
      ("fasta", po::value(&o.fasta)->value_name("REF.fa"), "reference FASTA (plain or bgzip; positional)")
      ("splits", po::value(&o.splits_bed)->value_name("BED"), "intervals with a train|valid|test 4th column")
      ("train-region", po::value(&train_regions)->composing()->value_name("REGION"),
       "training region chr:beg-end (repeatable; default: every contig)")
      ("valid-region", po::value(&valid_regions)->composing()->value_name("REGION"),
       "validation region (repeatable)")
      ("reads", po::value(&o.reads)->value_name("BAM/CRAM"), "train on reads packed into rows instead of windows")
      ("reference", po::value(&o.reads_reference)->value_name("REF.fa"), "FASTA to decode CRAM (default: --fasta)")
      ("sampling", po::value(&o.sampling)->default_value(o.sampling), "window sampling: random | tile")
      ("max-n-frac", po::value(&o.max_n_frac)->default_value(o.max_n_frac), "reject windows with this N fraction or more")
      ("rc-augment", po::bool_switch(&o.rc_augment), "reverse-complement half of the windows")
      ("soft-weight", po::value(&o.soft_weight)->default_value(o.soft_weight), "loss weight of soft-masked targets");
  std::string model_file;
  int64_t d_model = 0, n_layer = 0;
  std::string schedule;
  po::options_description model("Model and optimisation");
  model.add_options()
      ("model", po::value(&model_file)->value_name("MODEL.ini"), "model config ([model] section of an .ini)")
      ("d-model", po::value(&d_model), "override the model file's d_model")
      ("n-layer", po::value(&n_layer), "override the model file's n_layer")
      ("init", po::value(&o.init_checkpoint)->value_name("CKPT"), "start from a checkpoint's weights")
      ("seq-len,L", po::value(&o.seq_len)->default_value(o.seq_len), "tokens per row")
      ("batch-size,b", po::value(&o.batch_size)->default_value(o.batch_size), "rows per micro-batch")
      ("grad-accum", po::value(&o.grad_accum)->default_value(o.grad_accum), "micro-batches per step")
      ("seq-len-schedule", po::value(&schedule)->value_name("STEP:LEN,..."),
       "context warmup stages; rows per step = --tokens-per-batch / LEN")
      ("tokens-per-batch", po::value(&o.tokens_per_batch)->default_value(0), "tokens per step with a schedule")
      ("steps", po::value(&o.steps)->default_value(o.steps), "optimizer steps")
      ("lr", po::value(&o.lr)->default_value(o.lr), "peak learning rate")
      ("warmup", po::value(&o.warmup_steps)->default_value(o.warmup_steps), "linear warmup steps")
      ("min-lr-ratio", po::value(&o.min_lr_ratio)->default_value(o.min_lr_ratio), "cosine floor as a fraction of --lr")
      ("weight-decay", po::value(&o.weight_decay)->default_value(o.weight_decay), "AdamW weight decay")
      ("beta1", po::value(&o.beta1)->default_value(o.beta1), "AdamW beta1")
      ("beta2", po::value(&o.beta2)->default_value(o.beta2), "AdamW beta2")
      ("adam-eps", po::value(&o.adam_eps)->default_value(o.adam_eps), "AdamW epsilon")
      ("clip", po::value(&o.clip_grad_norm)->default_value(o.clip_grad_norm), "gradient norm clip (<= 0: off)")
      ("max-bad-steps", po::value(&o.max_bad_steps)->default_value(o.max_bad_steps),
       "stop after this many consecutive NaN/Inf steps");
  po::options_description run("Validation and run");
  run.add_options()
      ("output,o", po::value(&o.out_dir)->value_name("RUN_DIR"), "run directory (metrics, checkpoints)")
      ("eval-every", po::value(&o.eval_every)->default_value(0), "validate every N steps (0: at the end)")
      ("eval-seq-len", po::value(&o.eval_seq_len)->default_value(0), "validation window (default: --seq-len)")
      ("eval-max-windows", po::value(&o.eval_max_windows)->default_value(0), "cap on validation windows (0: all)")
      ("eval-min-acgt", po::value(&o.eval_min_acgt)->default_value(o.eval_min_acgt),
       "skip validation windows with fewer A/C/G/T")
      ("eval-batch-size", po::value(&o.eval_batch_size)->default_value(0), "rows per validation batch")
      ("checkpoint-every", po::value(&o.checkpoint_every)->default_value(0), "checkpoint every N steps (0: at the end)")
      ("resume", po::bool_switch(&o.resume), "continue from RUN_DIR/checkpoints/latest")
      ("log-every", po::value(&o.log_every)->default_value(o.log_every), "log every N steps")
      ("seed", po::value(&o.seed)->default_value(o.seed), "seed of initialisation and sampling")
      ("device", po::value(&o.device)->default_value(o.device), "cpu | cuda | cuda:N")
      ("precision", po::value(&o.precision)->default_value(o.precision), "CUDA activations: bf16 | fp32")
      ("memory-budget", po::value(&o.memory_budget_gib)->default_value(0)->value_name("GiB"),
       "device memory a step may take beyond the model and optimizer (0: 90% of what is free; "
       "no limit on the CPU); layers are recomputed to fit, or kept whole with the rest");
  po::options_description all;
  all.add(data).add(model).add(run);
  po::positional_options_description pos;
  pos.add("fasta", 1);
  po::variables_map vm;
  if (!parse_command_line(spec, all, pos, argc, argv, vm)) return 0;

  if (o.fasta.empty()) throw UsageError("a reference FASTA is required");
  if (o.out_dir.empty()) throw UsageError("-o RUN_DIR is required");
  if (model_file.empty()) throw UsageError("--model MODEL.ini is required (see configs/)");
  o.fasta = resolve_path(vm, o.fasta);
  o.splits_bed = resolve_path(vm, o.splits_bed);
  o.reads = resolve_path(vm, o.reads);
  o.reads_reference = resolve_path(vm, o.reads_reference);
  o.init_checkpoint = resolve_path(vm, o.init_checkpoint);
  try {
    o.model = ModelConfig::from_ini(resolve_path(vm, model_file));
    if (d_model > 0) o.model.d_model = d_model;
    if (n_layer > 0) o.model.n_layer = n_layer;
    o.model.validate();
  } catch (const std::invalid_argument& e) {
    throw UsageError(e.what());
  }
  o.train_regions = train_regions;
  o.valid_regions = valid_regions;
  if (!schedule.empty()) o.seq_len_schedule = parse_schedule(schedule);
  if (!o.seq_len_schedule.empty() && o.tokens_per_batch <= 0)
    throw UsageError("--seq-len-schedule needs --tokens-per-batch");
  if (o.seq_len < 1 || o.batch_size < 1 || o.grad_accum < 1 || o.steps < 1)
    throw UsageError("--seq-len, --batch-size, --grad-accum and --steps must be >= 1");
  if (o.sampling != "random" && o.sampling != "tile") throw UsageError("--sampling must be random or tile");
  if (!(o.max_n_frac > 0 && o.max_n_frac <= 1)) throw UsageError("--max-n-frac must be in (0, 1]");
  if (!(o.memory_budget_gib >= 0 && o.memory_budget_gib < 1e6))
    throw UsageError("--memory-budget must be a size in GiB >= 0 (0: what the device has free)");
  o.threads = threads_option(vm);
  o.command_line = joined_command_line(argc, argv);
  return run_pretrain(o, std::cerr);
}

}  // namespace gm::app
