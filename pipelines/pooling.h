// Pooling of one pass of the model over a region into one vector per layer, in
// constant memory whatever the region's length (tokens are fed as they stream out).
//
// A pass reads the region on one strand; its pooled positions are the region's bases in
// that pass's order (flank excluded), numbered q = 0..P-1.
//   mean    average of the P outputs (accumulated in double: whole chromosomes)
//   max     elementwise maximum
//   center  the middle output (P odd) or the mean of the two middle ones (P even), so
//           that a pass and its reverse complement pick the same bases
//   last    the output at q = P-1, the one that has read the whole region
// With --strand both, a region's value is the average of its two passes' pooled
// vectors; for mean this equals pooling the base-for-base average of the two passes.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace gm {

enum class Pool : uint8_t { Mean, Max, Center, Last, None };
enum class StrandMode : uint8_t { Fwd, Rc, Both };

Pool parse_pool(const std::string& text);  // mean | max | center | last | none
const char* pool_name(Pool p);
StrandMode parse_strand_mode(const std::string& text);  // fwd | rc | both
const char* strand_mode_name(StrandMode s);

class PassPooler {
 public:
  PassPooler(Pool pool, int64_t dim);
  // Starts a pass whose pooled part has `length` positions.
  void begin(int64_t length);
  // The output at pooled position q (fed in increasing q), dim values.
  void feed(int64_t q, const float* x);
  // out[0..dim) += weight * pooled value. Every position must have been fed.
  void finish(float weight, float* out) const;

 private:
  Pool pool_;
  int64_t dim_;
  int64_t length_ = 0, fed_ = 0;
  std::vector<double> acc_;
  std::vector<float> max_;
};

}  // namespace gm
