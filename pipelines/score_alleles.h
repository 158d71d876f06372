// Alleles of a VCF record turned into per-strand scoring jobs, and the window geometry
// of GM_DLL / GM_EMB.
//
// Coordinates: 0-based. A contig of length Lc read on the reverse-complement strand has
// strand position q = Lc - 1 - p for forward position p, so an allele at forward [p, p+m)
// sits at strand [Lc - p - m, Lc - p) with its bases reverse-complemented.
//
// Window (W = --window): left flank FL = floor(W/2), right flank FR = W - 1 - FL bases.
//   REF window = FASTA[p - FL, p) + REF + FASTA[p + m, p + m + FR)
//   ALT window = FASTA[p - FL, p) + ALT + FASTA[p + m, p + m + FR)
// For an SNV this is the W bases with the variant at offset floor(W/2); an indel keeps the
// same flanks around its own allele, so both windows end on the same reference base. On
// the reverse strand the flanks swap (its left flank is the forward right flank), so both
// strands cover the same bases. Flanks are clipped at contig ends (GM_EDGE) and, in window
// mode, the strand's left flank to the context length.
//   GM_DLL (per strand) = sum over the allele and the right flank of log p(token | all
//     before it), ALT minus REF; the left flank and context are shared by REF and ALT, so a
//     causal model gives them equal likelihoods and they cancel. N bases do not count; the
//     first base of a strand has no prediction and does not count.
//   GM_EMB (per strand) = 1 - cos(mean over the REF window, mean over the ALT window) of
//     the residual stream at the capture point.
#pragma once

#include <cstdint>
#include <limits>
#include <string_view>
#include <vector>

namespace gm {

enum class Strand : uint8_t { Forward, Reverse };

// A sequence allele is made of A, C, G, T, N or IUPAC codes (any case). Everything else
// (<DEL>, *, breakends such as G]chr2:100], '.', empty) is not scored.
bool is_sequence_allele(std::string_view allele);

// Token ids of a sequence allele (IUPAC codes become N).
std::vector<uint8_t> allele_tokens(std::string_view allele);

// Reverse complement of a token string.
std::vector<uint8_t> reverse_complement_tokens(const std::vector<uint8_t>& tokens);

struct WindowFlanks {
  int64_t left = 0, right = 0;
};
// FL = floor(W/2), FR = W - 1 - FL (W >= 1).
WindowFlanks window_flanks(int64_t window);

inline constexpr double kMissingScore = std::numeric_limits<double>::quiet_NaN();

// One ALT allele on one strand: what the model runs and what it produces.
struct StrandJob {
  Strand strand = Strand::Forward;
  int64_t pos = 0;               // strand position of the allele's first base
  std::vector<uint8_t> ref, alt; // allele tokens in strand orientation
  int64_t left = 0, right = 0;   // window flanks on this strand, clipped
  int64_t context_start = 0;     // first strand position the model may see (0 with full context)
  bool llr = false;              // compute GM_LLR (an SNV between A/C/G/T, not on the strand's first base)
  bool dll = false, emb = false; // compute GM_DLL / GM_EMB
  bool edge = false;             // fewer bases than asked (context or window) on this strand
  // results, NaN when not computed
  double llr_value = kMissingScore;
  double dll_value = kMissingScore;
  double emb_value = kMissingScore;

  int64_t ref_end() const { return pos + static_cast<int64_t>(ref.size()); }
};

// What a job needs, decided once per run.
struct JobGeometry {
  bool llr = false, dll = false, emb = false;
  int64_t context = 0;  // bases of context on the strand's upstream side; 0 = the whole contig
  int64_t window = 8192;
};

// Builds the job of the allele at forward [pos, pos + ref.size()) of a contig of length
// contig_length (the allele must lie inside it) for one strand. ref and alt are
// forward-strand tokens.
StrandJob make_strand_job(Strand strand, int64_t pos, const std::vector<uint8_t>& ref,
                          const std::vector<uint8_t>& alt, int64_t contig_length, const JobGeometry& g);

}  // namespace gm
