// Packing reads into rows with document-start flags.
#include "genomics/read_dataset.h"

#include <algorithm>
#include <sstream>

#include "genomics/cursor_text.h"
#include "genomics/errors.h"
#include "genomics/tokenizer.h"

namespace gm {
namespace {
constexpr const char* kCursorMagic = "gm-packed-reads-v1";
}

PackedReadDataset::PackedReadDataset(const std::string& reads_path, const std::string& reference_path,
                                     PackedReadOptions options)
    : path_(reads_path), options_(std::move(options)) {
  if (options_.rows <= 0) throw InputError("batch rows must be positive");
  if (options_.length <= 0 || options_.length > int64_t{1} << 30) throw InputError("row length must be in 1..2^30");
  if (!reference_path.empty()) reference_ = std::make_unique<FastaReader>(reference_path);
  reader_ = std::make_unique<ReadReader>(reads_path, reference_.get(), options_.filter, options_.threads);
  if (!options_.regions.empty()) {
    if (!reference_) {
      // Without a reference, regions are resolved against the file's own header.
      ContigIndex header(reader_->header_contigs());
      header.set_label(reads_path);
      regions_ = parse_regions(options_.regions, header);
    } else {
      regions_ = parse_regions(options_.regions, reference_->contigs());
    }
  }
  start_region(0);
}

PackedReadDataset::~PackedReadDataset() = default;

void PackedReadDataset::start_region(size_t region) {
  region_ = region;
  taken_in_region_ = 0;
  if (regions_.empty()) {
    if (epoch_ > 0 || region > 0) reader_->set_whole_file();
  } else {
    reader_->set_region(regions_[region]);
  }
}

bool PackedReadDataset::take_read() {
  bool any_in_epoch = epoch_ > 0 || region_ > 0 || taken_in_region_ > 0;
  for (;;) {
    if (reader_->next(read_)) {
      ++taken_in_region_;
      read_offset_ = 0;
      have_read_ = true;
      return true;
    }
    const size_t n_regions = std::max<size_t>(1, regions_.size());
    if (region_ + 1 < n_regions) {
      start_region(region_ + 1);
      continue;
    }
    if (!options_.repeat) return false;
    if (!any_in_epoch) {
      throw InputError(path_ + ": no read passes the filter" +
                       (regions_.empty() ? std::string() : std::string(" in the given regions")));
    }
    any_in_epoch = false;
    ++epoch_;
    start_region(0);
  }
}

bool PackedReadDataset::next(Batch& batch) {
  const int length = static_cast<int>(options_.length);
  batch.reset(options_.rows, length);
  int r = 0;
  for (; r < options_.rows && !exhausted_; ++r) {
    uint8_t* tokens = batch.row_tokens(r);
    uint8_t* flags = batch.row_flags(r);
    int pos = 0;
    while (pos < length) {
      if (!have_read_ || read_offset_ >= static_cast<int64_t>(read_.seq.size())) {
        have_read_ = false;
        if (!take_read()) {
          exhausted_ = true;
          break;
        }
      }
      const int64_t take = std::min<int64_t>(length - pos, static_cast<int64_t>(read_.seq.size()) - read_offset_);
      tokenize(std::string_view(read_.seq).substr(static_cast<size_t>(read_offset_), static_cast<size_t>(take)),
               tokens + pos, flags + pos, "read " + read_.name, read_offset_);
      if (read_offset_ == 0) flags[pos] |= kFlagDocStart;
      pos += static_cast<int>(take);
      read_offset_ += take;
    }
    if (pos == 0) break;  // the stream ended exactly at a row boundary
    flags[0] |= kFlagDocStart;
    RowInfo& info = batch.info[static_cast<size_t>(r)];
    info.contig = "*";
    info.strand = '.';
  }
  batch.truncate_rows(r);
  return r > 0;
}

std::string PackedReadDataset::config_tag() const {
  std::ostringstream os;
  os << "length=" << options_.length << " regions=" << options_.regions.size() << " exclude=" << options_.filter.exclude_flags
     << " mapq=" << options_.filter.min_mapq << " unmapped=" << (options_.filter.keep_unmapped ? 1 : 0);
  return os.str();
}

std::string PackedReadDataset::save_cursor() const {
  const bool pending = have_read_ && read_offset_ < static_cast<int64_t>(read_.seq.size());
  return format_cursor(kCursorMagic, config_tag(),
                       {{"epoch", epoch_},
                        {"region", region_},
                        {"taken", taken_in_region_},
                        {"offset", pending ? static_cast<uint64_t>(read_offset_) : 0},
                        {"pending", pending ? 1u : 0u},
                        {"exhausted", exhausted_ ? 1u : 0u}});
}

void PackedReadDataset::restore_cursor(const std::string& cursor) {
  auto state = parse_cursor(cursor, kCursorMagic, config_tag(), {"epoch", "region", "taken", "offset", "pending"});
  const size_t region = state["region"];
  if (region >= std::max<size_t>(1, regions_.size())) throw InputError("data cursor region is out of range");
  epoch_ = state["epoch"];
  exhausted_ = state["exhausted"] != 0;
  have_read_ = false;
  // Reopen so that iteration starts from the region's first read, then replay.
  reader_->set_whole_file();
  if (!regions_.empty()) reader_->set_region(regions_[region]);
  region_ = region;
  taken_in_region_ = 0;
  const uint64_t taken = state["taken"];
  for (uint64_t i = 0; i < taken; ++i) {
    if (!reader_->next(read_)) throw InputError(path_ + ": the data cursor points past the end of the reads");
    ++taken_in_region_;
  }
  if (state["pending"] != 0) {
    if (taken == 0 || state["offset"] >= read_.seq.size()) throw InputError("malformed data cursor (read offset)");
    have_read_ = true;
    read_offset_ = static_cast<int64_t>(state["offset"]);
  }
}

}  // namespace gm
