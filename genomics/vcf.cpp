// VCF/BCF reading: bcf_read for whole files; region queries through the tabix index
// (bgzip VCF) or the CSI index (BCF).
#include "genomics/vcf.h"

#include <htslib/hts.h>
#include <htslib/kstring.h>
#include <htslib/tbx.h>
#include <htslib/vcf.h>

#include "genomics/errors.h"
#include "genomics/hts_files.h"
#include "genomics/text.h"

namespace gm {

struct VcfReader::Handle {
  htsFile* fp = nullptr;
  bcf_hdr_t* hdr = nullptr;
  bcf1_t* rec = nullptr;
  tbx_t* tbx = nullptr;        // bgzip VCF index
  hts_idx_t* idx = nullptr;    // BCF index
  hts_itr_t* itr = nullptr;    // current region, if any
  bool region_empty = false;   // the region's contig has no records in the index
  kstring_t line = {0, 0, nullptr};
  bool is_bcf = false;
  int64_t record_no = 0;
  ~Handle() {
    free(line.s);
    if (itr) hts_itr_destroy(itr);
    if (tbx) tbx_destroy(tbx);
    if (idx) hts_idx_destroy(idx);
    if (rec) bcf_destroy(rec);
    if (hdr) bcf_hdr_destroy(hdr);
    if (fp) hts_close(fp);
  }
};

VcfReader::VcfReader(const std::string& path) : path_(path) {
  require_readable_file(path, "VCF/BCF file");
  open();
}

VcfReader::~VcfReader() = default;

void VcfReader::open() {
  h_ = std::make_unique<Handle>();
  h_->fp = hts_open(path_.c_str(), "r");
  if (!h_->fp) throw_input_error(path_, "cannot open VCF/BCF file (unreadable or corrupt)");
  const htsFormat* fmt = hts_get_format(h_->fp);
  if (fmt->format != vcf && fmt->format != bcf) {
    throw_input_error(path_, std::string("is not a VCF/BCF file (detected: ") + hts_format_description(fmt) + ")");
  }
  h_->is_bcf = fmt->format == bcf;
  if (hts_check_EOF(h_->fp) == 0) {
    throw_input_error(path_, "file is truncated (no end-of-file marker)");
  }
  h_->hdr = bcf_hdr_read(h_->fp);
  if (!h_->hdr) throw_input_error(path_, "cannot read the VCF header (truncated or malformed)");
  h_->rec = bcf_init();
  if (!h_->rec) throw std::bad_alloc();
  header_contigs_.clear();
  const int n = h_->hdr->n[BCF_DT_CTG];
  for (int i = 0; i < n; ++i) {
    const char* name = bcf_hdr_id2name(h_->hdr, i);
    const auto* val = h_->hdr->id[BCF_DT_CTG][i].val;
    header_contigs_.push_back(Contig{name, val ? static_cast<int64_t>(val->info[0]) : 0});
  }
}

void VcfReader::set_region(const Region& region) {
  if (h_->itr) {
    hts_itr_destroy(h_->itr);
    h_->itr = nullptr;
  }
  h_->region_empty = false;
  if (h_->is_bcf) {
    if (!h_->idx) h_->idx = bcf_index_load(path_.c_str());
    if (!h_->idx) throw_input_error(path_, "has no index (.csi), which reading a region needs: run 'bcftools index " + path_ + "'");
    const int rid = bcf_hdr_name2id(h_->hdr, region.contig.c_str());
    if (rid < 0) {
      h_->region_empty = true;
      return;
    }
    h_->itr = bcf_itr_queryi(h_->idx, rid, region.beg, region.end);
  } else {
    if (!h_->tbx) h_->tbx = tbx_index_load(path_.c_str());
    if (!h_->tbx) {
      throw_input_error(path_, "has no index (.tbi/.csi), which reading a region needs: the VCF must be "
                               "bgzip-compressed and indexed ('bcftools index -t " + path_ + "')");
    }
    const int tid = tbx_name2id(h_->tbx, region.contig.c_str());
    if (tid < 0) {
      h_->region_empty = true;
      return;
    }
    h_->itr = tbx_itr_queryi(h_->tbx, tid, region.beg, region.end);
  }
  if (!h_->itr) throw_input_error(path_, "cannot query region " + region.to_string());
}

void VcfReader::set_whole_file() { open(); }

bool VcfReader::next(VcfRecord& out) {
  if (h_->region_empty) return false;
  int ret;
  if (!h_->itr) {
    ret = bcf_read(h_->fp, h_->hdr, h_->rec);
  } else if (h_->is_bcf) {
    ret = bcf_itr_next(h_->fp, h_->itr, h_->rec);
  } else {
    ret = tbx_itr_next(h_->fp, h_->tbx, h_->itr, &h_->line);
    if (ret >= 0) ret = vcf_parse1(&h_->line, h_->hdr, h_->rec) == 0 ? 0 : -2;
  }
  if (ret == -1) return false;
  ++h_->record_no;
  if (ret < -1 || h_->rec->errcode) {
    throw_input_error(path_, "cannot read record " + with_commas(h_->record_no) + ": malformed or truncated file");
  }
  bcf1_t* r = h_->rec;
  if (bcf_unpack(r, BCF_UN_STR) < 0) {
    throw_input_error(path_, "cannot decode record " + with_commas(h_->record_no));
  }
  out.contig = bcf_hdr_id2name(h_->hdr, r->rid);
  out.pos = r->pos;
  out.id = r->d.id ? r->d.id : ".";
  out.ref = r->n_allele > 0 ? r->d.allele[0] : "";
  out.alts.clear();
  for (int i = 1; i < r->n_allele; ++i) {
    if (std::string_view(r->d.allele[i]) != ".") out.alts.emplace_back(r->d.allele[i]);
  }
  return true;
}

const bcf_hdr_t* VcfReader::header() const { return h_->hdr; }
bcf1_t* VcfReader::raw_record() { return h_->rec; }

}  // namespace gm
