// Pooling of one pass of the model over a region into one vector per layer, in
// constant memory whatever the region's length: outputs are fed as they stream out, as
// reductions (sums, maxima) of runs of positions that the caller computed (the embed
// engine reduces them on the model's device).
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
#include <utility>
#include <vector>

namespace gm {

enum class Pool : uint8_t { Mean, Max, Center, Last, None };
enum class StrandMode : uint8_t { Fwd, Rc, Both };

Pool parse_pool(const std::string& text);  // mean | max | center | last | none
const char* pool_name(Pool p);
StrandMode parse_strand_mode(const std::string& text);  // fwd | rc | both
const char* strand_mode_name(StrandMode s);

// The pooled positions whose outputs a mode needs: [first, second) of a pass with P
// pooled positions (all of them for mean and max, the middle one or two for center, the
// last one for last). Only these are read, so a caller may reduce exactly this range.
std::pair<int64_t, int64_t> pool_wanted_range(Pool pool, int64_t P);

class PassPooler {
 public:
  PassPooler(Pool pool, int64_t dim);
  // Starts a pass whose pooled part has `length` positions.
  void begin(int64_t length);
  // The reduction of the outputs at pooled positions [q0, q1), a part of the wanted range
  // not fed before: their sum, or for max their elementwise maximum (dim values).
  void feed_reduced(int64_t q0, int64_t q1, const float* reduced);
  // out[0..dim) += weight * pooled value. Every wanted position must have been fed.
  void finish(float weight, float* out) const;

 private:
  Pool pool_;
  int64_t dim_;
  int64_t wanted_begin_ = 0, wanted_end_ = 0, fed_ = 0;
  std::vector<double> acc_;
  std::vector<float> max_;
};

}  // namespace gm
