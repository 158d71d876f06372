// ParamStore layout (decayed parameters first, 16-element alignment) and host transfers.
#include "mamba/params.h"

#include <algorithm>
#include <stdexcept>

#include "mamba/ops.h"

namespace gm {

ParamStore::ParamStore(Context& ctx, const std::vector<ParamSpec>& specs) {
  int64_t offset = 0;
  for (const bool decay_pass : {true, false}) {
    for (const auto& s : specs) {
      if (s.weight_decay != decay_pass) continue;
      if (find(s.name) >= 0) throw std::invalid_argument("duplicate parameter name " + s.name);
      ParamInfo info{s.name, s.shape, s.weight_decay, offset, 1};
      for (int64_t d : s.shape) info.numel *= d;
      offset += (info.numel + kAlignment - 1) / kAlignment * kAlignment;
      infos_.push_back(std::move(info));
    }
  }
  flat_numel_ = offset;
  values_ = ctx.empty({std::max<int64_t>(flat_numel_, 1)}, DType::F32);
  grads_ = ctx.empty({std::max<int64_t>(flat_numel_, 1)}, DType::F32);
  ops::fill(ctx, values_, 0.f);
  ops::fill(ctx, grads_, 0.f);
  for (size_t i = 0; i < infos_.size(); ++i) {
    value_views_.push_back(view_of(values_, static_cast<int>(i)));
    grad_views_.push_back(view_of(grads_, static_cast<int>(i)));
  }
}

int ParamStore::find(std::string_view name) const {
  for (size_t i = 0; i < infos_.size(); ++i)
    if (infos_[i].name == name) return static_cast<int>(i);
  return -1;
}

int ParamStore::index(std::string_view name) const {
  const int i = find(name);
  if (i < 0) throw std::out_of_range("no parameter named " + std::string(name));
  return i;
}

Tensor ParamStore::view_of(const Tensor& flat, int i) const {
  const ParamInfo& p = infos_.at(static_cast<size_t>(i));
  return flat.narrow(0, p.offset, p.numel).reshape(p.shape);
}

int64_t ParamStore::parameter_count() const {
  int64_t n = 0;
  for (const auto& p : infos_) n += p.numel;
  return n;
}

std::vector<ParamSpan> ParamStore::decay_spans() const {
  std::vector<ParamSpan> spans;
  for (const auto& p : infos_) {
    if (!spans.empty() && spans.back().weight_decay == p.weight_decay) {
      spans.back().numel = p.offset + p.numel - spans.back().offset;
    } else {
      spans.push_back({p.offset, p.numel, p.weight_decay});
    }
  }
  return spans;
}

void ParamStore::zero_grads(Context& ctx) { ops::fill(ctx, grads_, 0.f); }

std::vector<float> ParamStore::download(Context& ctx, int i) const {
  const ParamInfo& p = infos_.at(static_cast<size_t>(i));
  std::vector<float> host(static_cast<size_t>(p.numel));
  Tensor dst = Tensor::wrap(host.data(), {p.numel}, DType::F32, Device::cpu());
  ops::copy(ctx, values_.narrow(0, p.offset, p.numel), dst);
  return host;
}

void ParamStore::upload(Context& ctx, int i, const std::vector<float>& host) {
  const ParamInfo& p = infos_.at(static_cast<size_t>(i));
  if (static_cast<int64_t>(host.size()) != p.numel)
    throw std::invalid_argument("upload of " + p.name + ": " + std::to_string(host.size()) + " values for " +
                                std::to_string(p.numel) + " elements");
  Tensor src = Tensor::wrap(const_cast<float*>(host.data()), {p.numel}, DType::F32, Device::cpu());
  Tensor dst = values_.narrow(0, p.offset, p.numel);
  ops::copy(ctx, src, dst);
}

std::vector<float> ParamStore::download_flat(Context& ctx, const Tensor& flat) const {
  std::vector<float> host(static_cast<size_t>(flat.numel()));
  Tensor dst = Tensor::wrap(host.data(), {flat.numel()}, DType::F32, Device::cpu());
  ops::copy(ctx, flat, dst);
  return host;
}

void ParamStore::upload_flat(Context& ctx, const std::vector<float>& host, Tensor& flat) const {
  if (static_cast<int64_t>(host.size()) != flat.numel())
    throw std::invalid_argument("upload_flat: size mismatch");
  Tensor src = Tensor::wrap(const_cast<float*>(host.data()), {flat.numel()}, DType::F32, Device::cpu());
  ops::copy(ctx, src, flat);
}

}  // namespace gm
