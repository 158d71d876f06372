// InputError: bad user input (missing or malformed file, unknown contig, ...).
// The message names the file and, where there is one, the line or record, so the
// user can find the problem; main() prints it and exits non-zero.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

namespace gm {

class InputError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// "<file>: <what>" and "<file>:<line>: <what>" in one place so messages look alike.
[[noreturn]] void throw_input_error(const std::string& file, const std::string& what);
[[noreturn]] void throw_input_error(const std::string& file, int64_t line, const std::string& what);

}  // namespace gm
