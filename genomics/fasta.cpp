// FASTA access through htslib faidx, with up-front checks and atomic index building.
#include "genomics/fasta.h"

#include <htslib/bgzf.h>
#include <htslib/faidx.h>
#include <htslib/hts.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <random>

#include "genomics/errors.h"
#include "genomics/hts_files.h"
#include "genomics/text.h"

namespace gm {

struct FastaReader::Handle {
  faidx_t* fai = nullptr;
  ~Handle() {
    if (fai) fai_destroy(fai);
  }
};

namespace {

// Looks at the start of the file through BGZF (which also reads uncompressed files)
// and rejects what faidx cannot index. Returns whether the file is bgzip-compressed.
bool check_fasta_file(const std::string& path) {
  std::unique_ptr<BGZF, int (*)(BGZF*)> fp(bgzf_open(path.c_str(), "r"), bgzf_close);
  if (!fp) throw_input_error(path, "cannot open FASTA file (unreadable or corrupt)");
  const int compression = bgzf_compression(fp.get());
  if (compression == 1) {
    throw_input_error(path,
                      "is compressed with plain gzip, which cannot be indexed for random access; "
                      "recompress it with bgzip: gzip -dc '" + path + "' | bgzip > <name>.fa.gz");
  }
  const bool compressed = compression == 2;
  if (compressed && bgzf_check_EOF(fp.get()) == 0) {
    throw_input_error(path, "bgzip file is truncated (no BGZF end-of-file marker)");
  }
  char head[256];
  const ssize_t got = bgzf_read(fp.get(), head, sizeof head);
  if (got < 0) throw_input_error(path, "cannot read FASTA file: corrupt bgzip data");
  ssize_t i = 0;
  while (i < got && std::isspace(static_cast<unsigned char>(head[i]))) ++i;
  if (i == got) throw_input_error(path, "FASTA file has no sequences (it is empty)");
  if (head[i] != '>') {
    throw_input_error(path, "not a FASTA file: it should start with '>' (found '" + std::string(1, head[i]) + "')");
  }
  return compressed;
}

std::string temp_sibling(const std::string& path) {
  std::random_device rd;
  return path + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(rd());
}

// Builds the .fai (and .gzi) under temporary names and renames them into place; the
// .fai last, since its presence is what readers look for.
void build_index(const std::string& path, const std::string& fai_path, const std::string& gzi_path, bool compressed) {
  if (!directory_writable(fai_path)) {
    throw_input_error(path, "has no index (" + fai_path + ") and its directory is not writable, so one cannot be "
                            "built here: run 'samtools faidx " + path + "' where you can write, or copy the FASTA "
                            "to a writable directory");
  }
  const std::string tmp_fai = temp_sibling(fai_path);
  const std::string tmp_gzi = temp_sibling(gzi_path);
  auto cleanup = [&] {
    std::error_code ec;
    std::filesystem::remove(tmp_fai, ec);
    std::filesystem::remove(tmp_gzi, ec);
  };
  if (fai_build3(path.c_str(), tmp_fai.c_str(), compressed ? tmp_gzi.c_str() : nullptr) != 0) {
    cleanup();
    throw_input_error(path, "cannot build the FASTA index: the file is truncated or corrupt, or not a valid FASTA "
                            "(every line of a sequence but its last must have the same length)");
  }
  std::error_code ec;
  if (compressed) std::filesystem::rename(tmp_gzi, gzi_path, ec);
  if (!ec) std::filesystem::rename(tmp_fai, fai_path, ec);
  if (ec) {
    cleanup();
    throw_input_error(path, "cannot install the FASTA index: " + ec.message());
  }
}

// The .fai gives lengths as 64-bit text, which faidx's int accessors would not.
std::vector<Contig> read_fai(const std::string& fai_path) {
  std::ifstream in(fai_path);
  if (!in) throw_input_error(fai_path, "cannot read FASTA index");
  std::vector<Contig> contigs;
  std::string line;
  int64_t line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.empty()) continue;
    const auto fields = split_fields(line, '\t');
    const auto length = fields.size() >= 5 ? parse_int64(fields[1]) : std::nullopt;
    if (!length || *length < 0) throw_input_error(fai_path, line_no, "corrupt FASTA index line");
    contigs.push_back(Contig{std::string(fields[0]), *length});
  }
  return contigs;
}

}  // namespace

