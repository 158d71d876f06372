// The pretraining loop (see pretrain.h).
//
// Exact resume: everything a step depends on is either in the checkpoint (weights,
// AdamW moments and step count, data cursor) or a pure function of the options and
// the step index (learning rate, sequence-length stage, the sampler seeds). Batches
// come from counter-based datasets whose cursor is restored, so a resumed run sees
// the same batches and computes the same updates bit for bit on the same device and
// thread count.
#include "pipelines/pretrain.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <memory>
#include <sstream>
#include <unistd.h>

#include "genomics/bed.h"
#include "genomics/errors.h"
#include "genomics/fasta.h"
#include "genomics/intervals.h"
#include "genomics/prefetch_loader.h"
#include "genomics/read_dataset.h"
#include "genomics/window_dataset.h"
#include "mamba/batch.h"
#include "mamba/checkpoint.h"
#include "mamba/context.h"
#include "mamba/model.h"
#include "mamba/optim.h"
#include "mamba/safetensors.h"
#include "pipelines/evaluate.h"
#include "pipelines/progress.h"

namespace gm {

namespace fs = std::filesystem;

namespace {

struct Stage {
  int64_t from_step = 0;
  int64_t seq_len = 0;
  int64_t rows = 0;  // per micro-batch
};

std::vector<Stage> plan_stages(const PretrainOptions& o) {
  if (o.seq_len_schedule.empty()) return {{0, o.seq_len, o.batch_size}};
  std::vector<Stage> stages;
  for (const auto& s : o.seq_len_schedule) {
    const int64_t rows = std::max<int64_t>(1, o.tokens_per_batch / (s.seq_len * o.grad_accum));
    stages.push_back({s.from_step, s.seq_len, rows});
  }
  return stages;
}

size_t stage_at(const std::vector<Stage>& stages, int64_t step) {
  size_t k = 0;
  while (k + 1 < stages.size() && stages[k + 1].from_step <= step) ++k;
  return k;
}

std::string number(double v) {
  if (!std::isfinite(v)) return "null";
  std::ostringstream os;
  os << std::setprecision(9) << v;
  return os.str();
}

class MetricsLog {
 public:
  explicit MetricsLog(const std::string& path) : out_(path, std::ios::app) {
    if (!out_) throw std::runtime_error("cannot write metrics file '" + path + "'");
  }
  void write(const std::string& json_object) { out_ << json_object << "\n" << std::flush; }

 private:
  std::ofstream out_;
};

// Everything that defines the training data of one stage.
class TrainData {
 public:
  TrainData(const PretrainOptions& o, const std::vector<Interval>& intervals, const Stage& stage, size_t stage_index) {
    std::unique_ptr<BatchSource> source;
    if (!o.reads.empty()) {
      PackedReadOptions ro;
      ro.rows = static_cast<int>(stage.rows);
      ro.length = stage.seq_len + 1;
      ro.repeat = true;
      source = std::make_unique<PackedReadDataset>(o.reads, o.reads_reference.empty() ? o.fasta : o.reads_reference, ro);
    } else {
      WindowDatasetOptions wo;
      wo.mode = o.sampling == "tile" ? WindowMode::Tiled : WindowMode::Random;
      wo.rows = static_cast<int>(stage.rows);
      wo.length = stage.seq_len + 1;
      wo.max_n_frac = o.max_n_frac;
      wo.rc_augment = o.rc_augment;
      wo.shuffle = true;
      wo.repeat = true;
      // A different, fixed sampler stream per stage.
      wo.seed = o.seed * 0x9E3779B97F4A7C15ull + 0x5851F42D4C957F2Dull * (stage_index + 1);
      source = std::make_unique<WindowDataset>(o.fasta, intervals, wo);
    }
    loader_ = std::make_unique<PrefetchLoader>(std::move(source), 3);
    stage_index_ = stage_index;
  }
  bool next(Batch& b) { return loader_->next(b); }
  std::string cursor() const { return std::to_string(stage_index_) + "|" + loader_->cursor(); }
  // Restores a cursor saved by the same stage; returns false (left fresh) otherwise.
  bool restore(const std::string& saved) {
    const auto bar = saved.find('|');
    if (bar == std::string::npos) throw std::runtime_error("malformed data cursor in checkpoint");
    if (std::stoul(saved.substr(0, bar)) != stage_index_) return false;
    loader_->restore(saved.substr(bar + 1));
    return true;
  }

