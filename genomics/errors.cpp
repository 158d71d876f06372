// Uniform error messages for bad input.
#include "genomics/errors.h"

namespace gm {

void throw_input_error(const std::string& file, const std::string& what) { throw InputError(file + ": " + what); }

void throw_input_error(const std::string& file, int64_t line, const std::string& what) {
  throw InputError(file + ":" + std::to_string(line) + ": " + what);
}

}  // namespace gm
