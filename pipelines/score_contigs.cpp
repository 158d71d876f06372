// VCF contigs against the FASTA, regions and shard units (see score_contigs.h).
#include "pipelines/score_contigs.h"

#include <htslib/hts.h>
#include <htslib/kstring.h>
#include <htslib/vcf.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <memory>
#include <sstream>

#include "genomics/bed.h"
#include "genomics/errors.h"
#include "genomics/hts_files.h"
#include "genomics/text.h"

namespace gm {

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

ContigMapping::ContigMapping(const ContigIndex& fasta, const std::string& rename_file) : fasta_(fasta) {
  if (rename_file.empty()) return;
  require_readable_file(rename_file, "contig rename map");
  std::ifstream in(rename_file);
  std::string line;
  int64_t line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    const auto hash = line.find('#');
    if (hash != std::string::npos) line.erase(hash);
    std::istringstream fields(line);
    std::string from, to, extra;
    if (!(fields >> from)) continue;  // blank or comment
    if (!(fields >> to) || (fields >> extra)) {
      throw_input_error(rename_file, line_no, "expected two columns: the VCF contig name and the FASTA contig name");
    }
    if (!to_fasta_.emplace(from, to).second) {
      throw_input_error(rename_file, line_no, "contig '" + from + "' is renamed twice");
    }
    if (!to_vcf_.emplace(to, from).second) {
      throw_input_error(rename_file, line_no, "two contigs are renamed to '" + to + "'");
    }
  }
}

std::string ContigMapping::fasta_name(const std::string& vcf_name) const {
  const auto it = to_fasta_.find(vcf_name);
  return it == to_fasta_.end() ? vcf_name : it->second;
}

std::string ContigMapping::vcf_name(const std::string& fasta_name) const {
  const auto it = to_vcf_.find(fasta_name);
  return it == to_vcf_.end() ? fasta_name : it->second;
}

std::optional<int> ContigMapping::find(const std::string& vcf_name) const { return fasta_.find(fasta_name(vcf_name)); }

std::string ContigMapping::naming_hint(const std::string& vcf_name) const {
  const std::string variant = fasta_.naming_variant(fasta_name(vcf_name));
  if (variant.empty()) return "";
  return "the FASTA names it '" + variant + "'; the files use different contig naming styles (chr1 vs 1): " +
         "give --rename-contigs FILE with lines 'VCF-name FASTA-name' (e.g. '" + vcf_name + " " + variant + "')";
}

std::vector<HeaderContig> vcf_header_contigs(const bcf_hdr_t* header) {
  std::vector<HeaderContig> out;
  auto* hdr = const_cast<bcf_hdr_t*>(header);  // htslib's lookups take non-const headers
  const int n = hdr->n[BCF_DT_CTG];
  for (int i = 0; i < n; ++i) {
    HeaderContig c;
    c.name = bcf_hdr_id2name(hdr, i);
    const auto* val = hdr->id[BCF_DT_CTG][i].val;
    c.length = val ? static_cast<int64_t>(val->info[0]) : 0;
    if (bcf_hrec_t* rec = bcf_hdr_get_hrec(hdr, BCF_HL_CTG, "ID", c.name.c_str(), nullptr)) {
      for (int k = 0; k < rec->nkeys; ++k) {
        if (lower(rec->keys[k]) == "md5" && rec->vals[k]) {
          c.md5 = lower(rec->vals[k]);
          if (c.md5.size() >= 2 && c.md5.front() == '"') c.md5 = c.md5.substr(1, c.md5.size() - 2);
        }
      }
    }
    out.push_back(std::move(c));
  }
  return out;
}

void check_vcf_contigs(const std::vector<HeaderContig>& header, const FastaReader& fasta,
                       const ContigMapping& mapping, bool allow_partial_reference, const std::string& vcf_path) {
  const ContigIndex& ref = fasta.contigs();
  for (const auto& c : header) {
    const auto id = mapping.find(c.name);
    if (!id) {
      const std::string hint = mapping.naming_hint(c.name);
      if (!hint.empty()) throw_input_error(vcf_path, "header contig '" + c.name + "' is not in " + fasta.path() + ": " + hint);
      continue;  // decoys, other chromosomes of a subset reference: an error only when a record uses them
    }
    const int64_t fasta_len = ref[static_cast<size_t>(*id)].length;
    const std::string label = "contig '" + c.name + "'" +
                              (ref[static_cast<size_t>(*id)].name != c.name ? " ('" + ref[static_cast<size_t>(*id)].name + "' in the FASTA)" : "");
    if (c.length > 0 && c.length != fasta_len) {
      if (allow_partial_reference && fasta_len < c.length) continue;  // a cut-short copy of the same contig
      std::string msg = label + " is " + with_commas(c.length) + " bp long in the VCF header but " +
                        with_commas(fasta_len) + " bp in " + fasta.path() +
                        ": the VCF was made against another assembly";
      if (fasta_len < c.length) {
        msg += ". If the FASTA holds only part of the same assembly (contigs cut short), rerun with "
               "--allow-partial-reference: the REF of every record is still checked and records past the "
               "FASTA's end are flagged GM_OUTSIDE";
      }
      throw_input_error(vcf_path, msg);
    }
    if (!c.md5.empty() && c.length == fasta_len) {
      const std::string md5 = fasta.md5(*id);
      if (md5 != c.md5) {
        throw_input_error(vcf_path, label + " has MD5 " + c.md5 + " in the VCF header but " + md5 + " in " +
                                        fasta.path() + ": the VCF was made against another assembly");
      }
    }
  }
}

