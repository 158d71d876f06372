// genomamba info: a checkpoint's config, parameter count and provenance.
#include <iostream>

#include "app/cli.h"
#include "app/commands.h"
#include "mamba/checkpoint.h"
#include "mamba/sha256.h"
#include "pipelines/checkpoint_path.h"

namespace gm::app {

int cmd_info(int argc, char** argv) {
  const CommandSpec spec{"info", "genomamba info <checkpoint>",
                         "Print a checkpoint's model config, parameter count and provenance."};
  std::string path;
  po::options_description opts("Options");
  opts.add_options()("checkpoint", po::value(&path)->value_name("CKPT"),
                     "weights file, checkpoint directory or run directory (positional)");
  po::positional_options_description pos;
  pos.add("checkpoint", 1);
  po::variables_map vm;
  if (!parse_command_line(spec, opts, pos, argc, argv, vm)) return 0;
  if (path.empty()) throw UsageError("a checkpoint is required");
  const std::string weights = resolve_weights_path(path);
  const ModelConfig cfg = read_checkpoint_config(weights);
  std::cout << "file\t" << weights << "\n"
            << "sha256\t" << sha256_file(weights) << "\n"
            << "model\t" << cfg.summary() << "\n"
            << "parameters\t" << cfg.parameter_count() << "\n"
            << "config\t" << cfg.to_json().dump() << "\n";
  for (const auto& [key, value] : read_checkpoint_metadata(weights)) {
    if (key == "config") continue;
    std::cout << key << "\t" << value << "\n";
  }
  return 0;
}

}  // namespace gm::app
