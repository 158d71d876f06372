// The HDF5 layer of the embedding files: float16 conversion (every half value, rounding
// ties to even, overflow, NaN), the anndata encoding attributes, chunking and filters,
// and writer -> reader round trips including an empty file.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>

#include <random>

#include "pipelines/h5_chunk_writer.h"
#include "pipelines/h5ad_writer.h"
#include "tests/test_support.h"

namespace gm {
namespace {

float bits_to_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

TEST(EmbedH5, HalfConversionRoundTripsEveryHalfAndRoundsToNearestEven) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const float f = h5::half_to_float(static_cast<uint16_t>(h));
    const bool nan = (h & 0x7c00) == 0x7c00 && (h & 0x3ff);
    if (nan) {
      EXPECT_TRUE(std::isnan(f));
      EXPECT_TRUE(std::isnan(h5::half_to_float(h5::float_to_half(f))));
      continue;
    }
    ASSERT_EQ(h5::float_to_half(f), h) << "half 0x" << std::hex << h;
  }
  EXPECT_EQ(h5::half_to_float(0x3c00), 1.0f);
  EXPECT_EQ(h5::half_to_float(0x7bff), 65504.0f);
  EXPECT_EQ(h5::half_to_float(0x0001), std::ldexp(1.0f, -24));
  // Halfway between 1 and the next half (1 + 2^-10): ties go to the even mantissa.
  EXPECT_EQ(h5::float_to_half(1.0f + std::ldexp(1.0f, -11)), 0x3c00);
  EXPECT_EQ(h5::float_to_half(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02);
  EXPECT_EQ(h5::float_to_half(1.0f + std::ldexp(1.0f, -11) + std::ldexp(1.0f, -20)), 0x3c01);
  EXPECT_EQ(h5::float_to_half(65520.0f), 0x7c00);  // rounds past the largest half: inf
  EXPECT_EQ(h5::float_to_half(-1e10f), 0xfc00);
  EXPECT_EQ(h5::float_to_half(std::ldexp(1.0f, -25)), 0x0000);  // tie with 0: even
  EXPECT_EQ(h5::float_to_half(bits_to_float(0x33000001)), 0x0001);  // just above 2^-25
  EXPECT_EQ(h5::float_to_half(-0.0f), 0x8000);
  EXPECT_EQ(h5::float_to_half(std::numeric_limits<float>::infinity()), 0x7c00);
}

EmbeddingFileSpec small_spec(EmbeddingLayout layout, StoredDtype dtype) {
  EmbeddingFileSpec s;
  s.layout = layout;
  s.dtype = dtype;
  s.layers = {4, 0};
  s.regions = 3;
  s.dim = 5;
  s.tokens = layout == EmbeddingLayout::PerToken ? 7 : 0;
  return s;
}

RegionTable small_table() {
  RegionTable t;
  t.index = {"10", "11", "12"};
  t.chrom = {"chr2", "chr1", "chr2"};
  t.start = {0, 5, 9};
  t.end = {2, 8, 11};
  t.name = {"a", "", "c"};
  t.strand = {"+", "-", "."};
  t.n_fraction = {0.0, 1.0, 0.5};
  t.all_n = {0, 1, 0};
  return t;
}

EmbeddingProvenance small_provenance() {
  EmbeddingProvenance p;
  p.version = "9.9";
  p.command = "genomamba embed x --shard 1/4";
  p.job_command = "genomamba embed x";
  p.checkpoint = "m.safetensors";
  p.checkpoint_sha256 = std::string(64, 'a');
  p.model_config = "{\"d_model\":5}";
  p.reference = "ref.fa";
  p.reference_md5 = {{"chr2", std::string(32, 'b')}, {"chr1", std::string(32, 'c')}};
  p.pool = "max";
  p.strand = "both";
  p.flank = 7;
  p.chunk = 99;
  p.shard_index = 1;
  p.shard_count = 4;
  p.all_n_regions = 1;
  return p;
}

TEST(EmbedH5, WriterAndReaderRoundTripBothLayouts) {
  test::TempDir dir;
  for (auto layout : {EmbeddingLayout::Pooled, EmbeddingLayout::PerToken}) {
    for (auto dtype : {StoredDtype::F32, StoredDtype::F16}) {
      const std::string path = dir / "f.h5";
      const EmbeddingFileSpec spec = small_spec(layout, dtype);
      const int64_t rows = spec.rows();
      std::vector<std::vector<float>> values(2);
      for (size_t k = 0; k < 2; ++k)
        for (int64_t i = 0; i < rows * spec.dim; ++i) values[k].push_back(0.25f * static_cast<float>(i) - 3.f * k);
      {
        EmbeddingFileWriter w(path, spec);
        for (size_t k = 0; k < 2; ++k) {
          w.write_rows(k, 0, 1, values[k].data());  // in two pieces
          w.write_rows(k, 1, rows - 1, values[k].data() + spec.dim);
        }
        w.finish(small_table(), {0, 2, 5, 7}, small_provenance());
      }
      EmbeddingFileReader r(path);
      EXPECT_EQ(r.spec().layout, layout);
      EXPECT_EQ(r.spec().dtype, dtype);
      EXPECT_EQ(r.spec().layers, spec.layers);
      EXPECT_EQ(r.spec().regions, 3);
      EXPECT_EQ(r.spec().dim, 5);
      EXPECT_EQ(r.spec().rows(), rows);
      for (size_t k = 0; k < 2; ++k) EXPECT_EQ(r.read_rows(k, 0, rows), values[k]);  // exact in float16 too
      const RegionTable t = r.regions(), want = small_table();
      EXPECT_EQ(t.index, want.index);
      EXPECT_EQ(t.chrom, want.chrom);
      EXPECT_EQ(t.start, want.start);
      EXPECT_EQ(t.end, want.end);
      EXPECT_EQ(t.name, want.name);
      EXPECT_EQ(t.strand, want.strand);
      EXPECT_EQ(t.n_fraction, want.n_fraction);
      EXPECT_EQ(t.all_n, want.all_n);
      if (layout == EmbeddingLayout::PerToken) {
        EXPECT_EQ(r.offsets(), (std::vector<int64_t>{0, 2, 5, 7}));
      }
      const EmbeddingProvenance& p = r.provenance();
      const EmbeddingProvenance q = small_provenance();
      EXPECT_EQ(p.command, q.command);
      EXPECT_EQ(p.job_command, q.job_command);
      EXPECT_EQ(p.checkpoint_sha256, q.checkpoint_sha256);
      EXPECT_EQ(p.model_config, q.model_config);
      EXPECT_EQ(p.pool, "max");
      EXPECT_EQ(p.strand, "both");
      EXPECT_EQ(p.flank, 7);
      EXPECT_EQ(p.chunk, 99);
      EXPECT_EQ(p.shard_index, 1);
      EXPECT_EQ(p.shard_count, 4);
      EXPECT_EQ(p.all_n_regions, 1);
      ASSERT_EQ(p.reference_md5.size(), 2u);  // read back in name order
      EXPECT_EQ(p.reference_md5[0].first, "chr1");
      EXPECT_EQ(p.reference_md5[1].second, std::string(32, 'b'));
    }
  }
}

TEST(EmbedH5, AnndataEncodingChunksAndFilters) {
  test::TempDir dir;
  const std::string path = dir / "f.h5ad";
  EmbeddingFileSpec spec = small_spec(EmbeddingLayout::Pooled, StoredDtype::F32);
  spec.regions = 3;
  spec.dim = 100000;  // rows of 400 kB: two rows per ~1 MiB chunk
  {
    EmbeddingFileWriter w(path, spec);
    std::vector<float> zeros(static_cast<size_t>(3 * spec.dim), 0.5f);
    for (size_t k = 0; k < 2; ++k) w.write_rows(k, 0, 3, zeros.data());
    w.finish(small_table(), {}, small_provenance());
  }
  h5::QuietErrors quiet;
  h5::Handle f = h5::open_file(path);
  EXPECT_EQ(h5::get_string_attr(f, "encoding-type"), "anndata");
  h5::Handle obs = h5::open_group(f, "obs");
  EXPECT_EQ(h5::get_string_attr(obs, "encoding-type"), "dataframe");
  EXPECT_EQ(h5::get_string_attr(obs, "_index"), "_index");
  h5::Handle chrom = h5::open_group(obs, "chrom");
  EXPECT_EQ(h5::get_string_attr(chrom, "encoding-type"), "categorical");
  EXPECT_EQ(h5::read_strings(chrom, "categories"), (std::vector<std::string>{"chr2", "chr1"}));
  EXPECT_EQ(h5::read_int_array(chrom, "codes"), (std::vector<int64_t>{0, 1, 0}));
  h5::Handle x = h5::open_dataset(f, "X");
  EXPECT_EQ(h5::get_string_attr(x, "encoding-type"), "array");
  h5::Handle dcpl(H5Dget_create_plist(x));
  ASSERT_EQ(H5Pget_layout(dcpl), H5D_CHUNKED);
  hsize_t chunk[2] = {0, 0};
  H5Pget_chunk(dcpl, 2, chunk);
  EXPECT_EQ(chunk[0], 2u);
  EXPECT_EQ(chunk[1], 100000u);
  std::vector<H5Z_filter_t> filters;
  for (int i = 0; i < H5Pget_nfilters(dcpl); ++i) {
    unsigned flags = 0, conf = 0;
    size_t n = 0;
    filters.push_back(H5Pget_filter2(dcpl, static_cast<unsigned>(i), &flags, &n, nullptr, 0, nullptr, &conf));
  }
  EXPECT_EQ(filters, (std::vector<H5Z_filter_t>{H5Z_FILTER_SHUFFLE, H5Z_FILTER_DEFLATE}));
}

TEST(EmbedH5, EmptyFileAndMisuse) {
  test::TempDir dir;
  EmbeddingFileSpec spec = small_spec(EmbeddingLayout::PerToken, StoredDtype::F16);
  spec.regions = 0;
  spec.tokens = 0;
  {
    EmbeddingFileWriter w(dir / "empty.h5", spec);
    w.finish(RegionTable{}, {0}, small_provenance());
  }
  EmbeddingFileReader r(dir / "empty.h5");
  EXPECT_EQ(r.spec().regions, 0);
  EXPECT_EQ(r.spec().tokens, 0);
  EXPECT_EQ(r.spec().dim, 5);
  EXPECT_EQ(r.offsets(), std::vector<int64_t>{0});

  spec.layers = {1, 1};
  EXPECT_THROW(EmbeddingFileWriter(dir / "dup.h5", spec), std::invalid_argument);
  spec = small_spec(EmbeddingLayout::Pooled, StoredDtype::F32);
  EmbeddingFileWriter w(dir / "rows.h5", spec);
  const std::vector<float> v(20, 1.f);
  EXPECT_THROW(w.write_rows(0, 2, 2, v.data()), std::runtime_error);  // past the last row
  EXPECT_THROW(w.write_rows(5, 0, 1, v.data()), std::out_of_range);
  EXPECT_THROW(EmbeddingFileReader(test::data_path("setB/genome.bed")), std::runtime_error);
}

}  // namespace
}  // namespace gm

