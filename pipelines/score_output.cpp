// Annotated VCF/BCF and TSV outputs of `genomamba score` (see score_output.h).
#include "pipelines/score_output.h"

#include <htslib/hts.h>
#include <htslib/vcf.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <optional>
#include <stdexcept>

#include "pipelines/atomic_output.h"

namespace gm {

namespace {

struct TagDef {
  const char* id;
  bool flag;
  const char* description;
};

constexpr TagDef kLlr{"GM_LLR", false,
                      "genomamba: log p(ALT) - log p(REF) at the variant given its context (natural log; mean of "
                      "the strands asked for); SNVs between A/C/G/T only"};
constexpr TagDef kDll{"GM_DLL", false,
                      "genomamba: summed log-likelihood of the window centred on the variant, ALT window minus REF "
                      "window (same flanks around each allele; mean of the strands asked for)"};
constexpr TagDef kEmb{"GM_EMB", false,
                      "genomamba: cosine distance between the mean residual-stream embeddings of the REF and ALT "
                      "windows (mean of the strands asked for)"};
constexpr TagDef kEdge{"GM_EDGE", true,
                       "genomamba: fewer bases of context or window than asked, at a contig end"};
constexpr TagDef kOutside{"GM_OUTSIDE", true,
                          "genomamba: the record lies outside the reference FASTA's contig (or on a contig it "
                          "lacks); not scored"};
constexpr TagDef kRefMismatch{"GM_REFMISMATCH", true,
                              "genomamba: REF does not match the reference FASTA; not scored"};
constexpr TagDef kAllTags[] = {kLlr, kDll, kEmb, kEdge, kOutside, kRefMismatch};

constexpr const char* kProvenanceKeys[] = {"genomamba_command", "genomamba_model",   "genomamba_reference",
                                           "genomamba_settings", "genomamba_version", "genomamba_shard"};

bool defined(const bcf_hdr_t* h, const char* id) {
  return bcf_hdr_idinfo_exists(h, BCF_HL_INFO, bcf_hdr_id2int(h, BCF_DT_ID, id));
}

void define(bcf_hdr_t* h, const TagDef& t) {
  const int id = bcf_hdr_id2int(h, BCF_DT_ID, t.id);
  if (bcf_hdr_idinfo_exists(h, BCF_HL_INFO, id)) {
    const int type = bcf_hdr_id2type(h, BCF_HL_INFO, id);
    const int number = bcf_hdr_id2length(h, BCF_HL_INFO, id);
    const bool ok = t.flag ? type == BCF_HT_FLAG : (type == BCF_HT_REAL && number == BCF_VL_A);
    if (!ok) {
      throw std::runtime_error(std::string("the input header defines INFO/") + t.id +
                               " with another type or number than genomamba writes; remove it first "
                               "(bcftools annotate -x INFO/" + t.id + ")");
    }
    return;
  }
  const std::string line = std::string("##INFO=<ID=") + t.id + (t.flag ? ",Number=0,Type=Flag" : ",Number=A,Type=Float") +
                           ",Description=\"" + t.description + "\">";
  if (bcf_hdr_append(h, line.c_str()) != 0) throw std::runtime_error(std::string("cannot add INFO/") + t.id + " to the header");
}

void append_line(bcf_hdr_t* h, const std::string& key, const std::string& value) {
  std::string clean = value;
  for (char& c : clean) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  const std::string line = "##" + key + "=" + clean;
  if (bcf_hdr_append(h, line.c_str()) != 0) throw std::runtime_error("cannot add ##" + key + " to the header");
}

std::string format_value(double v) {
  if (!std::isfinite(v)) return ".";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

}  // namespace

std::string hts_write_mode(char type) {
  switch (type) {
    case 'v': return "w";
    case 'z': return "wz";
    case 'u': return "wbu";
    case 'b': return "wb";
    default: throw std::invalid_argument(std::string("output type '") + type + "' is not one of v, z, u, b");
  }
}

void prepare_score_header(bcf_hdr_t* h, const ScoreSelection& scores, const ScoreProvenance& p) {
  if (scores.llr) define(h, kLlr);
  if (scores.dll) define(h, kDll);
  if (scores.emb) define(h, kEmb);
  define(h, kEdge);
  define(h, kOutside);
  define(h, kRefMismatch);
  for (const char* key : kProvenanceKeys) bcf_hdr_remove(h, BCF_HL_GEN, key);
  append_line(h, "genomamba_version", GENOMAMBA_VERSION);
  append_line(h, "genomamba_command", p.command_line);
  if (!p.model_sha256.empty()) append_line(h, "genomamba_model", p.model_sha256);
  append_line(h, "genomamba_reference", p.reference);
  append_line(h, "genomamba_settings", p.settings);
  if (!p.shard.empty()) append_line(h, "genomamba_shard", p.shard);
  if (bcf_hdr_sync(h) != 0) throw std::runtime_error("cannot update the VCF header");
}

void set_score_model_line(bcf_hdr_t* h, const std::string& model_sha256) {
  bcf_hdr_remove(h, BCF_HL_GEN, "genomamba_model");
  append_line(h, "genomamba_model", model_sha256);
  if (bcf_hdr_sync(h) != 0) throw std::runtime_error("cannot update the VCF header");
}

// ---- VCF/BCF ----------------------------------------------------------------------

struct ScoreVcfWriter::Impl {
  std::optional<AtomicOutput> out, index;
  int index_min_shift = 0;  // 0 = .tbi, 14 = .csi
  int threads = 1;
  htsFile* fp = nullptr;
  bcf_hdr_t* hdr = nullptr;
  std::vector<float> values;
  ~Impl() {
    if (fp) hts_close(fp);
  }
};

ScoreVcfWriter::ScoreVcfWriter(const std::string& path, char type, const std::string& index_format, bcf_hdr_t* header,
                               int threads)
    : impl_(std::make_unique<Impl>()) {
  const std::string mode = hts_write_mode(type);
  const bool to_stdout = path == "-";
  if (!index_format.empty()) {
    if (index_format != "csi" && index_format != "tbi") throw std::invalid_argument("index format must be csi or tbi");
    if (to_stdout) throw std::invalid_argument("-W/--write-index needs an output file (-o), not stdout");
    if (type != 'z' && type != 'b') throw std::invalid_argument("-W/--write-index needs compressed output: -O z or -O b");
    if (type == 'b' && index_format == "tbi") throw std::invalid_argument("a BCF is indexed as .csi, not .tbi");
  }
  std::string target = path;
  if (!to_stdout) {
    impl_->out.emplace(path);
    target = impl_->out->temp_path();
  }
  impl_->fp = hts_open(target.c_str(), mode.c_str());
  if (!impl_->fp) throw std::runtime_error("cannot open '" + path + "' for writing");
  if (threads > 1 && (type == 'z' || type == 'b')) hts_set_threads(impl_->fp, threads);
  impl_->hdr = header;
  if (bcf_hdr_write(impl_->fp, header) != 0) throw std::runtime_error("cannot write the header of '" + path + "'");
  if (!index_format.empty()) {
    // Built from the finished file: htslib 1.16's on-the-fly index is wrong with threaded BGZF.
    impl_->index.emplace(path + "." + index_format);
    impl_->index_min_shift = index_format == "tbi" ? 0 : 14;
    impl_->threads = std::max(1, threads);
  }
}

ScoreVcfWriter::~ScoreVcfWriter() = default;

void ScoreVcfWriter::write(bcf1_t* rec, const ScoreSelection& scores, const RecordResult& r) {
  bcf_hdr_t* h = impl_->hdr;
  for (const TagDef& t : kAllTags) {
    if (!defined(h, t.id)) continue;
    if (t.flag) {
      bcf_update_info_flag(h, rec, t.id, nullptr, 0);
    } else {
      bcf_update_info_float(h, rec, t.id, nullptr, 0);
    }
  }
  const int n_alt = static_cast<int>(r.alleles.size());
  auto put = [&](const TagDef& t, double AlleleScores::*field) {
    auto& v = impl_->values;
    v.assign(static_cast<size_t>(n_alt), 0.f);
    bool any = false;
    for (int i = 0; i < n_alt; ++i) {
      const double x = r.alleles[static_cast<size_t>(i)].*field;
      if (std::isfinite(x)) {
        v[static_cast<size_t>(i)] = static_cast<float>(x);
        any = true;
      } else {
        bcf_float_set_missing(v[static_cast<size_t>(i)]);
      }
    }
    if (any && bcf_update_info_float(h, rec, t.id, v.data(), n_alt) < 0) {
      throw std::runtime_error(std::string("cannot set INFO/") + t.id);
    }
  };
  if (n_alt > 0) {
    if (scores.llr) put(kLlr, &AlleleScores::llr);
    if (scores.dll) put(kDll, &AlleleScores::dll);
    if (scores.emb) put(kEmb, &AlleleScores::emb);
  }
  if (r.edge) bcf_update_info_flag(h, rec, kEdge.id, "", 1);
  if (r.outside) bcf_update_info_flag(h, rec, kOutside.id, "", 1);
  if (r.ref_mismatch) bcf_update_info_flag(h, rec, kRefMismatch.id, "", 1);
  if (bcf_write(impl_->fp, h, rec) != 0) throw std::runtime_error("cannot write a record (disk full?)");
}

void ScoreVcfWriter::write_unchanged(bcf1_t* rec) {
  if (bcf_write(impl_->fp, impl_->hdr, rec) != 0) throw std::runtime_error("cannot write a record (disk full?)");
}

void ScoreVcfWriter::finish() {
  const int rc = hts_close(impl_->fp);
  impl_->fp = nullptr;
  if (rc != 0) throw std::runtime_error("cannot finish writing the output");
  if (impl_->index) {
    const std::string& data = impl_->out->temp_path();
    const int ret = bcf_index_build3(data.c_str(), impl_->index->temp_path().c_str(), impl_->index_min_shift,
                                     impl_->threads);
    if (ret != 0) {
      throw std::runtime_error("cannot index '" + impl_->out->final_path() + "' (error " + std::to_string(ret) +
                               "; the records must be sorted to be indexed)");
    }
  }
  if (impl_->out) impl_->out->commit();
  if (impl_->index) impl_->index->commit();
}

// ---- TSV --------------------------------------------------------------------------

struct ScoreTsvWriter::Impl {
  std::optional<AtomicOutput> out;
  std::ofstream file;
  ScoreSelection scores;
};

ScoreTsvWriter::ScoreTsvWriter(const std::string& path, const ScoreSelection& scores) : impl_(std::make_unique<Impl>()) {
  if (path == "-") throw std::invalid_argument("--tsv needs a file name");
  impl_->out.emplace(path);
  impl_->file.open(impl_->out->temp_path());
  if (!impl_->file) throw std::runtime_error("cannot open '" + path + "' for writing");
  impl_->scores = scores;
  impl_->file << "#chrom\tpos\tref\talt";
  if (scores.llr) impl_->file << "\tGM_LLR";
  if (scores.dll) impl_->file << "\tGM_DLL";
  if (scores.emb) impl_->file << "\tGM_EMB";
  impl_->file << "\tflags\n";
}

ScoreTsvWriter::~ScoreTsvWriter() = default;

void ScoreTsvWriter::write(const bcf_hdr_t* h, bcf1_t* rec, const RecordResult& r) {
  const char* names[3];
  int n_flags = 0;
  if (r.edge) names[n_flags++] = kEdge.id;
  if (r.outside) names[n_flags++] = kOutside.id;
  if (r.ref_mismatch) names[n_flags++] = kRefMismatch.id;
  const char* chrom = bcf_hdr_id2name(h, rec->rid);
  auto& f = impl_->file;
  for (int a = 1; a < rec->n_allele; ++a) {
    const AlleleScores& s = r.alleles[static_cast<size_t>(a - 1)];
    f << chrom << '\t' << rec->pos + 1 << '\t' << rec->d.allele[0] << '\t' << rec->d.allele[a];
    if (impl_->scores.llr) f << '\t' << format_value(s.llr);
    if (impl_->scores.dll) f << '\t' << format_value(s.dll);
    if (impl_->scores.emb) f << '\t' << format_value(s.emb);
    f << '\t';
    if (n_flags == 0) f << '.';
    for (int i = 0; i < n_flags; ++i) f << (i ? "," : "") << names[i];
    f << '\n';
  }
}

void ScoreTsvWriter::finish() {
  impl_->file.close();
  if (!impl_->file) throw std::runtime_error("cannot finish writing " + impl_->out->final_path());
  impl_->out->commit();
}

}  // namespace gm
