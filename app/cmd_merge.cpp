// genomamba merge: joins the shard outputs of a sharded embed or score job.
#include <fstream>
#include <iostream>

#include "app/cli.h"
#include "app/commands.h"
#include "pipelines/merge.h"

namespace gm::app {

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// HDF5 files start with the 8-byte signature \x89HDF\r\n\x1a\n (whatever their name:
// .h5, .h5ad, .hdf5); anything else is taken as VCF/BCF.
bool is_hdf5(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char sig[8] = {};
  in.read(sig, sizeof sig);
  return in.gcount() == 8 && std::string(sig, 8) == std::string("\x89HDF\r\n\x1a\n", 8);
}

}  // namespace

int cmd_merge(int argc, char** argv) {
  const CommandSpec spec{"merge", "genomamba merge -o OUT SHARD...",
                         "Join the shard outputs of a sharded embed (HDF5) or score (VCF/BCF) job, in order."};
  std::vector<std::string> inputs;
  std::string output, output_type;
  bool write_index = false;
  po::options_description opts("Options");
  opts.add_options()
      ("output,o", po::value(&output)->value_name("OUT"), "merged output (.h5, or VCF/BCF)")
      ("output-type,O", po::value(&output_type)->value_name("v|z|u|b"), "VCF/BCF output type (default from the name)")
      ("write-index,W", po::bool_switch(&write_index), "index the merged VCF/BCF")
      ("shards", po::value(&inputs)->composing()->value_name("SHARD"), "shard files (positional)");
  po::positional_options_description pos;
  pos.add("shards", -1);
  po::variables_map vm;
  if (!parse_command_line(spec, opts, pos, argc, argv, vm)) return 0;
  if (output.empty()) throw UsageError("-o OUT is required");
  if (inputs.empty()) throw UsageError("no shard files given");
  if (is_hdf5(inputs.front())) {
    merge_embedding_shards(inputs, output);
    return 0;
  }
  char type = output_type.empty() ? 0 : output_type[0];
  if (!output_type.empty() && (output_type.size() != 1 || std::string("vzub").find(type) == std::string::npos))
    throw UsageError("-O must be one of v, z, u, b");
  if (type == 0) type = ends_with(output, ".bcf") ? 'b' : (ends_with(output, ".gz") ? 'z' : 'v');
  merge_vcf_shards(inputs, output, type, write_index);
  return 0;
}

}  // namespace gm::app
