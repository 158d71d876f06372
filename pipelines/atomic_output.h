// AtomicOutput: an output file written under a temporary name in the same
// directory and renamed to its final name only by commit(). If the object dies
// uncommitted (error, exception), the temporary file is removed, so a failed run
// never leaves a truncated file under the final name.
#pragma once

#include <string>

namespace gm {

class AtomicOutput {
 public:
  // Checks up front that the directory of `final_path` exists and is writable.
  explicit AtomicOutput(std::string final_path);
  ~AtomicOutput();
  AtomicOutput(const AtomicOutput&) = delete;
  AtomicOutput& operator=(const AtomicOutput&) = delete;

  const std::string& temp_path() const { return temp_; }
  const std::string& final_path() const { return final_; }
  // fsyncs the temporary file and renames it over the final name.
  void commit();

 private:
  std::string final_;
  std::string temp_;
  bool committed_ = false;
};

}  // namespace gm
