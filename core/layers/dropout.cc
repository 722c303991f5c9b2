#include "core/layers/dropout.h"

namespace gan {

Dropout::Dropout(const LayerContext& c)
    : rate_(c.shape->spec.dropout().rate()),
      scale_(1.0f / (1.0f - rate_)),
      index_(c.shape->index),
      desc_(c.src_desc),
      plain_mask_(c.batch * NumElements(c.shape->input), 1.0f),
      size_(static_cast<int64_t>(c.src_desc.get_size() / sizeof(float))) {
  const dnnl::memory::desc plain = PlainDesc(c.shape->input, c.batch);
  plain_mask_memory_ = dnnl::memory(plain, c.engine, plain_mask_.data());
  if (plain == desc_) {
    mask_memory_ = plain_mask_memory_;
  } else {
    mask_memory_ = dnnl::memory(desc_, c.engine);  // zero padding, if any, stays 0 after reorders
    mask_reorder_ = dnnl::reorder(plain_mask_memory_, mask_memory_);
  }
}

void Dropout::Bind(const LayerMemories& m) {
  src_ = static_cast<float*>(m.src.get_data_handle());
  dst_ = static_cast<float*>(m.dst.get_data_handle());
  if (m.diff_src) diff_src_ = static_cast<float*>(m.diff_src.get_data_handle());
  if (m.diff_dst) diff_dst_ = static_cast<float*>(m.diff_dst.get_data_handle());
}

void Dropout::Forward(dnnl::stream& s) {
  if (mask_reorder_) {
    mask_reorder_.execute(s, plain_mask_memory_, mask_memory_);
    s.wait();
  }
  const float* mask = static_cast<const float*>(mask_memory_.get_data_handle());
  const float scale = scale_;
  float* dst = dst_;
  const float* src = src_;
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < size_; ++i) dst[i] = src[i] * mask[i] * scale;
}

void Dropout::Backward(dnnl::stream& s, bool /*param_grads*/) {
  if (diff_src_ == nullptr) return;
  const float* mask = static_cast<const float*>(mask_memory_.get_data_handle());
  const float scale = scale_;
  float* diff_src = diff_src_;
  const float* diff_dst = diff_dst_;
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < size_; ++i) diff_src[i] = diff_dst[i] * mask[i] * scale;
}

std::unique_ptr<Layer> MakeDropout(const LayerContext& c) { return std::make_unique<Dropout>(c); }

}  // namespace gan
