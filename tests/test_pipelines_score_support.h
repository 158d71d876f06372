// Helpers of the `genomamba score` tests: a tiny random model saved to a file, base
// options, reading the TSV output back, and an independent oracle that scores one variant
// with fresh forward passes exactly as score_alleles.h defines the scores (it shares no
// code with the pipeline's batching, prefix sharing or streaming).
#pragma once

#include <cmath>
#include <cstdint>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "genomics/fasta.h"
#include "genomics/tokenizer.h"
#include "mamba/batch.h"
#include "mamba/checkpoint.h"
#include "mamba/ops.h"
#include "pipelines/score_options.h"
#include "tests/test_support.h"

namespace gm::test {

inline ModelConfig tiny_score_config(int64_t d_model = 16, int64_t n_layer = 2) {
  ModelConfig c;
  c.d_model = d_model;
  c.n_layer = n_layer;
  c.d_state = 8;
  return c.resolved();
}

// A random model (random weights are enough for the equalities) saved under `path`.
inline std::string save_tiny_model(const std::string& path, int64_t d_model = 16, int64_t n_layer = 2,
                                   uint64_t seed = 11) {
  CpuContext ctx(2);
  MambaModel model(ctx, tiny_score_config(d_model, n_layer));
  model.init_weights(ctx, seed);
  save_weights(ctx, model, path);
  return path;
}

inline ScoreOptions score_options(const std::string& vcf, const std::string& fasta, const std::string& weights,
                                  const std::string& output) {
  ScoreOptions o;
  o.vcf = vcf;
  o.fasta = fasta;
  o.weights = weights;
  o.output = output;
  o.output_type = 'z';
  o.threads = 2;
  o.progress = false;
  o.command_line = "genomamba score (test)";
  return o;
}

struct TsvRow {
  std::string chrom, ref, alt, flags;
  int64_t pos = 0;
  double llr = std::numeric_limits<double>::quiet_NaN();
  double dll = std::numeric_limits<double>::quiet_NaN();
  double emb = std::numeric_limits<double>::quiet_NaN();
  bool has(const std::string& flag) const { return flags.find(flag) != std::string::npos; }
};

inline double parse_score(const std::string& s) {
  return s == "." ? std::numeric_limits<double>::quiet_NaN() : std::stod(s);
}

// Rows of a --tsv file; the columns are taken from its header line.
inline std::vector<TsvRow> read_score_tsv(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::vector<std::string> columns;
  std::vector<TsvRow> rows;
  while (std::getline(in, line)) {
    std::vector<std::string> f;
    std::stringstream ss(line);
    std::string x;
    while (std::getline(ss, x, '\t')) f.push_back(x);
    if (!line.empty() && line[0] == '#') {
      columns = f;
      continue;
    }
    TsvRow r;
    for (size_t i = 0; i < f.size() && i < columns.size(); ++i) {
      const std::string& c = columns[i];
      if (c == "#chrom") r.chrom = f[i];
      else if (c == "pos") r.pos = std::stoll(f[i]);
      else if (c == "ref") r.ref = f[i];
      else if (c == "alt") r.alt = f[i];
      else if (c == "GM_LLR") r.llr = parse_score(f[i]);
      else if (c == "GM_DLL") r.dll = parse_score(f[i]);
      else if (c == "GM_EMB") r.emb = parse_score(f[i]);
      else if (c == "flags") r.flags = f[i];
    }
    rows.push_back(r);
  }
  return rows;
}

// Both missing, or both finite and within tol (absolute) + rel * |b|.
inline bool same_score(double a, double b, double tol, double rel = 0) {
  if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b);
  return std::fabs(a - b) <= tol + rel * std::fabs(b);
}

// Both missing, or the same value exactly.
inline bool same_bits(double a, double b) { return (std::isnan(a) && std::isnan(b)) || a == b; }

// ---- the oracle -------------------------------------------------------------------

struct OracleScores {
  double llr = std::numeric_limits<double>::quiet_NaN();
  double dll = std::numeric_limits<double>::quiet_NaN();
  double emb = std::numeric_limits<double>::quiet_NaN();
};

class ScoreOracle {
 public:
  ScoreOracle(const std::string& weights, const std::string& fasta, const std::string& contig)
      : ctx_(2), model_(load_model(ctx_, weights)) {
    FastaReader reader(fasta);
    const int id = reader.contigs().require(contig, "oracle");
    const auto seq = reader.fetch(id, 0, reader.contigs()[static_cast<size_t>(id)].length);
    forward_.resize(static_cast<size_t>(seq.size()));
    std::vector<uint8_t> flags(forward_.size());
    tokenize(seq.view(), forward_.data(), flags.data(), contig, 0);
    reverse_ = forward_;
    reverse_complement(reverse_.data(), flags.data(), reverse_.size());
  }

  // Scores of one allele (forward coordinates, 0-based pos) as the mean of the strands.
  OracleScores score(int64_t pos, const std::string& ref, const std::string& alt, int64_t context, int64_t window,
                     int layer) {
    const int64_t L = static_cast<int64_t>(forward_.size()), m = static_cast<int64_t>(ref.size());
    const OracleScores f = strand(forward_, pos, tokens(ref), tokens(alt), context, window / 2, window - 1 - window / 2,
                                  layer);
    const OracleScores r = strand(reverse_, L - pos - m, rc(tokens(ref)), rc(tokens(alt)), context,
                                  window - 1 - window / 2, window / 2, layer);
    return OracleScores{mean(f.llr, r.llr), mean(f.dll, r.dll), mean(f.emb, r.emb)};
  }

