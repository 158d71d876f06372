// Runs the built genomamba binary (GENOMAMBA_BINARY) from CLI end-to-end tests:
// synchronously with captured stdout/stderr, or in the background so a test can kill it.
#pragma once

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "tests/test_support.h"

namespace gm::test {

struct CliResult {
  int status = -1;  // exit status, -1 when killed by a signal
  std::string out, err;
};

// The binary under test: $GENOMAMBA_BINARY when set (a bundled copy on another
// machine), else the one this test was built with.
inline std::string genomamba_binary() {
  if (const char* b = std::getenv("GENOMAMBA_BINARY")) return b;
  return GENOMAMBA_BINARY;
}

inline std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

inline std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// genomamba <args...>, run through the shell with output captured.
inline CliResult run_genomamba(const std::vector<std::string>& args, const std::string& stdin_path = "") {
  TempDir dir;
  std::string cmd = shell_quote(genomamba_binary());
  for (const auto& a : args) cmd += " " + shell_quote(a);
  if (!stdin_path.empty()) cmd += " < " + shell_quote(stdin_path);
  cmd += " > " + shell_quote(dir / "out") + " 2> " + shell_quote(dir / "err");
  const int raw = std::system(cmd.c_str());
  CliResult r;
  r.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
  r.out = slurp(dir / "out");
  r.err = slurp(dir / "err");
  return r;
}

// genomamba <args...> in the background (stdout/stderr to /dev/null); returns its pid.
inline pid_t spawn_genomamba(const std::vector<std::string>& args) {
  const pid_t pid = fork();
  if (pid == 0) {
    std::vector<char*> argv;
    std::string bin = genomamba_binary();
    argv.push_back(bin.data());
    std::vector<std::string> copy = args;
    for (auto& a : copy) argv.push_back(a.data());
    argv.push_back(nullptr);
    freopen("/dev/null", "w", stdout);
    freopen("/dev/null", "w", stderr);
    execv(bin.c_str(), argv.data());
    _exit(127);
  }
  return pid;
}

}  // namespace gm::test
