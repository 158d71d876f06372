// genomamba: subcommand table and top-level error handling.
// Errors go to stderr as "genomamba <subcommand>: message"; usage errors exit 1,
// other failures exit 2.
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <exception>
#include <iostream>
#include <string>

#include "app/cli.h"
#include "app/commands.h"

namespace {

struct Subcommand {
  const char* name;
  const char* summary;
  int (*run)(int, char**);
};

constexpr Subcommand kSubcommands[] = {
    {"inspect", "check input data before a long run: contigs, N/soft-mask/GC, windows per split",
     gm::app::cmd_inspect},
    {"pretrain", "train a causal Mamba LM on a genome (FASTA windows or BAM/CRAM reads); resumes", gm::app::cmd_pretrain},
    {"eval", "held-out loss, perplexity and bits per base of a checkpoint on regions", gm::app::cmd_eval},
    {"info", "a checkpoint's config, parameter count and provenance", gm::app::cmd_info},
    {"embed", "embeddings of regions (BED, -r, contigs, windows) as HDF5/anndata; sharded", gm::app::cmd_embed},
    {"score", "variant-effect scores (LLR, window DLL, embedding distance) of a VCF/BCF as INFO fields", gm::app::cmd_score},
    {"merge", "join the shard outputs of a sharded embed or score job, in order", gm::app::cmd_merge},
};

void print_usage(std::ostream& os) {
  os << "genomamba " << GENOMAMBA_VERSION
     << ": Mamba (selective state space) models on genomes\n\n"
        "Usage: genomamba <subcommand> [options]\n\nSubcommands:\n";
  for (const auto& s : kSubcommands) {
    os << "  " << s.name << std::string(12 - std::strlen(s.name), ' ') << s.summary << "\n";
  }
  os << "\nOptions: --help, --version. 'genomamba <subcommand> --help' lists a subcommand's options.\n";
}

}  // namespace

int main(int argc, char** argv) {
  // OpenMP threads spin while they wait by default, which made jobs up to 10x slower on
  // a shared (oversubscribed) node in our measurements. libgomp reads OMP_WAIT_POLICY when
  // it is loaded, before main(), so the process restarts itself once with a passive
  // policy unless the user chose one.
  if (!std::getenv("OMP_WAIT_POLICY")) {
    setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
    execv("/proc/self/exe", argv);  // returns only on failure: carry on as we are
  }
  if (argc < 2) {
    print_usage(std::cerr);
    return 1;
  }
  const std::string first = argv[1];
  if (first == "--help" || first == "-h" || first == "help") {
    print_usage(std::cout);
    return 0;
  }
  if (first == "--version" || first == "version") {
    std::cout << "genomamba " << GENOMAMBA_VERSION << "\n";
    return 0;
  }
  for (const auto& s : kSubcommands) {
    if (first != s.name) continue;
    try {
      return s.run(argc - 1, argv + 1);
    } catch (const gm::app::UsageError& e) {
      std::cerr << "genomamba " << s.name << ": " << e.what() << "\n"
                << "Try 'genomamba " << s.name << " --help'.\n";
      return 1;
    } catch (const std::exception& e) {
      std::cerr << "genomamba " << s.name << ": " << e.what() << "\n";
      return 2;
    }
  }
  std::cerr << "genomamba: unknown subcommand '" << first << "'\n\n";
  print_usage(std::cerr);
  return 1;
}
