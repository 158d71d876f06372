// Where a model's weights are, from what a user types: a weights file
// (model.safetensors), a checkpoint directory holding one, or a pretrain run
// directory (its checkpoints/latest). Missing: an error naming the path.
#pragma once

#include <string>

namespace gm {

std::string resolve_weights_path(const std::string& path);

}  // namespace gm
