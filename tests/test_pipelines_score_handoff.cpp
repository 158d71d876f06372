// The full-context stream fed by another thread (StreamHandoff): forward-strand LLR jobs
// handed over while they are still being added give bitwise the scores of the same jobs
// known in advance; the stream reports how far scores are final and stops once no job
// needs more of the contig; a failure on either side ends the other's waits; and the
// job as a whole (run_score, --strand forward) reports a bad record met mid-stream, and
// streams several contigs in turn (one the FASTA lacks among them), keeping the input order.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "genomics/errors.h"
#include "genomics/fasta.h"
#include "mamba/checkpoint.h"
#include "pipelines/score.h"
#include "pipelines/score_engine.h"
#include "pipelines/score_handoff.h"
#include "tests/cli_runner.h"
#include "tests/test_pipelines_score_support.h"

namespace gm {
namespace {

using test::data_path;

class ScoreHandoff : public ::testing::Test {
 protected:
  void SetUp() override {
    weights_ = test::save_tiny_model(dir_ / "model.safetensors");
    FastaReader fasta(data_path("setB/genome.fasta"));
    seq_ = std::make_shared<const ContigTokens>(fasta, 0, 0, fasta.contigs()[0].length);
    ctx_ = Context::create(Device::cpu(), 2);
    model_ = load_model(*ctx_, weights_);
  }

  // Forward-strand LLR jobs: an SNV (REF from the contig, ALT the next base) at every
  // `step`-th position of [first, last), records at those positions.
  std::deque<StrandJob> make_jobs(int64_t first, int64_t last, int64_t step) const {
    JobGeometry g;
    g.llr = true;
    g.context = 0;
    std::deque<StrandJob> jobs;
    static const char* kBases[] = {"A", "C", "G", "T"};
    for (int64_t p = first; p < last; p += step) {
      const std::vector<uint8_t> ref{seq_->forward(p)};
      int base = 0;
      while (allele_tokens(kBases[base]) != ref && base < 3) ++base;
      const std::vector<uint8_t> alt = allele_tokens(kBases[(base + 1) % 4]);
      jobs.push_back(make_strand_job(Strand::Forward, p, ref, alt, seq_->contig_length(), g));
    }
    return jobs;
  }

  EngineOptions engine_options() const {
    EngineOptions eo;
    eo.scores = parse_score_selection("llr");
    eo.layer = 2;
    eo.chunk = 700;  // many chunks over the 40,001-base contig, not a divisor of it
    return eo;
  }

