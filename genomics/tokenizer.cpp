// Tokenizer: one 256-entry table, built at compile time. Each entry packs
//   bits 0-3 token id, bit 4 soft-masked (lowercase), bit 5 G/C, bit 6 N (incl. IUPAC),
//   bit 7 invalid character.
// The hot loops OR the entries together and only look for the offending character
// after the loop when the invalid bit turned up, so valid input runs branch-free.
#include "genomics/tokenizer.h"

#include <algorithm>
#include <array>
#include <cstring>

#include "genomics/errors.h"

namespace gm {
namespace {

constexpr uint8_t kEntrySoft = 1u << 4;
constexpr uint8_t kEntryGC = 1u << 5;
constexpr uint8_t kEntryN = 1u << 6;
constexpr uint8_t kEntryInvalid = 1u << 7;

constexpr std::array<uint8_t, 256> make_table() {
  std::array<uint8_t, 256> t{};
  for (auto& e : t) e = kEntryInvalid | token::kUnk;
  auto set = [&t](char upper, uint8_t entry) {
    const auto u = static_cast<unsigned char>(upper);
    t[u] = entry;
    t[u - 'A' + 'a'] = static_cast<uint8_t>(entry | kEntrySoft);
  };
  set('A', token::kA);
  set('C', token::kC | kEntryGC);
  set('G', token::kG | kEntryGC);
  set('T', token::kT);
  for (char c : {'N', 'R', 'Y', 'S', 'W', 'K', 'M', 'B', 'D', 'H', 'V'}) set(c, token::kN | kEntryN);
  return t;
}

constexpr std::array<uint8_t, 256> kTable = make_table();

[[noreturn]] void throw_bad_char(std::string_view seq, const std::string& contig, int64_t first_pos0) {
  for (size_t i = 0; i < seq.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(seq[i]);
    if (kTable[c] & kEntryInvalid) {
      std::string shown = (c >= 0x21 && c < 0x7f) ? std::string("'") + static_cast<char>(c) + "'"
                                                  : "byte " + std::to_string(static_cast<int>(c));
      throw InputError(contig + ":" + std::to_string(first_pos0 + static_cast<int64_t>(i) + 1) +
                       ": invalid sequence character " + shown +
                       " (expected A, C, G, T, N or an IUPAC ambiguity code)");
    }
  }
  throw InputError(contig + ": invalid sequence character");
}

}  // namespace

void tokenize(std::string_view seq, uint8_t* tokens, uint8_t* flags, const std::string& contig,
              int64_t first_pos0) {
  uint8_t seen = 0;
  const size_t n = seq.size();
  const auto* s = reinterpret_cast<const unsigned char*>(seq.data());
  for (size_t i = 0; i < n; ++i) {
    const uint8_t e = kTable[s[i]];
    seen |= e;
    tokens[i] = e & 0x0f;
    flags[i] = (e >> 4) & kFlagSoftMasked;
  }
  if (seen & kEntryInvalid) throw_bad_char(seq, contig, first_pos0);
}

BaseCounts tokenize_counting(std::string_view seq, uint8_t* tokens, uint8_t* flags, const std::string& contig,
                             int64_t first_pos0) {
  tokenize(seq, tokens, flags, contig, first_pos0);
  return count_tokens(tokens, flags, seq.size());
}

namespace {

constexpr uint64_t kOnes = 0x0101010101010101ull;
constexpr uint64_t kLow7 = 0x7f7f7f7f7f7f7f7full;

// Sum of the bytes of w when each is 0 or 1 (a multiply gathers them in the top byte;
// portable, unlike a popcount instruction).
inline int sum_of_bits(uint64_t w) { return static_cast<int>((w * kOnes) >> 56); }

// Number of zero bytes in w (exact: no carries cross bytes).
inline int zero_bytes(uint64_t w) {
  const uint64_t y = ~(((w & kLow7) + kLow7) | w | kLow7);
  return sum_of_bits(y >> 7);
}

}  // namespace

int64_t count_n(const uint8_t* tokens, size_t size) {
  int64_t n = 0;
  size_t i = 0;
  for (; i + 8 <= size; i += 8) {
    uint64_t t;
    std::memcpy(&t, tokens + i, 8);
    n += zero_bytes(t ^ (kOnes * token::kN));
  }
  for (; i < size; ++i) n += tokens[i] == token::kN;
  return n;
}

BaseCounts count_tokens(const uint8_t* tokens, const uint8_t* flags, size_t size) {
  // Eight positions at a time in 64-bit words (SWAR): this runs in every build type,
  // where a byte loop would need the auto-vectorizer.
  BaseCounts c;
  size_t i = 0;
  for (; i + 8 <= size; i += 8) {
    uint64_t t, f;
    std::memcpy(&t, tokens + i, 8);
    std::memcpy(&f, flags + i, 8);
    c.n += zero_bytes(t ^ (kOnes * token::kN));
    c.gc += zero_bytes((t & (kOnes * 0xfe)) ^ (kOnes * token::kC));  // C=8, G=9 differ in bit 0 only
    c.soft_masked += sum_of_bits(f & (kOnes * kFlagSoftMasked));
  }
  for (; i < size; ++i) {
    c.n += tokens[i] == token::kN;
    c.gc += tokens[i] == token::kC || tokens[i] == token::kG;
    c.soft_masked += flags[i] & kFlagSoftMasked;
  }
  return c;
}

BaseCounts count_bases(std::string_view seq, const std::string& contig, int64_t first_pos0) {
  uint8_t seen = 0;
  int64_t n_count = 0, gc = 0, soft = 0;
  const auto* s = reinterpret_cast<const unsigned char*>(seq.data());
  for (size_t i = 0; i < seq.size(); ++i) {
    const uint8_t e = kTable[s[i]];
    seen |= e;
    soft += (e >> 4) & 1;
    gc += (e >> 5) & 1;
    n_count += (e >> 6) & 1;
  }
  if (seen & kEntryInvalid) throw_bad_char(seq, contig, first_pos0);
  return BaseCounts{n_count, gc, soft};
}

uint8_t complement_token(uint8_t t) {
  switch (t) {
    case token::kA: return token::kT;
    case token::kT: return token::kA;
    case token::kC: return token::kG;
    case token::kG: return token::kC;
    default: return t;
  }
}

void reverse_complement(uint8_t* tokens, uint8_t* flags, size_t size) {
  static constexpr auto kComplement = [] {
    std::array<uint8_t, 256> c{};
    for (int i = 0; i < 256; ++i) c[i] = static_cast<uint8_t>(i);
    c[token::kA] = token::kT;
    c[token::kT] = token::kA;
    c[token::kC] = token::kG;
    c[token::kG] = token::kC;
    return c;
  }();
  std::reverse(tokens, tokens + size);
  for (size_t i = 0; i < size; ++i) tokens[i] = kComplement[tokens[i]];
  if (flags) std::reverse(flags, flags + size);
}

int token_of_char(char c) {
  const uint8_t e = kTable[static_cast<unsigned char>(c)];
  return (e & kEntryInvalid) ? -1 : (e & 0x0f);
}

std::string tokens_to_string(const uint8_t* tokens, size_t size) {
  static constexpr char kSpelling[17] = "???????ACGTN????";
  std::string s(size, '?');
  for (size_t i = 0; i < size; ++i) s[i] = tokens[i] < 16 ? kSpelling[tokens[i]] : '?';
  return s;
}

}  // namespace gm
