// FastaReader on the bundled references: contigs, random access against an
// independent whole-file parse, MD5, index building, and the bad-input cases.
#include <gtest/gtest.h>
#include <htslib/bgzf.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <string>

#include "genomics/composition.h"
#include "genomics/errors.h"
#include "genomics/fasta.h"
#include "tests/test_support.h"

namespace gm {
namespace {

namespace fs = std::filesystem;
using test::data_path;

const std::string kSetA = "setA/grch38.chr20_and_21_10M.fa.gz";
const std::string kSetB = "setB/genome.fasta";

// Whole-file FASTA parse through BGZF (which also reads plain files): independent of faidx.
std::map<std::string, std::string> parse_fasta(const std::string& path) {
  BGZF* fp = bgzf_open(path.c_str(), "r");
  EXPECT_NE(fp, nullptr);
  std::string text;
  char buf[1 << 16];
  ssize_t n;
  while ((n = bgzf_read(fp, buf, sizeof buf)) > 0) text.append(buf, static_cast<size_t>(n));
  bgzf_close(fp);
  std::map<std::string, std::string> out;
  std::string* cur = nullptr;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string::npos) eol = text.size();
    std::string line = text.substr(pos, eol - pos);
    pos = eol + 1;
    if (line.empty()) continue;
    if (line[0] == '>') {
      cur = &out[line.substr(1, line.find_first_of(" \t") - 1)];
    } else if (cur) {
      *cur += line;
    }
  }
  return out;
}

std::string copy_to(const test::TempDir& dir, const std::string& rel, const std::string& name) {
  const std::string dst = dir / name;
  fs::copy_file(data_path(rel), dst);
  fs::permissions(dst, fs::perms::owner_read | fs::perms::owner_write);
  return dst;
}

void write_file(const std::string& path, const std::string& content) {
  std::ofstream(path, std::ios::binary) << content;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const InputError& e) {
    return e.what();
  }
  return "<no InputError>";
}

TEST(Fasta, ContigsOfTheBundledReferences) {
  FastaReader a(data_path(kSetA));
  EXPECT_TRUE(a.bgzip_compressed());
  ASSERT_EQ(a.contigs().size(), 2u);
  EXPECT_EQ(a.contigs()[0].name, "chr20");
  EXPECT_EQ(a.contigs()[0].length, 10000000);
  EXPECT_EQ(a.contigs()[1].name, "chr21");
  FastaReader b(data_path(kSetB));
  EXPECT_FALSE(b.bgzip_compressed());
  ASSERT_EQ(b.contigs().size(), 1u);
  EXPECT_EQ(b.contigs()[0].length, 40001);
}

TEST(Fasta, RandomAccessMatchesWholeFileParse) {
  for (const std::string& rel : {kSetA, kSetB}) {
    const auto truth = parse_fasta(data_path(rel));
    FastaReader fasta(data_path(rel));
    std::mt19937_64 rng(7);
    for (size_t id = 0; id < fasta.contigs().size(); ++id) {
      const Contig& c = fasta.contigs()[id];
      const std::string& seq = truth.at(c.name);
      ASSERT_EQ(static_cast<int64_t>(seq.size()), c.length);
      for (int k = 0; k < 50; ++k) {
        const int64_t beg = static_cast<int64_t>(rng() % static_cast<uint64_t>(c.length));
        const int64_t end = std::min(c.length, beg + 1 + static_cast<int64_t>(rng() % 70000));
        const auto got = fasta.fetch(static_cast<int>(id), beg, end);
        ASSERT_EQ(got.view(), std::string_view(seq).substr(static_cast<size_t>(beg), static_cast<size_t>(end - beg)))
            << c.name << ":" << beg << "-" << end;
      }
      EXPECT_EQ(fasta.fetch(static_cast<int>(id), c.length - 5, c.length).view(), seq.substr(seq.size() - 5));
    }
  }
}