FastaReader::FastaReader(const std::string& path) : path_(path), handle_(std::make_unique<Handle>()) {
  require_readable_file(path, "FASTA file");
  compressed_ = check_fasta_file(path);
  const std::string fai_path = path + ".fai";
  const std::string gzi_path = path + ".gzi";
  namespace fs = std::filesystem;
  if (!fs::exists(fai_path) || (compressed_ && !fs::exists(gzi_path))) {
    build_index(path, fai_path, gzi_path, compressed_);
  }
  handle_->fai = fai_load3(path.c_str(), fai_path.c_str(), compressed_ ? gzi_path.c_str() : nullptr, 0);
  if (!handle_->fai) throw_input_error(path, "cannot load the FASTA index " + fai_path + " (corrupt index?)");
  // Consecutive windows usually share BGZF blocks; a small cache avoids inflating them twice.
  fai_set_cache_size(handle_->fai, 4 << 20);
  contigs_ = ContigIndex(read_fai(fai_path));
  contigs_.set_label(path);
  if (contigs_.empty()) throw_input_error(path, "FASTA file has no sequences");
  if (static_cast<int>(contigs_.size()) != faidx_nseq(handle_->fai)) {
    throw_input_error(fai_path, "FASTA index does not match what htslib loaded (corrupt index?)");
  }
}

FastaReader::~FastaReader() = default;
FastaReader::FastaReader(FastaReader&&) noexcept = default;
FastaReader& FastaReader::operator=(FastaReader&&) noexcept = default;

FetchedSequence FastaReader::fetch(int contig_id, int64_t beg, int64_t end) const {
  const Contig& c = contigs_[static_cast<size_t>(contig_id)];
  if (beg < 0 || beg > end || end > c.length) {
    throw_input_error(path_, "region " + c.name + ":" + std::to_string(beg + 1) + "-" + std::to_string(end) +
                                 " is outside " + c.name + " (length " + with_commas(c.length) + ")");
  }
  if (beg == end) return FetchedSequence(static_cast<char*>(std::calloc(1, 1)), 0);
  hts_pos_t len = 0;
  char* seq = faidx_fetch_seq64(handle_->fai, c.name.c_str(), beg, end - 1, &len);
  if (!seq || len != end - beg) {
    std::free(seq);
    throw_input_error(path_, "cannot read " + c.name + ":" + std::to_string(beg + 1) + "-" + std::to_string(end) +
                                 ": the file is truncated or corrupt, or its index is stale (delete " + path_ +
                                 ".fai to rebuild it)");
  }
  return FetchedSequence(seq, len);
}

std::string FastaReader::fetch_string(const Region& region) const {
  return std::string(fetch(region.contig_id, region.beg, region.end).view());
}

std::string FastaReader::md5(int contig_id) const {
  const int64_t length = contigs_[static_cast<size_t>(contig_id)].length;
  constexpr int64_t kChunk = 1 << 20;
  std::unique_ptr<hts_md5_context, void (*)(hts_md5_context*)> ctx(hts_md5_init(), hts_md5_destroy);
  if (!ctx) throw std::bad_alloc();
  std::string upper;
  for (int64_t beg = 0; beg < length; beg += kChunk) {
    const auto seq = fetch(contig_id, beg, std::min(length, beg + kChunk));
    upper.assign(seq.view());
    for (char& ch : upper) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    hts_md5_update(ctx.get(), upper.data(), static_cast<unsigned long>(upper.size()));
  }
  unsigned char digest[16];
  hts_md5_final(digest, ctx.get());
  char hex[33];
  hts_md5_hex(hex, digest);
  return std::string(hex, 32);
}

}  // namespace gm
