// merge_vcf_shards (pipelines/merge.h): joins the shard outputs of a sharded
// `genomamba score` job in shard-index order.
//
// Each shard names itself in its header (##genomamba_shard=i/N). The inputs must be all N
// shards of one job, each once: same N, same model (##genomamba_model), same settings,
// same command apart from --shard, and otherwise identical headers (so record dictionary
// ids agree). The merged header is shard 0's without the shard line and with the command
// without --shard; records are copied unchanged.
#include <htslib/hts.h>
#include <htslib/kstring.h>
#include <htslib/vcf.h>

#include <algorithm>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "genomics/errors.h"
#include "genomics/hts_files.h"
#include "pipelines/merge.h"
#include "pipelines/score_output.h"
#include "pipelines/sharding.h"

namespace gm {

namespace {

struct ShardFile {
  std::string path;
  htsFile* fp = nullptr;
  bcf_hdr_t* hdr = nullptr;
  ShardSpec spec;
  std::string command, model, settings, header_text;
  ~ShardFile() {
    if (hdr) bcf_hdr_destroy(hdr);
    if (fp) hts_close(fp);
  }
};

std::string generic_value(const bcf_hdr_t* h, const char* key) {
  for (int i = 0; i < h->nhrec; ++i) {
    const bcf_hrec_t* r = h->hrec[i];
    if (r->type == BCF_HL_GEN && r->key && r->value && std::string(r->key) == key) return r->value;
  }
  return "";
}

// The header text without the lines that differ between shards.
std::string comparable_header(const bcf_hdr_t* h) {
  bcf_hdr_t* copy = bcf_hdr_dup(h);
  bcf_hdr_remove(copy, BCF_HL_GEN, "genomamba_shard");
  bcf_hdr_remove(copy, BCF_HL_GEN, "genomamba_command");
  kstring_t s = {0, 0, nullptr};
  bcf_hdr_format(copy, 0, &s);
  std::string out(s.s ? s.s : "", s.l);
  free(s.s);
  bcf_hdr_destroy(copy);
  return out;
}

std::unique_ptr<ShardFile> open_shard(const std::string& path) {
  require_readable_file(path, "shard output");
  auto f = std::make_unique<ShardFile>();
  f->path = path;
  f->fp = hts_open(path.c_str(), "r");
  if (!f->fp) throw_input_error(path, "cannot open VCF/BCF shard");
  const htsFormat* fmt = hts_get_format(f->fp);
  if (fmt->format != vcf && fmt->format != bcf) throw_input_error(path, "is not a VCF/BCF file");
  f->hdr = bcf_hdr_read(f->fp);
  if (!f->hdr) throw_input_error(path, "cannot read the VCF header");
  const std::string shard = generic_value(f->hdr, "genomamba_shard");
  if (shard.empty()) throw_input_error(path, "is not a shard of 'genomamba score --shard' (no ##genomamba_shard line)");
  try {
    f->spec = resolve_shard(shard, [](const char*) -> const char* { return nullptr; });
  } catch (const std::exception& e) {
    throw_input_error(path, "bad ##genomamba_shard line '" + shard + "': " + e.what());
  }
  f->command = command_without_shard(generic_value(f->hdr, "genomamba_command"));
  f->model = generic_value(f->hdr, "genomamba_model");
  f->settings = generic_value(f->hdr, "genomamba_settings");
  f->header_text = comparable_header(f->hdr);
  return f;
}

}  // namespace

void merge_vcf_shards(const std::vector<std::string>& shards, const std::string& output, char output_type,
                      bool write_index) {
  if (shards.empty()) throw std::invalid_argument("merge: no shard files given");
  std::vector<std::unique_ptr<ShardFile>> files;
  for (const auto& path : shards) files.push_back(open_shard(path));
  std::sort(files.begin(), files.end(), [](const auto& a, const auto& b) { return a->spec.index < b->spec.index; });

  const ShardFile& first = *files.front();
  const int count = first.spec.count;
  std::vector<std::string> seen(static_cast<size_t>(count));
  for (const auto& f : files) {
    if (f->spec.count != count) {
      throw InputError(f->path + ": shard of " + std::to_string(f->spec.count) + " but " + first.path + " is a shard of " +
                       std::to_string(count) + ": not the same job");
    }
    std::string& slot = seen[static_cast<size_t>(f->spec.index)];
    if (!slot.empty()) {
      throw InputError("shard " + f->spec.to_string() + " is given twice: " + slot + " and " + f->path);
    }
    slot = f->path;
    if (f->model != first.model) {
      throw InputError(f->path + ": scored with model " + f->model + " but " + first.path + " with " + first.model);
    }
    if (f->command != first.command || f->settings != first.settings) {
      throw InputError(f->path + ": made by another command than " + first.path + " ('" + f->command + "' vs '" +
                       first.command + "')");
    }
    if (f->header_text != first.header_text) {
      throw InputError(f->path + ": its header differs from that of " + first.path + " (other input or samples)");
    }
  }
  std::string missing;
  for (int i = 0; i < count; ++i) {
    if (seen[static_cast<size_t>(i)].empty()) missing += (missing.empty() ? "" : ", ") + std::to_string(i);
  }
  if (!missing.empty()) {
    throw InputError("merge: shard(s) " + missing + " of " + std::to_string(count) + " are missing");
  }

  bcf_hdr_t* out_hdr = bcf_hdr_dup(first.hdr);
  std::unique_ptr<bcf_hdr_t, void (*)(bcf_hdr_t*)> hdr_guard(out_hdr, bcf_hdr_destroy);
  bcf_hdr_remove(out_hdr, BCF_HL_GEN, "genomamba_shard");
  bcf_hdr_remove(out_hdr, BCF_HL_GEN, "genomamba_command");
  const std::string command_line = "##genomamba_command=" + first.command;
  if (bcf_hdr_append(out_hdr, command_line.c_str()) != 0 || bcf_hdr_sync(out_hdr) != 0) {
    throw std::runtime_error("merge: cannot build the merged header");
  }

  ScoreVcfWriter writer(output, output_type, write_index ? "csi" : "", out_hdr, 1);
  std::unique_ptr<bcf1_t, void (*)(bcf1_t*)> rec(bcf_init(), bcf_destroy);
  for (const auto& f : files) {
    int64_t n = 0;
    int ret;
    while ((ret = bcf_read(f->fp, f->hdr, rec.get())) == 0) {
      ++n;
      if (rec->errcode) throw_input_error(f->path, "record " + std::to_string(n) + " is malformed");
      writer.write_unchanged(rec.get());
    }
    if (ret < -1) throw_input_error(f->path, "cannot read record " + std::to_string(n + 1) + " (truncated?)");
  }
  writer.finish();
}

}  // namespace gm