TEST(Fasta, CompositionMatchesIndependentCountAndKnownNCount) {
  const auto truth = parse_fasta(data_path(kSetA));
  FastaReader fasta(data_path(kSetA));
  for (int id = 0; id < 2; ++id) {
    const Contig& c = fasta.contigs()[static_cast<size_t>(id)];
    int64_t n = 0, gc = 0, soft = 0;
    for (char ch : truth.at(c.name)) {
      const char u = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
      n += u == 'N';
      gc += u == 'G' || u == 'C';
      soft += std::islower(static_cast<unsigned char>(ch)) != 0;
    }
    const ContigComposition comp = scan_contig(fasta, id, 1 << 20);
    EXPECT_EQ(comp.counts.n, n) << c.name;
    EXPECT_EQ(comp.counts.gc, gc) << c.name;
    EXPECT_EQ(comp.counts.soft_masked, soft) << c.name;
    EXPECT_EQ(comp.n_runs.total(), n);
    // N runs answer window queries like a direct count.
    const std::string& seq = truth.at(c.name);
    for (int64_t beg : {int64_t{0}, int64_t{59000}, int64_t{5000000}, int64_t{9990000}}) {
      const int64_t end = std::min<int64_t>(c.length, beg + 32769);
      const int64_t direct = std::count_if(seq.begin() + beg, seq.begin() + end, [](char ch) { return ch == 'N' || ch == 'n'; });
      EXPECT_EQ(comp.n_runs.count(beg, end), direct) << c.name << ":" << beg;
    }
  }
  // samtools faidx chr20:1-10000000 | grep -v '>' | tr -cd Nn | wc -c
  EXPECT_EQ(scan_contig(fasta, 0).counts.n, 60725);
}

TEST(Fasta, Md5MatchesTheCramHeader) {
  FastaReader b(data_path(kSetB));
  // @SQ M5 of chr22 in setB/test.paired_end.sorted.cram and genome.dict.
  EXPECT_EQ(b.md5(0), "1922b52e1af6977302717072ebaca0a1");
}

TEST(Fasta, BuildsMissingIndexAtomically) {
  test::TempDir dir;
  const std::string plain = copy_to(dir, "other/MT-human.fa", "mt.fa");
  const std::string bgz = copy_to(dir, kSetA, "ab.fa.gz");
  FastaReader p(plain);
  EXPECT_TRUE(fs::exists(plain + ".fai"));
  EXPECT_EQ(p.contigs()[0].name, "MT_human");
  EXPECT_EQ(p.contigs()[0].length, 16569);
  FastaReader z(bgz);
  EXPECT_TRUE(fs::exists(bgz + ".fai"));
  EXPECT_TRUE(fs::exists(bgz + ".gzi"));
  EXPECT_EQ(z.contigs().size(), 2u);
  EXPECT_EQ(z.fetch(1, 9000000, 9000100).view(), FastaReader(data_path(kSetA)).fetch(1, 9000000, 9000100).view());
  for (const auto& entry : fs::directory_iterator(dir.path())) {
    EXPECT_EQ(entry.path().string().find(".tmp."), std::string::npos) << "temporary left behind: " << entry.path();
  }
}

