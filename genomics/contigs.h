// ContigIndex: the contig names and lengths of a reference (from the FASTA index),
// and the one place where contig names from other files (BED, regions, BAM/CRAM and
// VCF headers) are looked up. Names match exactly; an unknown name is an InputError,
// with a hint when the only difference is the naming style ("chr21" vs "21",
// "chrM" vs "MT"), so that a mismatch is never a silent skip.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace gm {

struct Contig {
  std::string name;
  int64_t length = 0;
};

class ContigIndex {
 public:
  ContigIndex() = default;
  explicit ContigIndex(std::vector<Contig> contigs);

  const std::vector<Contig>& contigs() const { return contigs_; }
  size_t size() const { return contigs_.size(); }
  bool empty() const { return contigs_.empty(); }
  const Contig& operator[](size_t id) const { return contigs_[id]; }

  // Index of `name`, or nullopt.
  std::optional<int> find(const std::string& name) const;

  // Index of `name`; otherwise throws InputError "<where>: unknown contig 'x' (<reference_label>
  // has ...)" with the naming hint when one applies. `where` is "file:line" or "region 'x'".
  int require(const std::string& name, const std::string& where) const;

  // The name this reference uses for `name` under the other naming style ("21" for
  // "chr21", "chrM" for "MT", ...), when that name exists here; else empty.
  std::string naming_variant(const std::string& name) const;

  // Label used in messages: the FASTA path.
  void set_label(std::string label) { label_ = std::move(label); }
  const std::string& label() const { return label_; }

 private:
  std::vector<Contig> contigs_;
  std::unordered_map<std::string, int> by_name_;
  std::string label_ = "the reference";
};

// Checks the contigs of a BAM/CRAM/VCF header against the reference:
//  - a contig present in both with different lengths is an InputError (another assembly);
//  - a header contig absent from the reference whose other-style name exists there
//    ("21" vs "chr21") is an InputError with the hint;
//  - header contigs absent in both styles (decoys, alts, other chromosomes of a subset
//    reference) are allowed: they fail only when used.
// A header length <= 0 means "unknown" (VCF ##contig without length) and is not checked.
void check_header_contigs(const std::vector<Contig>& header, const ContigIndex& reference,
                          const std::string& file);

}  // namespace gm
