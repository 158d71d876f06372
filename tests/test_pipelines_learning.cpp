// Learning on real data: a tiny model pretrained for a few hundred steps on GRCh38
// chr20 (first 8 Mb) reaches a held-out loss on chr20:8.0-8.2 Mb clearly below the
// unigram entropy of those same held-out bases (the best any context-free model can
// do on them). Both numbers are computed here.
#include <gtest/gtest.h>

#include <cmath>
#include <sstream>

#include "genomics/fasta.h"
#include "genomics/intervals.h"
#include "mamba/checkpoint.h"
#include "pipelines/checkpoint_path.h"
#include "pipelines/evaluate.h"
#include "pipelines/pretrain.h"
#include "tests/test_support.h"

namespace gm {
namespace {

TEST(Learning, TinyModelBeatsUnigramEntropyOnHeldOutChr20) {
  test::TempDir dir;
  const std::string ref = test::data_path("setA/grch38.chr20_and_21_10M.fa.gz");
  PretrainOptions o;
  o.fasta = ref;
  o.train_regions = {"chr20:1-8000000"};
  o.valid_regions = {"chr20:8000001-8200000"};
  o.model = ModelConfig::from_ini((test::source_dir() / "configs/tiny.ini").string());
  o.seq_len = 512;
  o.batch_size = 8;
  o.steps = 250;
  o.lr = 3e-3;
  o.warmup_steps = 10;
  o.eval_seq_len = 2048;
  o.eval_max_windows = 0;
  o.threads = 2;
  o.out_dir = dir / "run";
  std::ostringstream log;
  ASSERT_EQ(run_pretrain(o, log), 0) << log.str();

  // Held-out bits per base, recomputed from the final checkpoint.
  CpuContext ctx(2);
  auto model = load_model(ctx, resolve_weights_path(o.out_dir));
  FastaReader fasta(ref);
  const auto intervals = intervals_from_regions(o.valid_regions, fasta.contigs());
  EvalOptions eo;
  eo.window = o.eval_seq_len;
  const EvalResult r = evaluate_windows(ctx, *model, ref, intervals, eo);
  ASSERT_GT(r.windows, 50);

  // Unigram entropy of exactly the evaluated targets: window k covers targets
  // [beg + 1 + k*W, beg + (k+1)*W] (this region has no N, so no window is skipped).
  const Region& reg = intervals.front().region;
  const auto seq = fasta.fetch(reg.contig_id, reg.beg + 1, reg.beg + 1 + r.windows * eo.window);
  double counts[4] = {0, 0, 0, 0};
  for (char c : seq.view()) {
    switch (c | 0x20) {
      case 'a': counts[0]++; break;
      case 'c': counts[1]++; break;
      case 'g': counts[2]++; break;
      case 't': counts[3]++; break;
      default: break;
    }
  }
  const double total = counts[0] + counts[1] + counts[2] + counts[3];
  ASSERT_EQ(total, r.targets);
  double unigram_bits = 0;
  for (double c : counts) unigram_bits -= c / total * std::log2(c / total);

  RecordProperty("valid_bits_per_base", std::to_string(r.bits_per_base()));
  RecordProperty("unigram_bits", std::to_string(unigram_bits));
  std::cout << "held-out " << r.bits_per_base() << " bits/base vs unigram entropy " << unigram_bits << "\n";
  EXPECT_LT(r.bits_per_base(), unigram_bits - 0.03);
}

}  // namespace
}  // namespace gm
