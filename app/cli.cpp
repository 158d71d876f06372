// Option parsing shared by every subcommand.
#include "app/cli.h"

#include <fstream>
#include <iostream>
#include <sstream>

namespace gm::app {

bool parse_command_line(const CommandSpec& spec, po::options_description& options,
                        const po::positional_options_description& positional, int argc, char** argv,
                        po::variables_map& vm) {
  po::options_description common("Common options");
  common.add_options()
      ("help,h", "show this help and exit")
      ("config", po::value<std::string>()->value_name("FILE.ini"),
       "read options from an .ini file (the command line wins)")
      ("threads,@", po::value<int>()->default_value(0)->value_name("N"), "CPU threads (0 = all cores)");
  po::options_description all;
  all.add(options).add(common);
  try {
    po::store(po::command_line_parser(argc, argv).options(all).positional(positional).run(), vm);
    if (vm.count("help")) {
      std::cout << "Usage: " << spec.usage << "\n\n" << spec.summary << "\n\n" << all << "\n";
      return false;
    }
    if (vm.count("config")) {
      const std::string path = vm["config"].as<std::string>();
      std::ifstream in(path);
      if (!in) throw UsageError("cannot open config file '" + path + "'");
      try {
        po::store(po::parse_config_file(in, all, /*allow_unregistered=*/false), vm);
      } catch (const po::unknown_option& e) {
        // A model file's keys read as "model.<key>" here; pretrain takes those files by --model.
        std::string hint;
        if (e.get_option_name().rfind("model.", 0) == 0 && all.find_nothrow("model", false) != nullptr)
          hint = " (a [model] section: model files go to --model, --config takes this command's options)";
        throw UsageError("config file '" + path + "': " + e.what() + hint);
      } catch (const po::error& e) {
        throw UsageError("config file '" + path + "': " + e.what());
      }
    }
    po::notify(vm);
  } catch (const po::error& e) {
    throw UsageError(e.what());
  }
  return true;
}

std::string joined_command_line(int argc, char** argv) {
  std::ostringstream os;
  os << "genomamba";
  for (int i = 0; i < argc; ++i) {
    std::string a = argv[i];
    const bool quote = a.empty() || a.find_first_of(" \t'\"\\$") != std::string::npos;
    os << ' ' << (quote ? "'" + a + "'" : a);
  }
  return os.str();
}

int threads_option(const po::variables_map& vm) {
  const int t = vm["threads"].as<int>();
  if (t < 0) throw UsageError("--threads must be >= 0");
  return t;
}

}  // namespace gm::app
