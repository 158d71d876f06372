// Contigs of a VCF against the reference FASTA for `genomamba score`.
//
// - ContigMapping: VCF contig name -> FASTA contig, exactly, or through a rename map
//   (--rename-contigs FILE: "VCF-name FASTA-name" per line, whitespace separated, '#'
//   comments; as bcftools annotate --rename-chrs). Unknown names get the chr1-vs-1 hint.
// - check_vcf_contigs: every ##contig line whose contig the FASTA has must agree in length
//   (and MD5 when the line gives one): another assembly is an error. With
//   allow_partial_reference a FASTA contig SHORTER than the header's is accepted (a subset
//   of the same assembly, e.g. the first 10 Mb of chr20); the REF of every record is still
//   checked, and records past the FASTA's end are flagged, not scored.
// - VCF space: the contigs a region (-r/-R) or shard unit can name, in VCF naming and
//   header order, with the lengths regions are checked against.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "genomics/contigs.h"
#include "genomics/fasta.h"
#include "genomics/region.h"

struct bcf_hdr_t;

namespace gm {

class ContigMapping {
 public:
  // rename_file may be empty (names match exactly).
  ContigMapping(const ContigIndex& fasta, const std::string& rename_file);

  // The FASTA name a VCF name stands for.
  std::string fasta_name(const std::string& vcf_name) const;
  // The VCF name of a FASTA contig (inverse of the map; the FASTA name when unmapped).
  std::string vcf_name(const std::string& fasta_name) const;
  std::optional<int> find(const std::string& vcf_name) const;
  // The naming-style hint for a VCF name the FASTA lacks ("" when none applies).
  std::string naming_hint(const std::string& vcf_name) const;

 private:
  const ContigIndex& fasta_;
  std::unordered_map<std::string, std::string> to_fasta_, to_vcf_;
};

struct HeaderContig {
  std::string name;
  int64_t length = 0;  // 0 = not given
  std::string md5;     // lowercase, "" = not given
};

std::vector<HeaderContig> vcf_header_contigs(const bcf_hdr_t* header);

// Throws InputError naming the VCF, the contig and both lengths (or MD5s) on a mismatch,
// and on a naming-style mismatch (with the hint).
void check_vcf_contigs(const std::vector<HeaderContig>& header, const FastaReader& fasta,
                       const ContigMapping& mapping, bool allow_partial_reference, const std::string& vcf_path);

// Contigs in VCF naming: header contigs in header order, then FASTA contigs the header
// lacks. Length: the header's, else the FASTA's, else kUnknownContigLength.
inline constexpr int64_t kUnknownContigLength = int64_t{1} << 40;
ContigIndex vcf_space(const std::vector<HeaderContig>& header, const FastaReader& fasta,
                      const ContigMapping& mapping);

// -R file: BED when the name ends in .bed or .bed.gz (0-based, half-open), otherwise
// tab-separated CHROM POS or CHROM BEG END, 1-based inclusive (bcftools -R).
std::vector<Region> read_regions_file(const std::string& path, const ContigIndex& space);

// Sorted by contig (space order) and start, overlapping or adjacent regions merged.
std::vector<Region> normalize_regions(std::vector<Region> regions);

// Units of sharded work. A unit is one or more intervals; intervals are sorted and
// disjoint, and unit ids increase along them.
struct UnitInterval {
  Region region;
  int64_t unit = 0;
};
// by_contig: one unit per contig (full context). Otherwise the regions are cut at
// multiples of `block` along each contig, one unit per piece.
std::vector<UnitInterval> shard_units(const std::vector<Region>& normalized, bool by_contig, int64_t block);

}  // namespace gm
