// One entry point per subcommand, each in app/cmd_<name>.cpp. argv[0] is the
// subcommand name. Returns the exit status; throws UsageError or std::exception.
#pragma once

namespace gm::app {

int cmd_inspect(int argc, char** argv);
int cmd_pretrain(int argc, char** argv);
int cmd_eval(int argc, char** argv);
int cmd_info(int argc, char** argv);
int cmd_embed(int argc, char** argv);
int cmd_score(int argc, char** argv);
int cmd_merge(int argc, char** argv);

}  // namespace gm::app
