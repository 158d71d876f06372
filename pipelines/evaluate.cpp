// Windowed held-out evaluation (see evaluate.h).
#include "pipelines/evaluate.h"

#include <cmath>

#include "genomics/window_dataset.h"
#include "mamba/batch.h"

namespace gm {

double EvalResult::bits_per_base() const { return mean_loss() / std::log(2.0); }
double EvalResult::perplexity() const { return std::exp(mean_loss()); }

EvalResult evaluate_windows(Context& ctx, MambaModel& model, const std::string& fasta,
                            const std::vector<Interval>& intervals, const EvalOptions& opt,
                            const std::function<void(int64_t, int64_t)>& on_batch) {
  WindowDatasetOptions wo;
  wo.mode = WindowMode::Strided;
  wo.rows = static_cast<int>(opt.batch_size);
  wo.length = opt.window + 1;
  wo.stride = opt.window;
  wo.max_n_frac = 1.0;
  wo.min_non_n = opt.min_acgt;
  wo.shuffle = false;
  wo.repeat = false;
  WindowDataset data(fasta, intervals, wo);
  EvalResult result;
  Batch batch;
  while (opt.max_windows == 0 || result.windows < opt.max_windows) {
    if (!data.next(batch)) break;
    int rows = batch.rows;
    if (opt.max_windows > 0 && result.windows + rows > opt.max_windows) {
      rows = static_cast<int>(opt.max_windows - result.windows);
      batch.truncate_rows(rows);
    }
    if (rows == 0) break;
    const NextTokenBatch nt = NextTokenBatch::from_windows(batch.tokens, batch.flags, rows, batch.length);
    result.loss_sum += model.loss_sum(ctx, nt.upload(ctx, 1.f));
    result.targets += nt.weight_sum(1.f);
    result.windows += rows;
    if (on_batch) on_batch(result.windows + data.windows_rejected(), static_cast<int64_t>(data.plan().size()));
  }
  return result;
}

}  // namespace gm
