// Character-level DNA tokenizer (DESIGN.md section 2).
//
// Token ids match the HyenaDNA / Caduceus character tokenizers:
//   [CLS]=0 [SEP]=1 [BOS]=2 [MASK]=3 [PAD]=4 [RESERVED]=5 [UNK]=6 A=7 C=8 G=9 T=10 N=11,
// vocabulary padded to 16. Beside every token sits a uint8 flags byte:
//   bit 0 (kFlagSoftMasked)  the base was lowercase in the FASTA (soft-masked repeat),
//   bit 1 (kFlagDocStart)    a document starts here: a model resets its state.
// IUPAC ambiguity codes (R Y S W K M B D H V N, either case) become N; any other
// character is an InputError naming the contig and the 1-based position.
// Tokenization is a single 256-entry table lookup per base: this is the hot path.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace gm {

namespace token {
inline constexpr uint8_t kCls = 0;
inline constexpr uint8_t kSep = 1;
inline constexpr uint8_t kBos = 2;
inline constexpr uint8_t kMask = 3;
inline constexpr uint8_t kPad = 4;
inline constexpr uint8_t kReserved = 5;
inline constexpr uint8_t kUnk = 6;
inline constexpr uint8_t kA = 7;
inline constexpr uint8_t kC = 8;
inline constexpr uint8_t kG = 9;
inline constexpr uint8_t kT = 10;
inline constexpr uint8_t kN = 11;
inline constexpr int kVocabSize = 16;
}  // namespace token

inline constexpr uint8_t kFlagSoftMasked = 1u << 0;
inline constexpr uint8_t kFlagDocStart = 1u << 1;

// Counts gathered while tokenizing (used by inspect and by window rejection).
struct BaseCounts {
  int64_t n = 0;           // N and IUPAC ambiguity codes
  int64_t gc = 0;          // G or C (either case)
  int64_t soft_masked = 0;  // lowercase bases
  void add(const BaseCounts& o) {
    n += o.n;
    gc += o.gc;
    soft_masked += o.soft_masked;
  }
};

// Tokenizes `seq` into tokens[0..size) and flags[0..size) (flags get only the
// soft-mask bit; the caller adds document starts). `contig` and `first_pos0` (the
// 0-based contig position of seq[0]) only serve the error message.
// Throws InputError on a character that is neither a base nor an IUPAC code.
void tokenize(std::string_view seq, uint8_t* tokens, uint8_t* flags, const std::string& contig,
              int64_t first_pos0);

// Same, and also counts N / GC / soft-masked bases of `seq`.
BaseCounts tokenize_counting(std::string_view seq, uint8_t* tokens, uint8_t* flags, const std::string& contig,
                             int64_t first_pos0);

// Counts N / GC / soft-masked positions of an already tokenized row.
BaseCounts count_tokens(const uint8_t* tokens, const uint8_t* flags, size_t size);

// Number of N tokens (the only count the datasets' filters need).
int64_t count_n(const uint8_t* tokens, size_t size);

// Counts without writing tokens; validates characters the same way.
BaseCounts count_bases(std::string_view seq, const std::string& contig, int64_t first_pos0);

// In-place reverse complement of a token row: A<->T, C<->G, N and special tokens
// unchanged, order reversed; the flags are reversed alongside.
void reverse_complement(uint8_t* tokens, uint8_t* flags, size_t size);

// Complement of one token id (identity for N and the special tokens).
uint8_t complement_token(uint8_t token);

// Token of one character, or -1 when the character is invalid. Soft-mask ignored.
int token_of_char(char c);

// "ACGTN..." spelling of tokens (special tokens as '?'); for messages and tests.
std::string tokens_to_string(const uint8_t* tokens, size_t size);

}  // namespace gm
