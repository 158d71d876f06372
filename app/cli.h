// Shared option handling for subcommands: common options (--help, --config,
// -@/--threads), Boost.Program_options parsing of the command line and of an .ini
// config file (the command line wins), and the error types main() reports.
#pragma once

#include <boost/program_options.hpp>
#include <stdexcept>
#include <string>
#include <vector>

namespace gm::app {

namespace po = boost::program_options;

// Bad command line: main() prints the message and the usage hint, exit 1.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// What a subcommand declares about itself.
struct CommandSpec {
  std::string name;     // "inspect"
  std::string usage;    // "genomamba inspect [options] <ref.fa>"
  std::string summary;  // one line, shown in --help
};

// Parses argv (argv[0] is the subcommand name) against `options` plus the common
// options; reads --config FILE.ini for any option not given on the command line.
// Returns false when --help was asked (help already printed to stdout).
// Throws UsageError for unknown options, missing values, bad config files.
bool parse_command_line(const CommandSpec& spec, po::options_description& options,
                        const po::positional_options_description& positional, int argc, char** argv,
                        po::variables_map& vm);

// The command line as typed, for provenance records.
std::string joined_command_line(int argc, char** argv);

// -@/--threads value (0 = all cores).
int threads_option(const po::variables_map& vm);

}  // namespace gm::app
