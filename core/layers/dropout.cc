#include "core/layers/dropout.h"

namespace gan {

Dropout::Dropout(const LayerBinding& b)
    : rate_(b.shape->spec.dropout().rate()),
      scale_(1.0f / (1.0f - rate_)),
      index_(b.shape->index),
      src_(static_cast<float*>(b.src.get_data_handle())),
      dst_(static_cast<float*>(b.dst.get_data_handle())),
      diff_src_(b.diff_src ? static_cast<float*>(b.diff_src.get_data_handle()) : nullptr),
      diff_dst_(b.diff_dst ? static_cast<float*>(b.diff_dst.get_data_handle()) : nullptr),
      mask_(b.batch * NumElements(b.shape->input), 1.0f) {}

void Dropout::Forward(dnnl::stream& s) {
  const int64_t n = static_cast<int64_t>(mask_.size());
  const float* mask = mask_.data();
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) dst_[i] = src_[i] * mask[i] * scale_;
}

void Dropout::Backward(dnnl::stream& s, bool /*param_grads*/) {
  if (diff_src_ == nullptr) return;
  const int64_t n = static_cast<int64_t>(mask_.size());
  const float* mask = mask_.data();
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) diff_src_[i] = diff_dst_[i] * mask[i] * scale_;
}

std::unique_ptr<Layer> MakeDropout(const LayerBinding& b) { return std::make_unique<Dropout>(b); }

}  // namespace gan
