// VcfReader over VcfSource (vcf_source.h), which does the htslib reading: the header's
// contigs once, then each record decoded into VcfRecord.
#include "genomics/vcf.h"

#include <htslib/vcf.h>

#include <string_view>

#include "genomics/vcf_source.h"

namespace gm {

VcfReader::VcfReader(const std::string& path) : path_(path) { open(); }

VcfReader::~VcfReader() = default;

void VcfReader::open() {
  source_ = std::make_unique<VcfSource>(path_);
  header_contigs_.clear();
  const bcf_hdr_t* hdr = source_->header();
  const int n = hdr->n[BCF_DT_CTG];
  for (int i = 0; i < n; ++i) {
    const char* name = bcf_hdr_id2name(hdr, i);
    const auto* val = hdr->id[BCF_DT_CTG][i].val;
    header_contigs_.push_back(Contig{name, val ? static_cast<int64_t>(val->info[0]) : 0});
  }
}

void VcfReader::set_region(const Region& region) { source_->select({region}, 0, 1); }

void VcfReader::set_whole_file() { open(); }  // a source read through an index cannot go back

bool VcfReader::next(VcfRecord& out) {
  const bcf1_t* r = source_->next();
  if (!r) return false;
  out.contig = bcf_hdr_id2name(source_->header(), r->rid);
  out.pos = r->pos;
  out.id = r->d.id ? r->d.id : ".";
  out.ref = r->n_allele > 0 ? r->d.allele[0] : "";
  out.alts.clear();
  for (int i = 1; i < r->n_allele; ++i) {
    if (std::string_view(r->d.allele[i]) != ".") out.alts.emplace_back(r->d.allele[i]);
  }
  return true;
}

const bcf_hdr_t* VcfReader::header() const { return source_->header(); }

}  // namespace gm