TEST(Fasta, MissingIndexInReadOnlyDirectoryIsAClearError) {
  test::TempDir dir;
  const std::string plain = copy_to(dir, "other/MT-human.fa", "mt.fa");
  fs::permissions(plain, fs::perms::owner_read | fs::perms::group_read | fs::perms::others_read);
  fs::permissions(dir.path(), fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                                  fs::perms::others_read | fs::perms::others_exec);
  if (::geteuid() != 0) {
    fs::permissions(dir.path(), fs::perms::owner_read | fs::perms::owner_exec);
    const std::string msg = error_of([&] { FastaReader f(plain); });
    fs::permissions(dir.path(), fs::perms::owner_all);
    EXPECT_NE(msg.find("samtools faidx"), std::string::npos) << msg;
    return;
  }
  // Root may write anywhere, so the check runs in a child that drops to 'nobody',
  // for whom the directory is read-only.
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    if (::setgid(65534) != 0 || ::setuid(65534) != 0) ::_exit(3);
    const std::string msg = error_of([&] { FastaReader f(plain); });
    ::_exit(msg.find("samtools faidx") != std::string::npos && msg.find("not writable") != std::string::npos ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "1: wrong or no error message; 3: could not drop privileges";
  EXPECT_FALSE(fs::exists(plain + ".fai"));
}

TEST(FastaErrors, MissingFile) {
  const std::string msg = error_of([] { FastaReader f("/nonexistent/ref.fa"); });
  EXPECT_NE(msg.find("/nonexistent/ref.fa"), std::string::npos);
  EXPECT_NE(msg.find("No such file"), std::string::npos) << msg;
}

TEST(FastaErrors, PlainGzipSaysToRunBgzip) {
  test::TempDir dir;
  const std::string lambda = copy_to(dir, "other/lambda_virus.fa.gz", "lambda.fa.gz");
  const std::string msg = error_of([&] { FastaReader f(lambda); });
  EXPECT_NE(msg.find("plain gzip"), std::string::npos) << msg;
  EXPECT_NE(msg.find("bgzip"), std::string::npos) << msg;
  EXPECT_FALSE(fs::exists(lambda + ".fai"));
}

TEST(FastaErrors, TruncatedBgzip) {
  test::TempDir dir;
  const std::string whole = copy_to(dir, kSetA, "whole.fa.gz");
  const std::string cut = dir / "cut.fa.gz";
  fs::copy_file(whole, cut);
  fs::resize_file(cut, fs::file_size(whole) / 2);
  const std::string msg = error_of([&] { FastaReader f(cut); });
  EXPECT_NE(msg.find("truncated"), std::string::npos) << msg;
}

TEST(FastaErrors, CorruptBgzipBlockIsAnErrorNotACrash) {
  test::TempDir dir;
  const std::string bad = copy_to(dir, kSetA, "bad.fa.gz");
  fs::copy_file(data_path(kSetA + ".fai"), bad + ".fai");
  fs::copy_file(data_path(kSetA + ".gzi"), bad + ".gzi");
  {
    std::fstream f(bad, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(2000000);
    const std::string junk(4000, '\x5a');
    f.write(junk.data(), static_cast<std::streamsize>(junk.size()));
  }
  FastaReader fasta(bad);
  // The damaged bytes are about 48% into the file, i.e. in chr20 (chr20 comes first).
  EXPECT_THROW(
      {
        for (int64_t beg = 0; beg < 10000000; beg += 1000000) fasta.fetch(0, beg, beg + 1000000);
      },
      InputError);
  // Without the prebuilt index, building one fails cleanly too.
  fs::remove(bad + ".fai");
  fs::remove(bad + ".gzi");
  EXPECT_THROW(FastaReader again(bad), InputError);
}

TEST(FastaErrors, EmptyAndNotFasta) {
  test::TempDir dir;
  write_file(dir / "empty.fa", "");
  write_file(dir / "blank.fa", "\n\n");
  write_file(dir / "text.fa", "ACGT\nACGT\n");
  EXPECT_NE(error_of([&] { FastaReader f(dir / "empty.fa"); }).find("no sequences"), std::string::npos);
  EXPECT_NE(error_of([&] { FastaReader f(dir / "blank.fa"); }).find("no sequences"), std::string::npos);
  EXPECT_NE(error_of([&] { FastaReader f(dir / "text.fa"); }).find("not a FASTA"), std::string::npos);
}

TEST(FastaErrors, NonIupacCharacterNamesContigAndPosition) {
  test::TempDir dir;
  write_file(dir / "bad.fa", ">one\nACGTACGT\n>two\nACGTAC\nGT1AAA\n");
  FastaReader fasta(dir / "bad.fa");
  const ContigComposition ok = scan_contig(fasta, 0);
  EXPECT_EQ(ok.counts.gc, 4);
  const std::string msg = error_of([&] { scan_contig(fasta, 1); });
  EXPECT_NE(msg.find("two:9"), std::string::npos) << msg;
  EXPECT_NE(msg.find("'1'"), std::string::npos) << msg;
}

TEST(FastaErrors, FetchOutsideContig) {
  FastaReader b(data_path(kSetB));
  EXPECT_THROW(b.fetch(0, 39000, 40002), InputError);
  EXPECT_THROW(b.fetch(0, -1, 10), InputError);
}

}  // namespace
}  // namespace gm