 private:
  std::unique_ptr<PrefetchLoader> loader_;
  size_t stage_index_ = 0;
};

std::string checkpoint_name(int64_t step) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "step-%08lld", static_cast<long long>(step));
  return buf;
}

// Writes checkpoints/step-N/ under a temporary directory name, renames it into place,
// then points checkpoints/latest at it.
void save_checkpoint(Context& ctx, const PretrainOptions& o, const MambaModel& model, const AdamW& opt,
                     const TrainState& state) {
  const fs::path dir = fs::path(o.out_dir) / "checkpoints";
  fs::create_directories(dir);
  const std::string name = checkpoint_name(state.step);
  const fs::path tmp = dir / ("." + name + ".tmp." + std::to_string(getpid()));
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  StringMap provenance{{"genomamba_version", GENOMAMBA_VERSION},
                       {"command_line", o.command_line},
                       {"reference", o.fasta},
                       {"trained_steps", std::to_string(state.step)}};
  save_weights(ctx, model, (tmp / "model.safetensors").string(), provenance);
  save_config_json(model.config(), (tmp / "config.json").string());
  save_train_state(ctx, opt, model.config(), state, (tmp / "train_state.safetensors").string());
  const fs::path final_dir = dir / name;
  fs::remove_all(final_dir);
  fs::rename(tmp, final_dir);
  const std::string latest = name + "\n";
  write_file_atomic((dir / "latest").string(), {{latest.data(), latest.size()}});
}

// The directory named by checkpoints/latest, or empty when there is none.
fs::path latest_checkpoint(const std::string& out_dir) {
  const fs::path latest = fs::path(out_dir) / "checkpoints" / "latest";
  std::ifstream in(latest);
  std::string name;
  if (!(in >> name)) return {};
  const fs::path dir = latest.parent_path() / name;
  if (!fs::is_directory(dir)) throw std::runtime_error("'" + latest.string() + "' names a missing checkpoint " + dir.string());
  return dir;
}

std::vector<Interval> split_intervals(const PretrainOptions& o, const FastaReader& fasta, Split split,
                                      const std::vector<std::string>& regions) {
  if (!o.splits_bed.empty()) {
    const BedFile bed = read_bed(o.splits_bed);
    if (!bed.has_split_column)
      throw InputError(o.splits_bed + ": --splits needs a 4th column of train|valid|test");
    return intervals_from_bed(bed, fasta.contigs(), split);
  }
  if (split == Split::Valid && regions.empty()) return {};
  return intervals_from_regions(regions, fasta.contigs(), split);
}

}  // namespace

