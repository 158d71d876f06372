// genomamba inspect (placeholder until the genomics layer lands).
#include "app/cli.h"
#include "app/commands.h"

namespace gm::app {
int cmd_inspect(int, char**) { throw std::runtime_error("inspect: not implemented yet"); }
}  // namespace gm::app
