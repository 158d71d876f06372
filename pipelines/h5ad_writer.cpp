// Embedding files: anndata's encoding for the pooled layout, the per-token layout
// beside it, and the reader merge uses (see h5ad_writer.h).
#include "pipelines/h5ad_writer.h"

#include <set>
#include <stdexcept>
#include <unordered_map>

namespace gm {

namespace {

// anndata's on-disk encoding names and versions (anndata 0.8 writes and reads these).
const char* const kArray = "array";
const char* const kStringArray = "string-array";
const char* const kDict = "dict";
const char* const kLayoutAttr = "genomamba-layout";

void encode(hid_t object, const char* type, const char* version = "0.2.0") {
  h5::set_attr(object, "encoding-type", std::string(type));
  h5::set_attr(object, "encoding-version", std::string(version));
}

std::string layer_key(int layer) { return "layer_" + std::to_string(layer); }

h5::Handle stored_type(StoredDtype t) {
  if (t == StoredDtype::F16) return h5::half_type();
  h5::Handle f(H5Tcopy(H5T_IEEE_F32LE));
  if (!f.valid()) throw std::runtime_error("HDF5: cannot create the float32 type");
  return f;
}

// Categorical column: the categories in order of first appearance, the smallest code type.
void write_categorical(hid_t parent, const std::string& name, const std::vector<std::string>& values) {
  std::vector<std::string> categories;
  std::unordered_map<std::string, int64_t> code_of;
  std::vector<int64_t> codes;
  codes.reserve(values.size());
  for (const auto& v : values) {
    auto [it, inserted] = code_of.emplace(v, static_cast<int64_t>(categories.size()));
    if (inserted) categories.push_back(v);
    codes.push_back(it->second);
  }
  h5::Handle g = h5::create_group(parent, name);
  encode(g, "categorical");
  h5::set_attr(g, "ordered", false);
  encode(h5::write_strings(g, "categories", categories), kStringArray);
  h5::Handle c;
  if (categories.size() <= 127) {
    c = h5::write_array(g, "codes", std::vector<int8_t>(codes.begin(), codes.end()));
  } else if (categories.size() <= 32767) {
    c = h5::write_array(g, "codes", std::vector<int16_t>(codes.begin(), codes.end()));
  } else {
    c = h5::write_array(g, "codes", std::vector<int32_t>(codes.begin(), codes.end()));
  }
  encode(c, kArray);
}

std::vector<std::string> read_categorical(hid_t parent, const std::string& name) {
  h5::Handle g = h5::open_group(parent, name);
  const auto categories = h5::read_strings(g, "categories");
  const auto codes = h5::read_int_array(g, "codes");
  std::vector<std::string> out;
  out.reserve(codes.size());
  for (int64_t c : codes) {
    if (c < 0 || c >= static_cast<int64_t>(categories.size()))
      throw std::runtime_error(h5::describe(g) + ": category code " + std::to_string(c) + " out of range");
    out.push_back(categories[static_cast<size_t>(c)]);
  }
  return out;
}

void write_obs(hid_t file, const RegionTable& t) {
  h5::Handle g = h5::create_group(file, "obs");
  encode(g, "dataframe");
  h5::set_attr(g, "_index", std::string("_index"));
  h5::set_attr(g, "column-order",
               std::vector<std::string>{"chrom", "start", "end", "name", "strand", "n_fraction", "all_n"});
  encode(h5::write_strings(g, "_index", t.index), kStringArray);
  write_categorical(g, "chrom", t.chrom);
  encode(h5::write_array(g, "start", t.start), kArray);
  encode(h5::write_array(g, "end", t.end), kArray);
  encode(h5::write_strings(g, "name", t.name), kStringArray);
  encode(h5::write_strings(g, "strand", t.strand), kStringArray);
  encode(h5::write_array(g, "n_fraction", t.n_fraction), kArray);
  encode(h5::write_bools(g, "all_n", t.all_n), kArray);
}

void write_var(hid_t file, int64_t dim) {
  h5::Handle g = h5::create_group(file, "var");
  encode(g, "dataframe");
  h5::set_attr(g, "_index", std::string("_index"));
  h5::set_attr(g, "column-order", std::vector<std::string>{});
  std::vector<std::string> names;
  names.reserve(static_cast<size_t>(dim));
  for (int64_t i = 0; i < dim; ++i) names.push_back(std::to_string(i));
  encode(h5::write_strings(g, "_index", names), kStringArray);
}

void uns_string(hid_t g, const std::string& key, const std::string& value) {
  encode(h5::write_string(g, key, value), "string");
}
void uns_int(hid_t g, const std::string& key, int64_t value) { encode(h5::write_int64(g, key, value), "numeric-scalar"); }

void write_uns(hid_t file, const EmbeddingFileSpec& spec, const EmbeddingProvenance& p) {
  h5::Handle g = h5::create_group(file, "uns");
  encode(g, kDict, "0.1.0");
  uns_string(g, "genomamba_version", p.version);
  uns_string(g, "command", p.command);
  uns_string(g, "job_command", p.job_command);
  uns_string(g, "checkpoint", p.checkpoint);
  uns_string(g, "checkpoint_sha256", p.checkpoint_sha256);
  uns_string(g, "model_config", p.model_config);
  uns_string(g, "reference", p.reference);
  {
    h5::Handle md5 = h5::create_group(g, "reference_md5");
    encode(md5, kDict, "0.1.0");
    for (const auto& [contig, digest] : p.reference_md5) uns_string(md5, contig, digest);
  }
  uns_string(g, "layout", layout_name(spec.layout));
  uns_string(g, "dtype", stored_dtype_name(spec.dtype));
  encode(h5::write_array(g, "layers", std::vector<int64_t>(spec.layers.begin(), spec.layers.end())), kArray);
  uns_string(g, "pool", p.pool);
  uns_string(g, "strand", p.strand);
  uns_int(g, "flank", p.flank);
  uns_int(g, "chunk", p.chunk);
  uns_int(g, "shard_index", p.shard_index);
  uns_int(g, "shard_count", p.shard_count);
  uns_int(g, "all_n_regions", p.all_n_regions);
}

}  // namespace

const char* stored_dtype_name(StoredDtype t) { return t == StoredDtype::F16 ? "float16" : "float32"; }

StoredDtype parse_stored_dtype(const std::string& text) {
  if (text == "float32" || text == "f32") return StoredDtype::F32;
  if (text == "float16" || text == "f16") return StoredDtype::F16;
  throw std::invalid_argument("unknown --dtype '" + text + "' (expected float32 or float16)");
}

const char* layout_name(EmbeddingLayout l) { return l == EmbeddingLayout::Pooled ? "pooled" : "per_token"; }

void RegionTable::append(const RegionTable& o) {
  index.insert(index.end(), o.index.begin(), o.index.end());
  chrom.insert(chrom.end(), o.chrom.begin(), o.chrom.end());
  name.insert(name.end(), o.name.begin(), o.name.end());
  strand.insert(strand.end(), o.strand.begin(), o.strand.end());
  start.insert(start.end(), o.start.begin(), o.start.end());
  end.insert(end.end(), o.end.begin(), o.end.end());
  n_fraction.insert(n_fraction.end(), o.n_fraction.begin(), o.n_fraction.end());
  all_n.insert(all_n.end(), o.all_n.begin(), o.all_n.end());
}

// ---- writer ----

EmbeddingFileWriter::EmbeddingFileWriter(const std::string& path, const EmbeddingFileSpec& spec, int threads)
    : spec_(spec) {
  h5::QuietErrors quiet;
  if (spec_.layers.empty()) throw std::invalid_argument("embedding file: no layer to store");
  if (std::set<int>(spec_.layers.begin(), spec_.layers.end()).size() != spec_.layers.size())
    throw std::invalid_argument("embedding file: a layer is requested twice");
  if (spec_.dim < 1 || spec_.regions < 0 || spec_.tokens < 0)
    throw std::invalid_argument("embedding file: bad sizes");
  file_ = h5::create_file(path);
  stored_type_ = stored_type(spec_.dtype);
  h5::set_attr(file_, kLayoutAttr, std::string(layout_name(spec_.layout)));
  targets_.resize(spec_.layers.size());
  const int64_t rows = spec_.rows();
  if (spec_.layout == EmbeddingLayout::Pooled) {
    encode(file_, "anndata", "0.1.0");
    h5::Handle x = h5::create_matrix(file_, "X", rows, spec_.dim, stored_type_);
    encode(x, kArray);
    targets_[0].push_back(std::move(x));
    h5::Handle obsm = h5::create_group(file_, "obsm");
    encode(obsm, kDict, "0.1.0");
    for (size_t j = 0; j < spec_.layers.size(); ++j) {
      h5::Handle d = h5::create_matrix(obsm, layer_key(spec_.layers[j]), rows, spec_.dim, stored_type_);
      encode(d, kArray);
      targets_[j].push_back(std::move(d));
    }
  } else {
    h5::Handle t = h5::create_matrix(file_, "tokens", rows, spec_.dim, stored_type_);
    h5::set_attr(t, "layer", static_cast<int64_t>(spec_.layers[0]));
    targets_[0].push_back(std::move(t));
    if (spec_.layers.size() > 1) {
      h5::Handle g = h5::create_group(file_, "token_layers");
      for (size_t j = 1; j < spec_.layers.size(); ++j)
        targets_[j].push_back(h5::create_matrix(g, layer_key(spec_.layers[j]), rows, spec_.dim, stored_type_));
    }
  }
  for (const auto& slot : targets_) {
    std::vector<hid_t> ids;
    for (const auto& d : slot) ids.push_back(d.get());
    appenders_.push_back(std::make_unique<h5::ParallelChunkWriter>(ids, threads));
  }
}

void EmbeddingFileWriter::write_rows(size_t slot, int64_t row0, int64_t n, const float* values) {
  if (spec_.dtype == StoredDtype::F32) return write_stored_rows(slot, row0, n, values);
  const size_t count = static_cast<size_t>(n * spec_.dim);
  half_scratch_.resize(count);
  for (size_t i = 0; i < count; ++i) half_scratch_[i] = h5::float_to_half(values[i]);
  write_stored_rows(slot, row0, n, half_scratch_.data());
}

void EmbeddingFileWriter::write_stored_rows(size_t slot, int64_t row0, int64_t n, const void* values) {
  h5::QuietErrors quiet;
  if (slot >= targets_.size()) throw std::out_of_range("embedding file: no layer slot " + std::to_string(slot));
  appenders_[slot]->append(row0, n, values);
}

void EmbeddingFileWriter::finish(const RegionTable& obs, const std::vector<int64_t>& offsets,
                                 const EmbeddingProvenance& provenance) {
  h5::QuietErrors quiet;
  if (static_cast<int64_t>(obs.size()) != spec_.regions)
    throw std::logic_error("embedding file: " + std::to_string(obs.size()) + " obs rows for " +
                           std::to_string(spec_.regions) + " regions");
  for (auto& a : appenders_) a->finish();
  write_obs(file_, obs);
  write_var(file_, spec_.dim);
  if (spec_.layout == EmbeddingLayout::PerToken) {
    if (static_cast<int64_t>(offsets.size()) != spec_.regions + 1 || offsets.back() != spec_.tokens)
      throw std::logic_error("embedding file: offsets do not match the token rows");
    h5::write_array(file_, "offsets", offsets);
  }
  write_uns(file_, spec_, provenance);
  targets_.clear();
  const std::string name = h5::describe(file_);
  if (H5Fclose(file_.release()) < 0) throw std::runtime_error("HDF5: cannot close " + name + " (disk full?)");
}

// ---- reader ----

EmbeddingFileReader::EmbeddingFileReader(const std::string& path) : path_(path) {
  h5::QuietErrors quiet;
  file_ = h5::open_file(path);
  if (!h5::has_attr(file_, kLayoutAttr))
    throw std::runtime_error("'" + path + "' is not an embedding file written by genomamba embed");
  const std::string layout = h5::get_string_attr(file_, kLayoutAttr);
  if (layout == "pooled") spec_.layout = EmbeddingLayout::Pooled;
  else if (layout == "per_token") spec_.layout = EmbeddingLayout::PerToken;
  else throw std::runtime_error("'" + path + "': unknown embedding layout '" + layout + "'");

  h5::Handle uns = h5::open_group(file_, "uns");
  spec_.dtype = parse_stored_dtype(h5::read_string(uns, "dtype"));
  for (int64_t k : h5::read_int_array(uns, "layers")) spec_.layers.push_back(static_cast<int>(k));
  if (spec_.layers.empty()) throw std::runtime_error("'" + path + "': no layers recorded");
  EmbeddingProvenance& p = provenance_;
  p.version = h5::read_string(uns, "genomamba_version");
  p.command = h5::read_string(uns, "command");
  p.job_command = h5::read_string(uns, "job_command");
  p.checkpoint = h5::read_string(uns, "checkpoint");
  p.checkpoint_sha256 = h5::read_string(uns, "checkpoint_sha256");
  p.model_config = h5::read_string(uns, "model_config");
  p.reference = h5::read_string(uns, "reference");
  {
    h5::Handle md5 = h5::open_group(uns, "reference_md5");
    H5G_info_t info;
    if (H5Gget_info(md5, &info) < 0) throw std::runtime_error("HDF5: cannot list " + h5::describe(md5));
    for (hsize_t i = 0; i < info.nlinks; ++i) {
      char name[4096] = {0};
      H5Lget_name_by_idx(md5, ".", H5_INDEX_NAME, H5_ITER_INC, i, name, sizeof name, H5P_DEFAULT);
      p.reference_md5.emplace_back(name, h5::read_string(md5, name));
    }
  }
  p.pool = h5::read_string(uns, "pool");
  p.strand = h5::read_string(uns, "strand");
  p.flank = h5::read_int64(uns, "flank");
  p.chunk = h5::read_int64(uns, "chunk");
  p.shard_index = h5::read_int64(uns, "shard_index");
  p.shard_count = h5::read_int64(uns, "shard_count");
  p.all_n_regions = h5::read_int64(uns, "all_n_regions");

  if (spec_.layout == EmbeddingLayout::Pooled) {
    h5::Handle obsm = h5::open_group(file_, "obsm");
    for (int k : spec_.layers) sources_.push_back(h5::open_dataset(obsm, layer_key(k)));
  } else {
    sources_.push_back(h5::open_dataset(file_, "tokens"));
    for (size_t j = 1; j < spec_.layers.size(); ++j) {
      h5::Handle g = h5::open_group(file_, "token_layers");
      sources_.push_back(h5::open_dataset(g, layer_key(spec_.layers[j])));
    }
  }
  const auto shape = h5::dataset_shape(sources_[0]);
  spec_.dim = shape[1];
  {
    h5::Handle obs = h5::open_group(file_, "obs");
    h5::Handle index = h5::open_dataset(obs, "_index");
    h5::Handle space(H5Dget_space(index));
    spec_.regions = static_cast<int64_t>(H5Sget_simple_extent_npoints(space));
  }
  if (spec_.layout == EmbeddingLayout::PerToken) spec_.tokens = shape[0];
  else if (shape[0] != spec_.regions)
    throw std::runtime_error("'" + path + "': " + std::to_string(shape[0]) + " embedding rows for " +
                             std::to_string(spec_.regions) + " regions");
}

RegionTable EmbeddingFileReader::regions() const {
  h5::QuietErrors quiet;
  h5::Handle g = h5::open_group(file_, "obs");
  RegionTable t;
  t.index = h5::read_strings(g, "_index");
  t.chrom = read_categorical(g, "chrom");
  t.start = h5::read_int_array(g, "start");
  t.end = h5::read_int_array(g, "end");
  t.name = h5::read_strings(g, "name");
  t.strand = h5::read_strings(g, "strand");
  t.n_fraction = h5::read_double_array(g, "n_fraction");
  t.all_n = h5::read_bools(g, "all_n");
  const size_t n = t.index.size();
  for (size_t size : {t.chrom.size(), t.start.size(), t.end.size(), t.name.size(), t.strand.size(),
                      t.n_fraction.size(), t.all_n.size()})
    if (size != n) throw std::runtime_error("'" + path_ + "': obs columns differ in length");
  return t;
}

std::vector<int64_t> EmbeddingFileReader::offsets() const {
  h5::QuietErrors quiet;
  if (spec_.layout != EmbeddingLayout::PerToken) throw std::logic_error("offsets: not a per-token file");
  return h5::read_int_array(file_, "offsets");
}

size_t EmbeddingFileReader::stored_size() const { return spec_.dtype == StoredDtype::F16 ? 2 : 4; }

void EmbeddingFileReader::read_stored_rows(size_t slot, int64_t row0, int64_t n, void* out) const {
  h5::QuietErrors quiet;
  h5::Handle type = stored_type(spec_.dtype);
  h5::read_rows(sources_.at(slot), row0, n, out, type);
}

std::vector<float> EmbeddingFileReader::read_rows(size_t slot, int64_t row0, int64_t n) const {
  std::vector<float> out(static_cast<size_t>(n * spec_.dim));
  if (spec_.dtype == StoredDtype::F32) {
    read_stored_rows(slot, row0, n, out.data());
  } else {
    std::vector<uint16_t> half(out.size());
    read_stored_rows(slot, row0, n, half.data());
    for (size_t i = 0; i < out.size(); ++i) out[i] = h5::half_to_float(half[i]);
  }
  return out;
}

}  // namespace gm
