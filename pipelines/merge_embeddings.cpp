// merge_embedding_shards: joins the HDF5 files of a sharded `genomamba embed` job into
// one file, in shard order (= region order), after checking that they are exactly the
// N shards of one job (same command without --shard, same checkpoint, same layout).
// Values are copied as stored (no float16 round trip), block by block.
#include <algorithm>
#include <map>
#include <memory>
#include <stdexcept>

#include "pipelines/atomic_output.h"
#include "pipelines/h5ad_writer.h"
#include "pipelines/merge.h"

namespace gm {

namespace {

constexpr int64_t kCopyBytes = int64_t{64} << 20;

void check_same_job(const EmbeddingFileReader& a, const EmbeddingFileReader& b) {
  const auto& pa = a.provenance();
  const auto& pb = b.provenance();
  auto differ = [&](const std::string& what, const std::string& va, const std::string& vb) {
    throw std::runtime_error("'" + a.path() + "' and '" + b.path() + "' are not shards of one job: " + what +
                             " differs ('" + va + "' vs '" + vb + "')");
  };
  if (pa.shard_count != pb.shard_count)
    differ("the shard count", std::to_string(pa.shard_count), std::to_string(pb.shard_count));
  if (pa.job_command != pb.job_command) differ("the command", pa.job_command, pb.job_command);
  if (pa.checkpoint_sha256 != pb.checkpoint_sha256)
    differ("the checkpoint SHA-256", pa.checkpoint_sha256, pb.checkpoint_sha256);
  const auto& sa = a.spec();
  const auto& sb = b.spec();
  if (sa.layout != sb.layout) differ("the layout", layout_name(sa.layout), layout_name(sb.layout));
  if (sa.dtype != sb.dtype) differ("the dtype", stored_dtype_name(sa.dtype), stored_dtype_name(sb.dtype));
  if (sa.layers != sb.layers || sa.dim != sb.dim) differ("the layers or width", "", "");
}

}  // namespace

void merge_embedding_shards(const std::vector<std::string>& shards, const std::string& output) {
  if (shards.empty()) throw std::invalid_argument("merge: no shard files given");
  std::vector<std::unique_ptr<EmbeddingFileReader>> readers;
  for (const auto& path : shards) readers.push_back(std::make_unique<EmbeddingFileReader>(path));

  const int64_t count = readers[0]->provenance().shard_count;
  std::map<int64_t, const EmbeddingFileReader*> by_index;
  for (const auto& r : readers) {
    check_same_job(*readers[0], *r);
    const int64_t i = r->provenance().shard_index;
    if (i < 0 || i >= count)
      throw std::runtime_error("'" + r->path() + "' records shard " + std::to_string(i) + " of " + std::to_string(count));
    const auto [it, inserted] = by_index.emplace(i, r.get());
    if (!inserted)
      throw std::runtime_error("shard " + std::to_string(i) + "/" + std::to_string(count) + " is given twice ('" +
                               it->second->path() + "' and '" + r->path() + "')");
  }
  if (static_cast<int64_t>(by_index.size()) != count) {
    std::string missing;
    for (int64_t i = 0; i < count; ++i)
      if (!by_index.count(i)) missing += (missing.empty() ? "" : ", ") + std::to_string(i);
    throw std::runtime_error("the job has " + std::to_string(count) + " shards but " + std::to_string(by_index.size()) +
                             " were given; missing shard(s) " + missing);
  }

  const EmbeddingFileReader& head = *by_index.begin()->second;
  EmbeddingFileSpec spec = head.spec();
  spec.regions = 0;
  spec.tokens = 0;
  EmbeddingProvenance prov = head.provenance();
  prov.command = prov.job_command;
  prov.shard_index = 0;
  prov.shard_count = 1;
  prov.all_n_regions = 0;
  prov.reference_md5.clear();
  std::map<std::string, std::string> md5_seen;
  RegionTable obs;
  std::vector<int64_t> offsets(1, 0);
  for (const auto& [i, r] : by_index) {
    spec.regions += r->spec().regions;
    spec.tokens += r->spec().tokens;
    prov.all_n_regions += r->provenance().all_n_regions;
    for (const auto& [contig, md5] : r->provenance().reference_md5) {
      const auto [it, inserted] = md5_seen.emplace(contig, md5);
      if (inserted) prov.reference_md5.emplace_back(contig, md5);
      else if (it->second != md5)
        throw std::runtime_error("'" + r->path() + "' used another sequence for contig '" + contig + "' (MD5 " + md5 +
                                 " vs " + it->second + "): the shards were run against different references");
    }
    obs.append(r->regions());
    if (spec.layout == EmbeddingLayout::PerToken) {
      const auto o = r->offsets();
      for (size_t k = 1; k < o.size(); ++k) offsets.push_back(offsets.back() + (o[k] - o[k - 1]));
    }
  }

  AtomicOutput atomic(output);
  {
    EmbeddingFileWriter writer(atomic.temp_path(), spec);
    int64_t row0 = 0;
    std::vector<char> buffer;
    for (const auto& [i, r] : by_index) {
      const int64_t rows = r->spec().rows();
      const int64_t row_bytes = spec.dim * static_cast<int64_t>(r->stored_size());
      const int64_t step = std::max<int64_t>(1, kCopyBytes / row_bytes);
      for (size_t k = 0; k < spec.layers.size(); ++k) {
        for (int64_t a = 0; a < rows; a += step) {
          const int64_t n = std::min(step, rows - a);
          buffer.resize(static_cast<size_t>(n * row_bytes));
          r->read_stored_rows(k, a, n, buffer.data());
          writer.write_stored_rows(k, row0 + a, n, buffer.data());
        }
      }
      row0 += rows;
    }
    writer.finish(obs, offsets, prov);
  }
  atomic.commit();
}

}  // namespace gm