 private:
  static double mean(double a, double b) {
    if (std::isfinite(a) && std::isfinite(b)) return 0.5 * (a + b);
    return std::isfinite(a) ? a : b;
  }
  static std::vector<uint8_t> tokens(const std::string& s) {
    std::vector<uint8_t> t;
    for (char c : s) t.push_back(static_cast<uint8_t>(token_of_char(c)));
    return t;
  }
  static std::vector<uint8_t> rc(std::vector<uint8_t> t) {
    std::vector<uint8_t> flags(t.size());
    reverse_complement(t.data(), flags.data(), t.size());
    return t;
  }

  // One fresh forward pass: per-position log-softmax (double) and the captured layer.
  void run(const std::vector<uint8_t>& seq, int layer, std::vector<double>& logp, std::vector<float>& cap) {
    const auto n = static_cast<int64_t>(seq.size());
    ForwardRequest req;
    req.tokens = upload_u8(ctx_, seq, {1, n});
    req.capture = {layer};
    ForwardOutput out = model_->forward(ctx_, req);
    const int64_t V = model_->config().vocab;
    const float* l = out.logits.data<float>();
    logp.assign(static_cast<size_t>(n * V), 0);
    for (int64_t i = 0; i < n; ++i) {
      double mx = -1e300, s = 0;
      for (int64_t v = 0; v < V; ++v) mx = std::max(mx, static_cast<double>(l[i * V + v]));
      for (int64_t v = 0; v < V; ++v) s += std::exp(l[i * V + v] - mx);
      for (int64_t v = 0; v < V; ++v) logp[static_cast<size_t>(i * V + v)] = l[i * V + v] - mx - std::log(s);
    }
    const float* c = out.captured[0].data<float>();
    cap.assign(c, c + n * model_->config().d_model);
  }

  OracleScores strand(const std::vector<uint8_t>& S, int64_t p, const std::vector<uint8_t>& ref,
                      const std::vector<uint8_t>& alt, int64_t context, int64_t fl, int64_t fr, int layer) {
    OracleScores o;
    const int64_t L = static_cast<int64_t>(S.size()), m = static_cast<int64_t>(ref.size());
    const int64_t V = model_->config().vocab, d = model_->config().d_model;
    const int64_t c0 = context > 0 ? std::max<int64_t>(0, p - context) : 0;
    const int64_t left = std::min(fl, p - c0), right = std::min(fr, L - p - m);
    auto build = [&](const std::vector<uint8_t>& allele) {
      std::vector<uint8_t> s(S.begin() + c0, S.begin() + p);
      s.insert(s.end(), allele.begin(), allele.end());
      s.insert(s.end(), S.begin() + p + m, S.begin() + p + m + right);
      return s;
    };
    const auto rs = build(ref), as = build(alt);
    std::vector<double> lr, la;
    std::vector<float> cr, ca;
    run(rs, layer, lr, cr);
    run(as, layer, la, ca);
    const int64_t at = p - c0;  // index of the allele in the sequences
    auto ll = [&](const std::vector<uint8_t>& s, const std::vector<double>& lp) {
      double sum = 0;
      for (int64_t i = std::max<int64_t>(at, 1); i < static_cast<int64_t>(s.size()); ++i) {
        if (s[static_cast<size_t>(i)] < 7 || s[static_cast<size_t>(i)] > 10) continue;  // N does not count
        sum += lp[static_cast<size_t>((i - 1) * V + s[static_cast<size_t>(i)])];
      }
      return sum;
    };
    o.dll = ll(as, la) - ll(rs, lr);
    const bool snv = m == 1 && alt.size() == 1 && ref[0] >= 7 && ref[0] <= 10 && alt[0] >= 7 && alt[0] <= 10;
    if (snv && at >= 1) {
      o.llr = lr[static_cast<size_t>((at - 1) * V + alt[0])] - lr[static_cast<size_t>((at - 1) * V + ref[0])];
    }
    auto mean_vec = [&](const std::vector<float>& cap, int64_t n) {
      std::vector<double> v(static_cast<size_t>(d), 0);
      for (int64_t i = at - left; i < n; ++i)
        for (int64_t k = 0; k < d; ++k) v[static_cast<size_t>(k)] += cap[static_cast<size_t>(i * d + k)];
      return v;
    };
    const auto vr = mean_vec(cr, static_cast<int64_t>(rs.size())), va = mean_vec(ca, static_cast<int64_t>(as.size()));
    double ab = 0, aa = 0, bb = 0;
    for (int64_t k = 0; k < d; ++k) {
      ab += vr[static_cast<size_t>(k)] * va[static_cast<size_t>(k)];
      aa += vr[static_cast<size_t>(k)] * vr[static_cast<size_t>(k)];
      bb += va[static_cast<size_t>(k)] * va[static_cast<size_t>(k)];
    }
    o.emb = 1 - ab / std::sqrt(aa * bb);
    return o;
  }

  CpuContext ctx_;
  std::unique_ptr<MambaModel> model_;
  std::vector<uint8_t> forward_, reverse_;
};

}  // namespace gm::test