int run_pretrain(const PretrainOptions& o, std::ostream& log) {
  const Device device = Device::parse(o.device);
  auto ctx = Context::create(device, o.threads, parse_precision(o.precision));
  fs::create_directories(o.out_dir);

  FastaReader fasta(o.fasta);
  const auto train_intervals = split_intervals(o, fasta, Split::Train, o.train_regions);
  const auto valid_intervals = split_intervals(o, fasta, Split::Valid, o.valid_regions);
  if (train_intervals.empty() && o.reads.empty()) throw InputError("no training intervals selected");

  MambaModel model(*ctx, o.model);
  AdamWConfig acfg;
  acfg.beta1 = o.beta1;
  acfg.beta2 = o.beta2;
  acfg.eps = o.adam_eps;
  acfg.weight_decay = o.weight_decay;
  acfg.max_grad_norm = o.clip_grad_norm;
  AdamW optimizer(*ctx, model.params(), acfg);
  const LrSchedule schedule{o.lr, o.warmup_steps, o.steps, o.min_lr_ratio};
  const auto stages = plan_stages(o);

  int64_t step = 0;
  std::string cursor;
  const fs::path resume_from = o.resume ? latest_checkpoint(o.out_dir) : fs::path();
  if (!resume_from.empty()) {
    load_weights(*ctx, model, (resume_from / "model.safetensors").string());
    const TrainState st = load_train_state(*ctx, optimizer, model.config(), (resume_from / "train_state.safetensors").string());
    step = st.step;
    cursor = st.data_cursor;
    log << "pretrain: resumed from " << resume_from.string() << " at step " << step << "\n";
  } else {
    if (o.resume) log << "pretrain: --resume: no checkpoint in " << o.out_dir << ", starting from scratch\n";
    if (!o.init_checkpoint.empty()) load_weights(*ctx, model, o.init_checkpoint);
    else model.init_weights(*ctx, o.seed);
  }
  log << "pretrain: " << model.config().summary() << ", on "
      << ctx->device().str() << " (" << precision_name(ctx->precision()) << ")\n";

  MetricsLog metrics((fs::path(o.out_dir) / "metrics.jsonl").string());
  EvalOptions eval_opt;
  eval_opt.window = o.eval_seq_len > 0 ? o.eval_seq_len : stages.back().seq_len;
  eval_opt.batch_size = o.eval_batch_size > 0 ? o.eval_batch_size : stages.back().rows;
  eval_opt.min_acgt = o.eval_min_acgt;
  eval_opt.max_windows = o.eval_max_windows;
  auto validate = [&](int64_t at_step) {
    if (valid_intervals.empty()) return;
    const EvalResult r = evaluate_windows(*ctx, model, o.fasta, valid_intervals, eval_opt);
    log << (at_step > 0 ? "\n" : "") << "pretrain: step " << at_step << " validation: " << std::fixed
        << std::setprecision(4) << r.bits_per_base() << " bits/base, loss " << r.mean_loss() << ", perplexity "
        << r.perplexity() << " (" << r.windows << " windows, " << static_cast<int64_t>(r.targets) << " bases)\n"
        << std::defaultfloat;
    metrics.write("{\"event\":\"valid\",\"step\":" + std::to_string(at_step) + ",\"loss\":" + number(r.mean_loss()) +
                  ",\"bits_per_base\":" + number(r.bits_per_base()) + ",\"windows\":" + std::to_string(r.windows) +
                  ",\"bases\":" + number(r.targets) + "}");
  };
  auto checkpoint = [&](int64_t at_step, const TrainData& data) {
    TrainState st;
    st.step = at_step;
    st.data_cursor = data.cursor();
    save_checkpoint(*ctx, o, model, optimizer, st);
  };

  size_t stage_index = stage_at(stages, step);
  auto data = std::make_unique<TrainData>(o, train_intervals, stages[stage_index], stage_index);
  if (!cursor.empty()) data->restore(cursor);
  if (step == 0 && o.eval_every > 0) validate(0);

  TrainOptions train_opt;
  train_opt.memory_budget = static_cast<int64_t>(std::llround(o.memory_budget_gib * 1073741824.0));
  // The memory plan of a stage's micro-batches, as forward_backward will make it (each step
  // plans again from the memory free then).
  auto log_plan = [&](const Stage& st) {
    const StepPlan plan = model.plan_step(*ctx, st.rows, st.seq_len, train_opt);
    const auto count = [](const std::vector<bool>& v) { return std::count(v.begin(), v.end(), true); };
    log << "pretrain: memory plan for " << st.rows << " x " << st.seq_len << " tokens: " << count(plan.recompute)
        << " of " << plan.recompute.size() << " layers recomputed, " << count(plan.keep) << " kept whole\n";
  };
  log_plan(stages[stage_index]);

  Progress progress(log, "pretrain", o.steps, "steps");
  std::vector<Batch> micro(static_cast<size_t>(o.grad_accum));
  std::vector<NextTokenBatch> host(micro.size());
  int bad_in_a_row = 0;
  double tokens_done = 0;
  const int64_t first_step = step;
  while (step < o.steps) {
    const size_t want_stage = stage_at(stages, step);
    if (want_stage != stage_index) {
      stage_index = want_stage;
      data = std::make_unique<TrainData>(o, train_intervals, stages[stage_index], stage_index);
      log << (progress.elapsed_seconds() > 0 ? "\n" : "") << "pretrain: step " << step << ": sequence length "
          << stages[stage_index].seq_len << " x " << stages[stage_index].rows << " rows\n";
      log_plan(stages[stage_index]);
    }
    double weight = 0;
    for (size_t m = 0; m < micro.size(); ++m) {
      if (!data->next(micro[m])) throw std::runtime_error("training data ran out");
      host[m] = NextTokenBatch::from_windows(micro[m].tokens, micro[m].flags, micro[m].rows, micro[m].length);
      weight += host[m].weight_sum(o.soft_weight);
    }
    model.params().zero_grads(*ctx);
    double loss_sum = 0;
    double step_tokens = 0;
    if (weight > 0) {
      for (const auto& h : host) {
        loss_sum += model.forward_backward(*ctx, h.upload(*ctx, o.soft_weight), static_cast<float>(1.0 / weight),
                                           train_opt);
        step_tokens += static_cast<double>(h.batch * h.length);
      }
    }
    const double loss = weight > 0 ? loss_sum / weight : 0;
    const double lr = schedule.at(step);
    StepReport report;
    if (weight > 0 && std::isfinite(loss)) report = optimizer.step(*ctx, lr);
    ++step;
    tokens_done += step_tokens;

    if (weight > 0 && !report.applied) {
      ++bad_in_a_row;
      log << "\npretrain: step " << step - 1 << ": non-finite loss or gradients (loss " << loss << ", grad norm "
          << report.grad_norm << "), update skipped (" << bad_in_a_row << " in a row)\n";
      metrics.write("{\"event\":\"skipped\",\"step\":" + std::to_string(step - 1) + ",\"loss\":" + number(loss) + "}");
      if (bad_in_a_row >= o.max_bad_steps) {
        log << "pretrain: stopping after " << bad_in_a_row
            << " consecutive non-finite steps; the last checkpoint holds finite weights. Try a lower --lr, "
               "--clip, or fp32 precision.\n";
        return 3;
      }
    } else {
      bad_in_a_row = 0;
    }

    const double secs = progress.elapsed_seconds();
    const double tok_per_s = secs > 0 ? tokens_done / secs : 0;
    if (report.applied && (step % o.log_every == 0 || step == o.steps)) {
      std::ostringstream detail;
      detail << "loss " << std::fixed << std::setprecision(4) << loss << " (" << loss / std::log(2.0)
             << " bits) | lr " << std::scientific << std::setprecision(2) << lr << " | " << Progress::format_rate(tok_per_s)
             << "tok/s";
      progress.update(step, detail.str());
      metrics.write("{\"event\":\"train\",\"step\":" + std::to_string(step - 1) + ",\"loss\":" + number(loss) +
                    ",\"lr\":" + number(lr) + ",\"grad_norm\":" + number(report.grad_norm) +
                    ",\"tokens_per_s\":" + number(tok_per_s) + ",\"seq_len\":" +
                    std::to_string(stages[stage_index].seq_len) + "}");
    }
    const bool last = step == o.steps;
    if (o.eval_every > 0 && step % o.eval_every == 0 && !last) validate(step);
    if ((o.checkpoint_every > 0 && step % o.checkpoint_every == 0) || last) checkpoint(step, *data);
  }
  progress.finish();
  if (first_step < o.steps || o.eval_every == 0) validate(step);
  log << "pretrain: done, " << step << " steps; checkpoint " << (fs::path(o.out_dir) / "checkpoints" / checkpoint_name(step)).string()
      << "\n";
  return 0;
}

}  // namespace gm
