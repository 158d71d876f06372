// The embed job: validation, sharding, provenance, the engine and the file (see embed.h).
#include "pipelines/embed.h"

#include <chrono>
#include <filesystem>
#include <future>
#include <ostream>
#include <set>
#include <sstream>

#include "genomics/errors.h"
#include "genomics/fasta.h"
#include "genomics/tokenizer.h"
#include "mamba/checkpoint.h"
#include "mamba/sha256.h"
#include "pipelines/atomic_output.h"
#include "pipelines/checkpoint_path.h"

namespace gm {

int64_t default_embed_rows(const Device& device) { return device.is_cuda() ? 64 : 1; }
int64_t default_embed_chunk(const Device& device) { return device.is_cuda() ? 16384 : 65536; }

std::vector<int> parse_layers(const std::string& text, int64_t n_layer) {
  std::vector<int> out;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    if (item == "last") {
      out.push_back(static_cast<int>(n_layer));
      continue;
    }
    size_t used = 0;
    int k = -1;
    try {
      k = std::stoi(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (item.empty() || used != item.size())
      throw std::invalid_argument("--layer: '" + item + "' is not a layer number (expected e.g. 4, 0,4,8 or last)");
    if (k < 0 || k > n_layer)
      throw std::invalid_argument("--layer " + item + " is outside [0, " + std::to_string(n_layer) +
                                  "]: the model has " + std::to_string(n_layer) + " layers (" +
                                  std::to_string(n_layer) + " = the last, before the final norm; 0 = the embedding)");
    out.push_back(k);
  }
  if (out.empty()) throw std::invalid_argument("--layer is empty");
  if (std::set<int>(out.begin(), out.end()).size() != out.size())
    throw std::invalid_argument("--layer '" + text + "' names a layer twice");
  return out;
}

void check_embedding_model(const ModelConfig& config, const std::string& checkpoint) {
  if (config.vocab != token::kVocabSize)
    throw InputError(checkpoint + ": the model has a vocabulary of " + std::to_string(config.vocab) +
                     " ids; genomamba's DNA tokenizer has " + std::to_string(token::kVocabSize) +
                     " (A=7 C=8 G=9 T=10 N=11): this checkpoint was not trained on these tokens");
  if (config.objective != Objective::Causal)
    throw InputError(checkpoint + ": only causal models can be embedded (the model's objective is " +
                     objective_name(config.objective) + ")");
}

namespace {

void check_output_path(const std::string& output) {
  namespace fs = std::filesystem;
  if (output.empty()) throw std::invalid_argument("an output file (-o) is required");
  if (output == "-") throw std::invalid_argument("HDF5 cannot be written to stdout: give a file name with -o");
  if (fs::is_directory(output)) throw std::runtime_error("cannot write '" + output + "': it is a directory");
}

RegionTable region_table(const std::vector<EmbedRegion>& regions, size_t global_first,
                         const std::vector<int64_t>& n_bases) {
  RegionTable t;
  for (size_t i = 0; i < regions.size(); ++i) {
    const EmbedRegion& r = regions[i];
    t.index.push_back(std::to_string(global_first + i));
    t.chrom.push_back(r.contig);
    t.start.push_back(r.beg);
    t.end.push_back(r.end);
    t.name.push_back(r.name);
    t.strand.push_back(std::string(1, r.strand));
    t.n_fraction.push_back(static_cast<double>(n_bases[i]) / static_cast<double>(r.length()));
    t.all_n.push_back(n_bases[i] == r.length() ? 1 : 0);
  }
  return t;
}

}  // namespace

EmbedSummary run_embed(const EmbedJob& job, const EnvLookup& env,
                       const std::function<void(const EmbedProgress&)>& progress, std::ostream& log) {
  const auto t0 = std::chrono::steady_clock::now();
  EmbedSummary summary;
  summary.shard = resolve_shard(job.shard, env);
  check_output_path(job.output);
  if (job.flank < 0) throw std::invalid_argument("--flank must be >= 0");
  if (job.chunk < 0) throw std::invalid_argument("--chunk must be >= 0");
  if (job.batch_size < 0) throw std::invalid_argument("--batch-size must be >= 0");

  const std::string weights = resolve_weights_path(job.model);
  const ModelConfig config = read_checkpoint_config(weights);
  check_embedding_model(config, weights);
  const std::vector<int> layers = parse_layers(job.layers, config.n_layer);

  FastaReader fasta(job.fasta);
  const std::vector<EmbedRegion> all = select_embed_regions(job.regions, fasta.contigs());
  const auto [first, last] = shard_range(summary.shard, all.size());
  const std::vector<EmbedRegion> regions(all.begin() + static_cast<std::ptrdiff_t>(first),
                                         all.begin() + static_cast<std::ptrdiff_t>(last));

  summary.output = shard_output_path(job.output, summary.shard);
  check_output_path(summary.output);
  // Creating a GPU context takes a few tenths of a second (driver, cuBLAS), and hashing the
  // checkpoint a while for a large one: both run beside the rest of the start (and the hash,
  // which only the provenance and a shard's marker need, beside the model).
  auto pending_ctx = Context::create_async(job.device, job.threads, job.precision);
  std::shared_future<std::string> sha = std::async(std::launch::async, [weights] { return sha256_file(weights); });
  const std::string job_command = command_without_shard(job.command_line);
  if (summary.shard.sharded() && shard_already_done(summary.output, DoneMarker{job_command, sha.get()})) {
    summary.skipped = true;
    return summary;
  }
  AtomicOutput atomic(summary.output);

  // The provenance MD5 of every contig used reads all of it (3.1 Gbp for hg38): another
  // thread computes them with its own reader while the model runs.
  std::set<int> used;
  for (const auto& r : regions) used.insert(r.contig_id);
  auto pending_md5 = std::async(std::launch::async, [path = job.fasta, used] {
    const FastaReader reader(path);
    std::vector<std::pair<std::string, std::string>> md5;
    for (int id : used) md5.emplace_back(reader.contigs()[static_cast<size_t>(id)].name, reader.md5(id));
    return md5;
  });

  auto ctx = pending_ctx.get();
  auto model = load_model(*ctx, weights);
  EngineOptions eo;
  eo.layers = layers;
  eo.pool = job.pool;
  eo.strand = job.strand;
  eo.flank = job.flank;
  eo.chunk = job.chunk > 0 ? job.chunk : default_embed_chunk(job.device);
  eo.rows = job.batch_size > 0 ? job.batch_size : default_embed_rows(job.device);
  RegionEmbedder engine(*ctx, *model, fasta, eo);

  EmbeddingFileSpec spec;
  spec.layout = job.pool == Pool::None ? EmbeddingLayout::PerToken : EmbeddingLayout::Pooled;
  spec.dtype = job.dtype;
  spec.layers = layers;
  spec.regions = static_cast<int64_t>(regions.size());
  spec.dim = config.d_model;
  std::vector<int64_t> offsets(1, 0);
  for (const auto& r : regions) {
    offsets.push_back(offsets.back() + r.length());
    summary.model_tokens += engine.model_tokens(r);
  }
  spec.tokens = offsets.back();

  EmbeddingProvenance prov;
  prov.version = GENOMAMBA_VERSION;
  prov.command = job.command_line;
  prov.job_command = job_command;
  prov.checkpoint = weights;
  prov.model_config = config.to_json().dump();
  prov.reference = job.fasta;
  prov.pool = pool_name(job.pool);
  prov.strand = strand_mode_name(job.strand);
  prov.flank = job.flank;
  prov.chunk = eo.chunk;
  prov.shard_index = summary.shard.index;
  prov.shard_count = summary.shard.count;

  std::vector<int64_t> n_bases(regions.size(), 0);
  {
    EmbeddingFileWriter writer(atomic.temp_path(), spec, job.threads);
    engine.run(
        regions,
        [&](const EmbeddedBlock& block) {
          std::copy(block.n_bases.begin(), block.n_bases.end(), n_bases.begin() + static_cast<std::ptrdiff_t>(block.first));
          const int64_t row0 = spec.layout == EmbeddingLayout::Pooled ? static_cast<int64_t>(block.first)
                                                                      : offsets[block.first];
          const int64_t rows = spec.layout == EmbeddingLayout::Pooled ? static_cast<int64_t>(block.count)
                                                                      : block.offsets.back();
          for (size_t k = 0; k < layers.size(); ++k) writer.write_rows(k, row0, rows, block.values[k].data());
        },
        progress);
    const RegionTable obs = region_table(regions, first, n_bases);
    for (uint8_t a : obs.all_n) summary.all_n_regions += a;
    prov.all_n_regions = summary.all_n_regions;
    prov.reference_md5 = pending_md5.get();
    prov.checkpoint_sha256 = sha.get();
    writer.finish(obs, offsets, prov);
  }
  atomic.commit();
  if (summary.shard.sharded()) write_done_marker(summary.output, DoneMarker{job_command, sha.get()});
  summary.regions = static_cast<int64_t>(regions.size());
  summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (summary.all_n_regions > 0)
    log << "warning: " << summary.all_n_regions << " of " << summary.regions
        << " regions are entirely N (embedded anyway, flagged in obs column 'all_n')\n";
  return summary;
}

}  // namespace gm
