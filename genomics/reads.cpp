// BAM/CRAM reading through htslib (sam.h). SEQ is decoded straight from the 4-bit
// encoding; reverse-strand reads are complemented on the 4-bit codes (complement of
// an IUPAC code = its 4 bits reversed) and reversed.
#include "genomics/reads.h"

#include <htslib/hts.h>
#include <htslib/sam.h>

#include <algorithm>

#include "genomics/errors.h"
#include "genomics/fasta.h"
#include "genomics/hts_files.h"
#include "genomics/text.h"

namespace gm {

struct ReadReader::Handle {
  htsFile* fp = nullptr;
  sam_hdr_t* hdr = nullptr;
  hts_idx_t* idx = nullptr;
  hts_itr_t* itr = nullptr;
  bam1_t* rec = nullptr;
  int64_t record_no = 0;  // for messages
  ~Handle() {
    if (rec) bam_destroy1(rec);
    if (itr) hts_itr_destroy(itr);
    if (idx) hts_idx_destroy(idx);
    if (hdr) sam_hdr_destroy(hdr);
    if (fp) hts_close(fp);
  }
};

void ReadStats::add(const ReadStats& o) {
  records += o.records;
  kept += o.kept;
  dropped_flags += o.dropped_flags;
  dropped_unmapped += o.dropped_unmapped;
  dropped_mapq += o.dropped_mapq;
  no_seq += o.no_seq;
  kept_bases += o.kept_bases;
}

ReadReader::ReadReader(const std::string& path, const FastaReader* reference, ReadFilter filter, int threads)
    : path_(path), filter_(filter), threads_(std::max(1, threads)) {
  require_readable_file(path, "BAM/CRAM file");
  if (reference) reference_path_ = reference->path();
  forbid_network_references();
  open();
  if (is_cram_) header_contigs_ = header_as_written();
  if (is_cram_ && !reference) {
    throw_input_error(path_, "is a CRAM file, which decodes only with its reference FASTA: give the reference "
                             "(--reference); genomamba never downloads references");
  }
  if (reference) check_header_contigs(header_contigs_, reference->contigs(), path_);
}

ReadReader::~ReadReader() = default;

void ReadReader::open() {
  h_ = std::make_unique<Handle>();
  forbid_network_references();
  h_->fp = hts_open(path_.c_str(), "r");
  if (!h_->fp) throw_input_error(path_, "cannot open BAM/CRAM file (unreadable or not a SAM/BAM/CRAM file)");
  const htsFormat* fmt = hts_get_format(h_->fp);
  if (fmt->category != sequence_data || (fmt->format != bam && fmt->format != cram && fmt->format != sam)) {
    throw_input_error(path_, std::string("is not a BAM/CRAM file (detected: ") + hts_format_description(fmt) + ")");
  }
  is_cram_ = fmt->format == cram;
  if (hts_check_EOF(h_->fp) == 0) {
    throw_input_error(path_, "file is truncated (no end-of-file marker)");
  }
  if (is_cram_ && !reference_path_.empty() && hts_set_fai_filename(h_->fp, reference_path_.c_str()) != 0) {
    throw_input_error(path_, "cannot use reference " + reference_path_ + " to decode the CRAM");
  }
  if (threads_ > 1) hts_set_threads(h_->fp, threads_);
  h_->hdr = sam_hdr_read(h_->fp);
  if (!h_->hdr) throw_input_error(path_, "cannot read the header (truncated or corrupt file)");
  h_->rec = bam_init1();
  if (!h_->rec) throw std::bad_alloc();
  if (header_contigs_.empty()) {
    for (int i = 0; i < sam_hdr_nref(h_->hdr); ++i) {
      header_contigs_.push_back(Contig{sam_hdr_tid2name(h_->hdr, i), static_cast<int64_t>(sam_hdr_tid2len(h_->hdr, i))});
    }
  }
}

std::vector<Contig> ReadReader::header_as_written() const {
  // htslib rewrites a CRAM header's @SQ lengths to those of the reference it is given,
  // which would hide another assembly; so the lengths are taken from a reference-less open.
  std::unique_ptr<htsFile, int (*)(htsFile*)> fp(hts_open(path_.c_str(), "r"), hts_close);
  if (!fp) throw_input_error(path_, "cannot open BAM/CRAM file");
  std::unique_ptr<sam_hdr_t, void (*)(sam_hdr_t*)> hdr(sam_hdr_read(fp.get()), sam_hdr_destroy);
  if (!hdr) throw_input_error(path_, "cannot read the header (truncated or corrupt file)");
  std::vector<Contig> out;
  for (int i = 0; i < sam_hdr_nref(hdr.get()); ++i) {
    out.push_back(Contig{sam_hdr_tid2name(hdr.get(), i), static_cast<int64_t>(sam_hdr_tid2len(hdr.get(), i))});
  }
  return out;
}

const std::string& ReadReader::header_contig_name(int tid) const {
  static const std::string kUnplaced = "*";
  if (tid < 0 || tid >= static_cast<int>(header_contigs_.size())) return kUnplaced;
  return header_contigs_[static_cast<size_t>(tid)].name;
}

void ReadReader::set_region(const Region& region) {
  if (!h_->idx) {
    h_->idx = sam_index_load(h_->fp, path_.c_str());
    if (!h_->idx) {
      throw_input_error(path_, std::string("has no index (") + (is_cram_ ? ".crai" : ".bai/.csi") +
                                   "), which reading a region needs: run 'samtools index " + path_ + "'");
    }
  }
  const int tid = sam_hdr_name2tid(h_->hdr, region.contig.c_str());
  if (tid < 0) {
    throw_input_error(path_, "contig '" + region.contig + "' of region " + region.to_string() +
                                 " is not in the header");
  }
  if (h_->itr) hts_itr_destroy(h_->itr);
  h_->itr = sam_itr_queryi(h_->idx, tid, region.beg, region.end);
  if (!h_->itr) throw_input_error(path_, "cannot query region " + region.to_string());
}

void ReadReader::set_whole_file() {
  // Reopening is the portable way back to the first record for BAM and CRAM alike
  // (a CRAM index is tied to its open file, so it is reloaded when next needed).
  open();
}

namespace {

constexpr char kNt16Letter[17] = "NACMGRSVTWYHKDBN";  // '=' (code 0) becomes N
constexpr uint8_t kNt16Complement[16] = {0, 8, 4, 12, 2, 10, 6, 14, 1, 9, 5, 13, 3, 11, 7, 15};

void decode_seq(const bam1_t* b, bool reverse, std::string& out) {
  const int n = b->core.l_qseq;
  const uint8_t* s = bam_get_seq(b);
  out.resize(static_cast<size_t>(n));
  if (!reverse) {
    for (int i = 0; i < n; ++i) out[static_cast<size_t>(i)] = kNt16Letter[bam_seqi(s, i)];
  } else {
    for (int i = 0; i < n; ++i) {
      out[static_cast<size_t>(n - 1 - i)] = kNt16Letter[kNt16Complement[bam_seqi(s, i)]];
    }
  }
}

}  // namespace

bool ReadReader::next(Read& read) {
  for (;;) {
    const int ret = h_->itr ? sam_itr_next(h_->fp, h_->itr, h_->rec) : sam_read1(h_->fp, h_->hdr, h_->rec);
    if (ret == -1) return false;
    if (ret < -1) {
      throw_input_error(path_, "cannot read record " + with_commas(h_->record_no + 1) +
                                   (is_cram_ ? ": truncated or corrupt file, or a CRAM that does not match the "
                                               "given reference " + reference_path_
                                             : ": truncated or corrupt file"));
    }
    ++h_->record_no;
    ++stats_.records;
    const bam1_t* b = h_->rec;
    const uint16_t flag = b->core.flag;
    if (flag & filter_.exclude_flags) {
      ++stats_.dropped_flags;
      continue;
    }
    const bool unmapped = flag & BAM_FUNMAP;
    if (unmapped && !filter_.keep_unmapped) {
      ++stats_.dropped_unmapped;
      continue;
    }
    if (!unmapped && b->core.qual < filter_.min_mapq) {
      ++stats_.dropped_mapq;
      continue;
    }
    if (b->core.l_qseq <= 0) {
      ++stats_.no_seq;
      continue;
    }
    read.name = bam_get_qname(b);
    read.tid = b->core.tid;
    read.pos = b->core.pos;
    read.flag = flag;
    read.mapq = b->core.qual;
    read.reverse = flag & BAM_FREVERSE;
    decode_seq(b, read.reverse, read.seq);
    ++stats_.kept;
    stats_.kept_bases += b->core.l_qseq;
    return true;
  }
}

}  // namespace gm