ContigIndex vcf_space(const std::vector<HeaderContig>& header, const FastaReader& fasta, const ContigMapping& mapping) {
  std::vector<Contig> contigs;
  std::vector<bool> fasta_seen(fasta.contigs().size(), false);
  for (const auto& c : header) {
    int64_t length = c.length;
    if (const auto id = mapping.find(c.name)) {
      fasta_seen[static_cast<size_t>(*id)] = true;
      if (length <= 0) length = fasta.contigs()[static_cast<size_t>(*id)].length;
    }
    contigs.push_back(Contig{c.name, length > 0 ? length : kUnknownContigLength});
  }
  for (size_t i = 0; i < fasta.contigs().size(); ++i) {
    if (!fasta_seen[i]) contigs.push_back(Contig{mapping.vcf_name(fasta.contigs()[i].name), fasta.contigs()[i].length});
  }
  ContigIndex space(std::move(contigs));
  space.set_label("the VCF header and the FASTA");
  return space;
}

std::vector<Region> read_regions_file(const std::string& path, const ContigIndex& space) {
  if (ends_with(path, ".bed") || ends_with(path, ".bed.gz") || ends_with(path, ".bed.bgz")) {
    return bed_regions(read_bed(path), space);
  }
  require_readable_file(path, "regions file");
  std::unique_ptr<htsFile, int (*)(htsFile*)> fp(hts_open(path.c_str(), "r"), hts_close);
  if (!fp) throw_input_error(path, "cannot open regions file");
  kstring_t line = {0, 0, nullptr};
  std::vector<Region> out;
  int64_t line_no = 0;
  while (hts_getline(fp.get(), '\n', &line) >= 0) {
    ++line_no;
    std::string_view text(line.s, line.l);
    if (!text.empty() && text.back() == '\r') text.remove_suffix(1);
    if (text.empty() || text.front() == '#') continue;
    const auto fields = split_fields(text, '\t');
    if (fields.size() < 2) {
      free(line.s);
      throw_input_error(path, line_no, "expected CHROM<TAB>POS or CHROM<TAB>BEG<TAB>END (1-based)");
    }
    const auto beg = parse_int64(fields[1]);
    const auto end = fields.size() >= 3 ? parse_int64(fields[2]) : beg;
    if (!beg || !end || *beg < 1 || *end < *beg) {
      free(line.s);
      throw_input_error(path, line_no, "bad positions (1-based, BEG <= END)");
    }
    Region r;
    r.contig = std::string(fields[0]);
    try {
      r.contig_id = space.require(r.contig, path + ":" + std::to_string(line_no));
      r.beg = *beg - 1;
      r.end = *end;
      check_interval(space, r.contig_id, r.beg, r.end, path + ":" + std::to_string(line_no));
    } catch (...) {
      free(line.s);
      throw;
    }
    out.push_back(std::move(r));
  }
  free(line.s);
  return out;
}

std::vector<Region> normalize_regions(std::vector<Region> regions) {
  std::stable_sort(regions.begin(), regions.end(), [](const Region& a, const Region& b) {
    return a.contig_id != b.contig_id ? a.contig_id < b.contig_id : a.beg < b.beg;
  });
  std::vector<Region> out;
  for (auto& r : regions) {
    if (!out.empty() && out.back().contig_id == r.contig_id && r.beg <= out.back().end) {
      out.back().end = std::max(out.back().end, r.end);
    } else {
      out.push_back(std::move(r));
    }
  }
  return out;
}

std::vector<UnitInterval> shard_units(const std::vector<Region>& normalized, bool by_contig, int64_t block) {
  if (block < 1) throw std::invalid_argument("the shard block must be >= 1 base");
  std::vector<UnitInterval> out;
  int64_t unit = -1;
  int last_contig = -1;
  for (const auto& r : normalized) {
    if (by_contig || r.end - r.beg >= kUnknownContigLength / 2) {
      // One unit per contig; a contig of unknown length is not cut either.
      if (!by_contig || r.contig_id != last_contig) ++unit;
      out.push_back(UnitInterval{r, unit});
      last_contig = r.contig_id;
      continue;
    }
    for (int64_t b = r.beg; b < r.end;) {
      const int64_t e = std::min(r.end, (b / block + 1) * block);
      Region piece = r;
      piece.beg = b;
      piece.end = e;
      out.push_back(UnitInterval{piece, ++unit});
      b = e;
    }
    last_contig = r.contig_id;
  }
  return out;
}

}  // namespace gm