namespace gm {
namespace {

// Several chunks (one of them an edge chunk), appended in pieces that straddle chunk
// boundaries, compressed on three threads into two datasets: both read back bitwise, in
// float32 and float16, and the chunks are ordinary shuffle + gzip chunks HDF5 decodes.
TEST(EmbedH5, ParallelChunkWriterStoresWhatHdf5Reads) {
  test::TempDir dir;
  std::mt19937 rng(5);
  std::normal_distribution<float> normal(0.f, 1.f);
  for (const bool half : {false, true}) {
    const std::string path = dir / (half ? "h.h5" : "f.h5");
    const int64_t rows = 7001, cols = 100;  // f32: 2,621 rows a chunk; f16: 5,242
    h5::Handle type = half ? h5::half_type() : h5::Handle(H5Tcopy(H5T_IEEE_F32LE));
    const size_t elem = half ? 2 : 4;
    std::vector<uint8_t> values(static_cast<size_t>(rows * cols) * elem);
    for (size_t i = 0; i < values.size() / elem; ++i) {
      const float v = normal(rng);
      if (half) {
        const uint16_t h = h5::float_to_half(v);
        std::memcpy(&values[i * 2], &h, 2);
      } else {
        std::memcpy(&values[i * 4], &v, 4);
      }
    }
    {
      h5::Handle file = h5::create_file(path);
      h5::Handle a = h5::create_matrix(file, "a", rows, cols, type);
      h5::Handle b = h5::create_matrix(file, "b", rows, cols, type);
      h5::ParallelChunkWriter w({a.get(), b.get()}, 3);
      int64_t row = 0;
      for (const int64_t n : {777, 3000, 1, 2621, 602}) {
        w.append(row, n, values.data() + static_cast<size_t>(row * cols) * elem);
        row += n;
      }
      ASSERT_EQ(row, rows);
      EXPECT_THROW(w.append(0, 1, values.data()), std::runtime_error);  // not the next rows
      w.finish();
    }
    h5::Handle file = h5::open_file(path);
    for (const char* name : {"a", "b"}) {
      h5::Handle d = h5::open_dataset(file, name);
      std::vector<uint8_t> got(values.size());
      h5::read_rows(d, 0, rows, got.data(), type);
      EXPECT_EQ(got, values) << name << (half ? " float16" : " float32");
      // Compressed: shuffle + gzip shrinks float16 noise (sign / exponent bytes).
      if (half) {
        EXPECT_LT(H5Dget_storage_size(d), values.size());
      }
    }
  }
}

TEST(EmbedH5, ParallelChunkWriterNeedsEveryRow) {
  test::TempDir dir;
  h5::Handle file = h5::create_file(dir / "f.h5");
  h5::Handle type(H5Tcopy(H5T_IEEE_F32LE));
  h5::Handle a = h5::create_matrix(file, "a", 10, 4, type);
  h5::ParallelChunkWriter w({a.get()}, 2);
  const std::vector<float> v(40, 1.f);
  w.append(0, 9, v.data());
  EXPECT_THROW(w.finish(), std::runtime_error);
}

}  // namespace
}  // namespace gm
