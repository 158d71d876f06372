// Allele classification, strand jobs and window geometry (see score_alleles.h).
#include "pipelines/score_alleles.h"

#include <algorithm>
#include <stdexcept>

#include "genomics/tokenizer.h"

namespace gm {

bool is_sequence_allele(std::string_view allele) {
  if (allele.empty()) return false;
  for (char c : allele) {
    if (token_of_char(c) < 0) return false;
  }
  return true;
}

std::vector<uint8_t> allele_tokens(std::string_view allele) {
  std::vector<uint8_t> out(allele.size());
  for (size_t i = 0; i < allele.size(); ++i) {
    const int t = token_of_char(allele[i]);
    if (t < 0) throw std::invalid_argument("allele '" + std::string(allele) + "' is not a DNA sequence");
    out[i] = static_cast<uint8_t>(t);
  }
  return out;
}

std::vector<uint8_t> reverse_complement_tokens(const std::vector<uint8_t>& tokens) {
  std::vector<uint8_t> out(tokens.rbegin(), tokens.rend());
  for (auto& t : out) t = complement_token(t);
  return out;
}

WindowFlanks window_flanks(int64_t window) {
  if (window < 1) throw std::invalid_argument("the window must be >= 1 base");
  WindowFlanks f;
  f.left = window / 2;
  f.right = window - 1 - f.left;
  return f;
}

namespace {

bool is_acgt(uint8_t t) { return t >= token::kA && t <= token::kT; }

}  // namespace

StrandJob make_strand_job(Strand strand, int64_t pos, const std::vector<uint8_t>& ref,
                          const std::vector<uint8_t>& alt, int64_t contig_length, const JobGeometry& g) {
  const auto m = static_cast<int64_t>(ref.size());
  if (pos < 0 || m < 1 || pos + m > contig_length) throw std::invalid_argument("allele outside its contig");
  StrandJob job;
  job.strand = strand;
  WindowFlanks nominal = window_flanks(g.window);
  if (strand == Strand::Forward) {
    job.pos = pos;
    job.ref = ref;
    job.alt = alt;
  } else {
    job.pos = contig_length - pos - m;
    job.ref = reverse_complement_tokens(ref);
    job.alt = reverse_complement_tokens(alt);
    std::swap(nominal.left, nominal.right);
  }
  job.context_start = g.context > 0 ? std::max<int64_t>(0, job.pos - g.context) : 0;
  job.llr = g.llr && ref.size() == 1 && alt.size() == 1 && is_acgt(ref[0]) && is_acgt(alt[0]) && job.pos > 0;
  job.dll = g.dll;
  job.emb = g.emb;
  // The left flank cannot reach before what the model sees; the right flank stops at the contig end.
  job.left = std::min(nominal.left, job.pos - job.context_start);
  job.right = std::min(nominal.right, contig_length - job.ref_end());

  const bool short_context = g.context > 0 ? job.pos < g.context : job.pos == 0;
  const bool scores_here = (g.llr && ref.size() == 1 && alt.size() == 1) || g.dll || g.emb;
  job.edge = scores_here && short_context;
  if ((g.dll || g.emb) && job.right < nominal.right) job.edge = true;
  if (g.emb && job.pos < nominal.left) job.edge = true;
  return job;
}

}  // namespace gm
