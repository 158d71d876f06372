// VCF/BCF record source over htslib (see vcf_source.h): bcf_read for whole files and
// stdin; region queries through the tabix index (bgzip VCF) or the CSI index (BCF).
#include "genomics/vcf_source.h"

#include <htslib/hts.h>
#include <htslib/kstring.h>
#include <htslib/tbx.h>
#include <htslib/vcf.h>

#include "genomics/errors.h"
#include "genomics/hts_files.h"
#include "genomics/text.h"

namespace gm {

struct VcfSource::Handle {
  htsFile* fp = nullptr;
  bcf_hdr_t* hdr = nullptr;
  bcf1_t* rec = nullptr;
  tbx_t* tbx = nullptr;
  hts_idx_t* idx = nullptr;
  hts_itr_t* itr = nullptr;
  bool index_tried = false;
  bool is_bcf = false;
  kstring_t line = {0, 0, nullptr};
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

VcfSource::VcfSource(const std::string& path) : path_(path), h_(std::make_unique<Handle>()) {
  require_readable_file(path, "VCF/BCF file", /*allow_stdin=*/true);
  h_->fp = hts_open(path.c_str(), "r");
  if (!h_->fp) throw_input_error(path_, "cannot open VCF/BCF input (unreadable or corrupt)");
  const htsFormat* fmt = hts_get_format(h_->fp);
  if (fmt->format != vcf && fmt->format != bcf) {
    throw_input_error(path_, std::string("is not a VCF/BCF file (detected: ") + hts_format_description(fmt) + ")");
  }
  h_->is_bcf = fmt->format == bcf;
  if (!is_stdin() && fmt->compression == bgzf && hts_check_EOF(h_->fp) == 0) {
    throw_input_error(path_, "file is truncated (no BGZF end-of-file marker)");
  }
  h_->hdr = bcf_hdr_read(h_->fp);
  if (!h_->hdr) throw_input_error(path_, "cannot read the VCF header (truncated or malformed)");
  h_->rec = bcf_init();
  if (!h_->rec) throw std::bad_alloc();
}

VcfSource::~VcfSource() = default;

const bcf_hdr_t* VcfSource::header() const { return h_->hdr; }
bcf_hdr_t* VcfSource::mutable_header() { return h_->hdr; }

int64_t VcfSource::indexed_record_count() {
  if (!has_index()) return -1;
  const hts_idx_t* idx = h_->idx ? h_->idx : h_->tbx->idx;
  int n = 0;
  const char** names = h_->idx ? bcf_index_seqnames(h_->idx, h_->hdr, &n) : tbx_seqnames(h_->tbx, &n);
  int64_t total = 0;
  for (int i = 0; i < n; ++i) {
    const int tid = h_->idx ? bcf_hdr_name2id(h_->hdr, names[i]) : tbx_name2id(h_->tbx, names[i]);
    uint64_t mapped = 0, unmapped = 0;
    if (tid >= 0 && hts_idx_get_stat(idx, tid, &mapped, &unmapped) == 0) {
      total += static_cast<int64_t>(mapped);
    } else {
      total = -1;
      break;
    }
  }
  free(names);
  return total;
}

bool VcfSource::has_index() {
  if (is_stdin()) return false;
  if (!h_->index_tried) {
    h_->index_tried = true;
    // Silent: a missing index is normal without regions; select() says what to do.
    if (h_->is_bcf) {
      h_->idx = bcf_index_load3(path_.c_str(), nullptr, HTS_IDX_SILENT_FAIL);
    } else if (hts_get_format(h_->fp)->compression == bgzf) {
      h_->tbx = tbx_index_load3(path_.c_str(), nullptr, HTS_IDX_SILENT_FAIL);
    }
  }
  return h_->idx || h_->tbx;
}

void VcfSource::select(std::vector<Region> intervals, size_t first, size_t last) {
  if (!has_index()) {
    if (is_stdin()) {
      throw InputError("-: reading regions (-r/-R) or shards of an input needs an indexed file, and stdin has "
                       "no index: save the input, bgzip it and run 'bcftools index'");
    }
    const bool bgzipped = hts_get_format(h_->fp)->compression == bgzf;
    throw_input_error(path_, std::string("has no index (.tbi/.csi), which reading regions (-r/-R) needs: ") +
                                 (bgzipped || h_->is_bcf ? "run 'bcftools index " + path_ + "'"
                                                         : "compress it with 'bgzip' and run 'bcftools index -t'"));
  }
  intervals_ = std::move(intervals);
  current_ = first;
  last_ = std::min(last, intervals_.size());
  selected_ = true;
  if (current_ < last_) start_interval(current_);
}

bool VcfSource::start_interval(size_t i) {
  if (h_->itr) {
    hts_itr_destroy(h_->itr);
    h_->itr = nullptr;
  }
  const Region& r = intervals_[i];
  if (h_->is_bcf) {
    const int rid = bcf_hdr_name2id(h_->hdr, r.contig.c_str());
    if (rid < 0) return false;
    h_->itr = bcf_itr_queryi(h_->idx, rid, r.beg, r.end);
  } else {
    const int tid = tbx_name2id(h_->tbx, r.contig.c_str());
    if (tid < 0) return false;
    h_->itr = tbx_itr_queryi(h_->tbx, tid, r.beg, r.end);
  }
  if (!h_->itr) throw_input_error(path_, "cannot query region " + r.to_string());
  return true;
}

bool VcfSource::first_overlap(const bcf1_t* rec, size_t i) const {
  if (i == 0) return true;
  const Region& prev = intervals_[i - 1];
  return prev.contig_id != intervals_[i].contig_id || rec->pos >= prev.end;
}

bcf1_t* VcfSource::next() {
  for (;;) {
    int ret;
    if (!selected_) {
      ret = bcf_read(h_->fp, h_->hdr, h_->rec);
    } else {
      if (current_ >= last_) return nullptr;
      if (!h_->itr) {
        ret = -1;
      } else if (h_->is_bcf) {
        ret = bcf_itr_next(h_->fp, h_->itr, h_->rec);
      } else {
        ret = tbx_itr_next(h_->fp, h_->tbx, h_->itr, &h_->line);
        if (ret >= 0) ret = vcf_parse1(&h_->line, h_->hdr, h_->rec) == 0 ? 0 : -2;
      }
      if (ret == -1) {
        if (++current_ < last_) start_interval(current_);
        continue;
      }
    }
    if (ret == -1) return nullptr;
    ++records_;
    if (ret < -1 || h_->rec->errcode) {
      throw_input_error(path_, "cannot read record " + with_commas(records_) + ": malformed or truncated input");
    }
    if (bcf_unpack(h_->rec, BCF_UN_STR) < 0) {
      throw_input_error(path_, "cannot decode record " + with_commas(records_));
    }
    if (selected_ && !first_overlap(h_->rec, current_)) continue;  // returned with an earlier interval
    return h_->rec;
  }
}

}  // namespace gm
