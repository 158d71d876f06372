// Contig lookup with naming-style hints, and header-vs-reference checks.
#include "genomics/contigs.h"

#include "genomics/errors.h"
#include "genomics/text.h"

namespace gm {
namespace {

// The other naming style of `name`, without checking that it exists.
std::vector<std::string> other_style_names(const std::string& name) {
  std::vector<std::string> out;
  const bool has_chr = name.size() > 3 && name.compare(0, 3, "chr") == 0;
  if (has_chr) {
    const std::string bare = name.substr(3);
    out.push_back(bare);
    if (bare == "M") out.push_back("MT");
  } else {
    out.push_back("chr" + name);
    if (name == "MT") out.push_back("chrM");
  }
  return out;
}

}  // namespace

ContigIndex::ContigIndex(std::vector<Contig> contigs) : contigs_(std::move(contigs)) {
  for (size_t i = 0; i < contigs_.size(); ++i) by_name_.emplace(contigs_[i].name, static_cast<int>(i));
}

std::optional<int> ContigIndex::find(const std::string& name) const {
  auto it = by_name_.find(name);
  if (it == by_name_.end()) return std::nullopt;
  return it->second;
}

std::string ContigIndex::naming_variant(const std::string& name) const {
  for (const auto& alt : other_style_names(name)) {
    if (by_name_.count(alt)) return alt;
  }
  return {};
}

int ContigIndex::require(const std::string& name, const std::string& where) const {
  if (auto id = find(name)) return *id;
  std::string msg = where + ": unknown contig '" + name + "'";
  const std::string variant = naming_variant(name);
  if (!variant.empty()) {
    msg += ": the FASTA names it '" + variant + "' (" + label_ +
           "); the files use different contig naming styles (chr1 vs 1)";
  } else {
    msg += " (not in " + label_ + ", which has " + std::to_string(contigs_.size()) + " contig" +
           (contigs_.size() == 1 ? "" : "s");
    if (!contigs_.empty()) msg += ", e.g. '" + contigs_.front().name + "'";
    msg += ")";
  }
  throw InputError(msg);
}

void check_header_contigs(const std::vector<Contig>& header, const ContigIndex& reference,
                          const std::string& file) {
  for (const auto& c : header) {
    if (auto id = reference.find(c.name)) {
      const int64_t ref_len = reference[*id].length;
      if (c.length > 0 && c.length != ref_len) {
        throw_input_error(file, "contig '" + c.name + "' has length " + with_commas(c.length) + " in the header but " +
                                    with_commas(ref_len) + " in " + reference.label() +
                                    ": the file was made against another assembly");
      }
      continue;
    }
    const std::string variant = reference.naming_variant(c.name);
    if (!variant.empty()) {
      throw_input_error(file, "header contig '" + c.name + "' is not in " + reference.label() +
                                  ": the FASTA names it '" + variant +
                                  "'; the files use different contig naming styles (chr1 vs 1)");
    }
  }
}

}  // namespace gm