  test::TempDir dir_;
  std::string weights_;
  std::shared_ptr<const ContigTokens> seq_;
  std::unique_ptr<Context> ctx_;
  std::unique_ptr<MambaModel> model_;
};

TEST_F(ScoreHandoff, JobsHandedOverWhileStreamingScoreAsJobsKnownInAdvance) {
  const int64_t last = 31000;  // no job after 3/4 of the contig: the stream stops there
  std::deque<StrandJob> known = make_jobs(1, last, 53), handed = known;
  ASSERT_GT(known.size(), 500u);
  {
    ScoreEngine engine(*ctx_, *model_, engine_options());
    std::vector<StrandJob*> ptrs;
    for (auto& j : known) ptrs.push_back(&j);
    engine.score_full(*seq_, ptrs);
  }
  StreamHandoff handoff;
  std::vector<int64_t> final_seen;
  std::thread reader([&] {
    try {
      const int contig = handoff.open_contig(seq_, true);
      StreamHandoff::Progress seen;
      auto note_progress = [&] {
        const StreamHandoff::Progress now = handoff.progress(contig);
        if (!(now == seen)) final_seen.push_back(now.final_before);
        seen = now;
      };
      const size_t half = handed.size() / 2;
      for (size_t i = 0; i < handed.size(); ++i) {
        if (i == half) {
          // Once the stream has run every chunk that the records added so far complete (a
          // chunk needs every record before its end), it must wait for the next ones.
          while (seen.final_before + 700 <= handed[half - 1].pos) {
            handoff.wait_progress(contig, seen);
            note_progress();
          }
          std::this_thread::sleep_for(std::chrono::milliseconds(30));
        }
        handoff.advance(handed[i].pos);
        handoff.add_job(&handed[i], handed[i].pos);
        note_progress();
      }
      handoff.close_contig();
      handoff.finish_input();
      for (StreamHandoff::Progress p = handoff.progress(contig); !p.all_final; p = handoff.progress(contig))
        handoff.wait_progress(contig, p);
    } catch (...) {
      handoff.fail(std::current_exception());
    }
  });
  ScoreEngine engine(*ctx_, *model_, engine_options());
  int index = -1;
  std::shared_ptr<const ContigTokens> seq;
  bool incremental = false;
  double waited = 0;
  ASSERT_TRUE(handoff.next_contig(index, seq, incremental));
  EXPECT_TRUE(incremental);
  HandoffJobSource source(handoff, index, incremental);
  engine.score_full(*seq, source);
  waited = source.wait_seconds();
  const StreamHandoff::Progress at_end = handoff.progress(index);
  handoff.set_all_final(index);
  reader.join();
  ASSERT_FALSE(handoff.error());
  EXPECT_FALSE(handoff.next_contig(index, seq, incremental));
  EXPECT_GT(waited, 0.0) << "the stream never had to wait for jobs";
  for (size_t i = 0; i < known.size(); ++i) {
    ASSERT_TRUE(std::isfinite(known[i].llr_value)) << known[i].pos;
    EXPECT_TRUE(test::same_bits(handed[i].llr_value, known[i].llr_value))
        << known[i].pos << ": " << handed[i].llr_value << " vs " << known[i].llr_value;
  }
  // Final positions only grow, cover every job, and the stream stopped at the chunk of the
  // last job instead of running to the contig's end.
  for (size_t i = 1; i < final_seen.size(); ++i) EXPECT_LT(final_seen[i - 1], final_seen[i]);
  EXPECT_GT(at_end.final_before, handed.back().pos);
  EXPECT_LT(at_end.final_before, handed.back().pos + 700 + 2);
  EXPECT_EQ(engine.tokens_run(), (handed.back().pos - 1) / 700 * 700 + 700);
}

TEST_F(ScoreHandoff, AFailedReaderEndsTheStreamsWait) {
  std::deque<StrandJob> jobs = make_jobs(1, 20000, 97);
  StreamHandoff handoff;
  std::thread reader([&] {
    handoff.open_contig(seq_, true);
    for (size_t i = 0; i < jobs.size() / 2; ++i) {
      handoff.advance(jobs[i].pos);
      handoff.add_job(&jobs[i], jobs[i].pos);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    handoff.fail(std::make_exception_ptr(InputError("in.vcf: record 7: broken")));
  });
  ScoreEngine engine(*ctx_, *model_, engine_options());
  int index = -1;
  std::shared_ptr<const ContigTokens> seq;
  bool incremental = false;
  ASSERT_TRUE(handoff.next_contig(index, seq, incremental));
  HandoffJobSource source(handoff, index, incremental);
  EXPECT_THROW(engine.score_full(*seq, source), StreamHandoff::Stopped);
  reader.join();
  try {
    std::rethrow_exception(handoff.error());
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("record 7"), std::string::npos);
  }
  // The reading side's waits end too once the stream side gave up.
  StreamHandoff other;
  const int c = other.open_contig(seq_, true);
  std::thread stream([&] { other.fail(std::make_exception_ptr(std::runtime_error("device lost"))); });
  EXPECT_THROW(other.wait_progress(c, other.progress(c)), StreamHandoff::Stopped);
  stream.join();
}

TEST_F(ScoreHandoff, ForwardStrandJobReportsAnUnsortedRecordAndLeavesNoOutput) {
  // Sorted records, then one that goes back: the reading thread fails while the stream runs.
  const std::string vcf = dir_ / "unsorted.vcf";
  const std::string src = test::shell_quote(data_path("setB/gnomAD.r2.1.1.vcf.gz"));
  const std::string cmd = "(bcftools view -h " + src + "; bcftools view -H " + src +
                          " | head -2000; bcftools view -H " + src + " | head -1) > " + test::shell_quote(vcf);
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  ScoreOptions o = test::score_options(vcf, data_path("setB/genome.fasta"), weights_, dir_ / "out.vcf.gz");
  o.full_context = true;
  o.strand = ScoreStrands::Forward;
  o.scores = parse_score_selection("llr");
  o.chunk = 256;
  std::ostringstream log;
  try {
    run_score(o, log);
    FAIL() << "an unsorted record was accepted";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("not sorted"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("record 2,001"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(std::filesystem::exists(dir_ / "out.vcf.gz"));
}

TEST_F(ScoreHandoff, SeveralContigsStreamInTurnAndKeepTheInputOrder) {
  // Three contigs cut from set B's chr22 (real bases) and, between them, records on a contig
  // the FASTA lacks: the reading thread holds two contigs at a time, hands three to the
  // stream, and writes the other's records (GM_OUTSIDE) in their place.
  struct Cut {
    const char* name;
    int64_t beg, length, step;
  };
  const Cut cuts[] = {{"cA", 0, 9000, 97}, {"cB", 12000, 7000, 89}, {"cC", 25000, 11000, 101}};
  FastaReader source(data_path("setB/genome.fasta"));
  const std::string fa = dir_ / "three.fa", vcf = dir_ / "three.vcf";
  std::ofstream f(fa), v(vcf);
  v << "##fileformat=VCFv4.2\n";
  for (const Cut& c : cuts) v << "##contig=<ID=" << c.name << ",length=" << c.length << ">\n";
  v << "##contig=<ID=cX,length=5000>\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n";
  static const char* kNext[] = {"C", "G", "T", "A"};
  size_t expected = 0;
  for (const Cut& c : cuts) {
    const std::string bases = source.fetch_string(Region{0, "chr22", c.beg, c.beg + c.length});
    f << ">" << c.name << "\n";
    for (int64_t p = 0; p < c.length; p += 60) f << bases.substr(static_cast<size_t>(p), 60) << "\n";
    for (int64_t p = 0; p < c.length; p += c.step) {
      const char b = bases[static_cast<size_t>(p)];
      const int k = std::string("ACGT").find(b) == std::string::npos ? -1 : static_cast<int>(std::string("ACGT").find(b));
      if (k < 0) continue;
      v << c.name << "\t" << p + 1 << "\t.\t" << b << "\t" << kNext[k] << "\t.\t.\t.\n";
      ++expected;
    }
    if (std::string(c.name) == "cA") {
      for (int p : {100, 2000, 4000}) v << "cX\t" << p << "\t.\tA\tC\t.\t.\t.\n";
      expected += 3;
    }
  }
  f.close();
  v.close();
  auto run = [&](bool full, ScoreStrands strand, const std::string& name) {
    ScoreOptions o = test::score_options(vcf, fa, weights_, dir_ / (name + ".vcf.gz"));
    o.tsv = dir_ / (name + ".tsv");
    o.scores = parse_score_selection("llr");
    o.strand = strand;
    o.full_context = full;
    o.context = 50000;  // window mode: more than any contig, so every base before the allele
    o.chunk = 1000;
    o.allow_partial_reference = true;
    std::ostringstream log;
    run_score(o, log);
    return test::read_score_tsv(o.tsv);
  };
  for (const ScoreStrands strand : {ScoreStrands::Forward, ScoreStrands::Both}) {
    SCOPED_TRACE(score_strands_name(strand));
    const auto full = run(true, strand, "full"), window = run(false, strand, "window");
    ASSERT_EQ(full.size(), expected);
    ASSERT_EQ(window.size(), expected);
    int outside = 0, scored = 0;
    for (size_t i = 0; i < full.size(); ++i) {
      SCOPED_TRACE(full[i].chrom + ":" + std::to_string(full[i].pos));
      EXPECT_EQ(full[i].chrom, window[i].chrom);
      EXPECT_EQ(full[i].pos, window[i].pos);
      EXPECT_TRUE(test::same_score(full[i].llr, window[i].llr, 2e-5, 1e-4)) << full[i].llr << " vs " << window[i].llr;
      if (full[i].chrom == "cX") {
        EXPECT_TRUE(full[i].has("GM_OUTSIDE"));
        ++outside;
      } else {
        scored += std::isfinite(full[i].llr);
      }
    }
    EXPECT_EQ(outside, 3);
    EXPECT_GT(scored, 250);
    // Input order: cA, then cX, then cB, then cC.
    EXPECT_EQ(full.front().chrom, "cA");
    EXPECT_EQ(full.back().chrom, "cC");
  }
}

}  // namespace
}  // namespace gm
