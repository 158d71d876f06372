// Tokenizer: ids of DESIGN.md section 2, IUPAC codes, soft-mask bits, invalid
// characters, reverse complement.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "genomics/errors.h"
#include "genomics/tokenizer.h"

namespace gm {
namespace {

struct Tokens {
  std::vector<uint8_t> tokens, flags;
};

Tokens tok(const std::string& s) {
  Tokens t{std::vector<uint8_t>(s.size()), std::vector<uint8_t>(s.size())};
  tokenize(s, t.tokens.data(), t.flags.data(), "ctg", 0);
  return t;
}

TEST(Tokenizer, BasesMapToDesignIds) {
  const Tokens t = tok("ACGTN");
  EXPECT_EQ(t.tokens, (std::vector<uint8_t>{7, 8, 9, 10, 11}));
  EXPECT_EQ(t.flags, (std::vector<uint8_t>{0, 0, 0, 0, 0}));
  EXPECT_EQ(token::kPad, 4);
  EXPECT_EQ(token::kMask, 3);
  EXPECT_EQ(token::kVocabSize, 16);
}

TEST(Tokenizer, LowercaseIsUppercasedWithSoftMaskBit) {
  const Tokens t = tok("acgtnA");
  EXPECT_EQ(t.tokens, (std::vector<uint8_t>{7, 8, 9, 10, 11, 7}));
  EXPECT_EQ(t.flags, (std::vector<uint8_t>{1, 1, 1, 1, 1, 0}));
}

TEST(Tokenizer, EveryIupacAmbiguityCodeBecomesN) {
  for (char c : std::string("RYSWKMBDHVN")) {
    for (char v : {c, static_cast<char>(c - 'A' + 'a')}) {
      const Tokens t = tok(std::string(1, v));
      EXPECT_EQ(t.tokens[0], token::kN) << v;
      EXPECT_EQ(t.flags[0], v >= 'a' ? kFlagSoftMasked : 0) << v;
    }
  }
}

TEST(Tokenizer, EveryOtherByteIsAnErrorNamingContigAndPosition) {
  const std::string valid = "ACGTNRYSWKMBDHVacgtnryswkmbdhv";
  for (int c = 0; c < 256; ++c) {
    const char ch = static_cast<char>(c);
    if (valid.find(ch) != std::string::npos) continue;
    std::string s = "ACGT";
    s.push_back(ch);
    std::vector<uint8_t> t(s.size()), f(s.size());
    try {
      tokenize(s, t.data(), f.data(), "chrX", 99);
      ADD_FAILURE() << "byte " << c << " was accepted";
    } catch (const InputError& e) {
      // Position 99 (0-based) of s[0] -> s[4] is 1-based 104.
      EXPECT_NE(std::string(e.what()).find("chrX:104"), std::string::npos) << e.what();
    }
  }
  // 'U' (RNA), digits, '-' and '*' are typical offenders.
  for (const char* bad : {"ACU", "AC1", "A-C", "A*"}) {
    std::vector<uint8_t> t(8), f(8);
    EXPECT_THROW(tokenize(bad, t.data(), f.data(), "c", 0), InputError) << bad;
  }
}

TEST(Tokenizer, CountsNGcAndSoftMasked) {
  const std::string s = "ACGTNnRgcaT";
  std::vector<uint8_t> t(s.size()), f(s.size());
  const BaseCounts c = tokenize_counting(s, t.data(), f.data(), "c", 0);
  int64_t n = 0, gc = 0, soft = 0;
  for (char ch : s) {
    const char u = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    n += (u == 'N' || u == 'R');
    gc += (u == 'G' || u == 'C');
    soft += (ch >= 'a');
  }
  EXPECT_EQ(c.n, n);
  EXPECT_EQ(c.gc, gc);
  EXPECT_EQ(c.soft_masked, soft);
  const BaseCounts c2 = count_bases(s, "c", 0);
  EXPECT_EQ(c2.n, n);
  EXPECT_EQ(c2.gc, gc);
  EXPECT_EQ(c2.soft_masked, soft);
}

TEST(Tokenizer, WordWiseCountsMatchAByteLoop) {
  std::mt19937 rng(1);
  const std::string alphabet = "ACGTNacgtnRyK";
  for (size_t size : {0u, 1u, 7u, 8u, 9u, 255u, 256u, 1000u, 4099u}) {
    std::string s;
    for (size_t i = 0; i < size; ++i) s.push_back(alphabet[rng() % alphabet.size()]);
    std::vector<uint8_t> t(size), f(size);
    tokenize(s, t.data(), f.data(), "c", 0);
    int64_t n = 0, gc = 0, soft = 0;
    for (size_t i = 0; i < size; ++i) {
      n += t[i] == token::kN;
      gc += t[i] == token::kC || t[i] == token::kG;
      soft += f[i] & 1;
    }
    const BaseCounts c = count_tokens(t.data(), f.data(), size);
    EXPECT_EQ(c.n, n) << size;
    EXPECT_EQ(c.gc, gc) << size;
    EXPECT_EQ(c.soft_masked, soft) << size;
    EXPECT_EQ(count_n(t.data(), size), n) << size;
  }
}

TEST(ReverseComplement, ComplementsReversesAndCarriesFlags) {
  Tokens t = tok("AACGtN");
  t.flags[0] |= kFlagDocStart;
  reverse_complement(t.tokens.data(), t.flags.data(), t.tokens.size());
  EXPECT_EQ(tokens_to_string(t.tokens.data(), t.tokens.size()), "NACGTT");
  EXPECT_EQ(t.flags, (std::vector<uint8_t>{0, 1, 0, 0, 0, kFlagDocStart}));
}

TEST(ReverseComplement, TwiceIsIdentityIncludingSpecialTokens) {
  std::vector<uint8_t> tokens, flags;
  for (int i = 0; i < 1000; ++i) {
    tokens.push_back(static_cast<uint8_t>((i * 7919) % 12));
    flags.push_back(static_cast<uint8_t>((i * 31) % 4));
  }
  const auto t0 = tokens, f0 = flags;
  reverse_complement(tokens.data(), flags.data(), tokens.size());
  EXPECT_NE(tokens, t0);
  reverse_complement(tokens.data(), flags.data(), tokens.size());
  EXPECT_EQ(tokens, t0);
  EXPECT_EQ(flags, f0);
  for (uint8_t special : {token::kCls, token::kPad, token::kMask, token::kN}) {
    EXPECT_EQ(complement_token(special), special);
  }
}

}  // namespace
}  // namespace gm
