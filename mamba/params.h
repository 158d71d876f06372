// ParamStore: every f32 parameter of a model in ONE flat buffer, its gradients in a
// second flat buffer of the same layout, with one named view per parameter.
//
// Why flat: the optimizer, the gradient norm, the NaN check, the bf16 weight copy and
// a data-parallel all-reduce each become one call over one buffer.
//
// Conventions
// - Parameters are laid out in the order given, except that all weight-decayed
//   parameters come first: decay_spans() then returns (at most) two contiguous
//   spans, so AdamW runs as two calls.
// - Every parameter starts at a multiple of 16 elements (64 bytes, for vector
//   loads); the padding between parameters is zero in every buffer and stays zero
//   (its gradient is never written, so AdamW leaves it at zero).
// - Buffers live on the context's device. version() counts weight updates so that
//   derived copies (bf16 weights) know when to refresh.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "mamba/context.h"
#include "mamba/tensor.h"

namespace gm {

struct ParamSpec {
  std::string name;
  Tensor::Shape shape;
  bool weight_decay = false;
};

struct ParamInfo {
  std::string name;
  Tensor::Shape shape;
  bool weight_decay = false;
  int64_t offset = 0;  // in elements, into the flat buffers
  int64_t numel = 0;
};

// A contiguous range of the flat buffers whose parameters share a weight-decay flag.
struct ParamSpan {
  int64_t offset = 0;
  int64_t numel = 0;
  bool weight_decay = false;
};

class ParamStore {
 public:
  static constexpr int64_t kAlignment = 16;  // elements

  ParamStore() = default;
  // Allocates values and grads on ctx's device, both zero-filled.
  ParamStore(Context& ctx, const std::vector<ParamSpec>& specs);

  const std::vector<ParamInfo>& infos() const { return infos_; }
  size_t size() const { return infos_.size(); }
  // Index of a parameter by name, -1 when absent.
  int find(std::string_view name) const;
  // Index by name; throws std::out_of_range naming it when absent.
  int index(std::string_view name) const;

  // Views with the parameter's shape into the flat buffers.
  Tensor value(int i) const { return value_views_.at(static_cast<size_t>(i)); }
  Tensor grad(int i) const { return grad_views_.at(static_cast<size_t>(i)); }
  Tensor value(std::string_view name) const { return value(index(name)); }
  Tensor grad(std::string_view name) const { return grad(index(name)); }
  // The same view into any buffer laid out like values() (e.g. a bf16 copy, a moment).
  Tensor view_of(const Tensor& flat, int i) const;

  Tensor& values() { return values_; }
  const Tensor& values() const { return values_; }
  Tensor& grads() { return grads_; }
  const Tensor& grads() const { return grads_; }
  int64_t flat_numel() const { return flat_numel_; }
  int64_t parameter_count() const;  // sum of numel, padding excluded
  std::vector<ParamSpan> decay_spans() const;

  void zero_grads(Context& ctx);

  // Host copies of one parameter (in its row-major order) or of the whole flat buffer.
  std::vector<float> download(Context& ctx, int i) const;
  void upload(Context& ctx, int i, const std::vector<float>& host);
  std::vector<float> download_flat(Context& ctx, const Tensor& flat) const;
  void upload_flat(Context& ctx, const std::vector<float>& host, Tensor& flat) const;

  uint64_t version() const { return version_; }
  // Call after any change to values() (optimizer step, load, init).
  void mark_updated() { ++version_; }

 private:
  std::vector<ParamInfo> infos_;
  Tensor values_, grads_;
  std::vector<Tensor> value_views_, grad_views_;
  int64_t flat_numel_ = 0;
  uint64_t version_ = 1;
};

}  // namespace gm
