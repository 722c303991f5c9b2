#ifndef GAN_CORE_LAYERS_DROPOUT_H_
#define GAN_CORE_LAYERS_DROPOUT_H_

#include <memory>
#include <vector>

#include "absl/types/span.h"
#include "core/layers/layer.h"

namespace gan {

// Inverted dropout in training (at inference it is a view): y = x * mask / (1 - rate), with a
// 0/1 mask that the owner fills before every Forward (from the step's random stream, or from
// outside in tests) in plain (N, C, H, W) / (N, F) order; the layer reorders it into the data's
// layout. oneDNN 2.6 has no dropout primitive; the product is an element-wise loop. Runs in
// place when the network allows it.
class Dropout : public Layer {
 public:
  explicit Dropout(const LayerContext& c);

  float rate() const { return rate_; }
  int layer_index() const { return index_; }
  absl::Span<float> mask() { return absl::MakeSpan(plain_mask_); }

  dnnl::memory::desc dst_desc() const override { return desc_; }
  bool can_run_in_place() const override { return true; }
  void Bind(const LayerMemories& m) override;
  void Forward(dnnl::stream& s) override;
  void Backward(dnnl::stream& s, bool param_grads) override;

 private:
  float rate_, scale_;
  int index_;
  dnnl::memory::desc desc_;
  std::vector<float> plain_mask_;
  dnnl::memory plain_mask_memory_, mask_memory_;
  dnnl::reorder mask_reorder_;  // empty when the data is plain
  int64_t size_;                // floats in the data's layout (padding included)
  float *src_ = nullptr, *dst_ = nullptr, *diff_src_ = nullptr, *diff_dst_ = nullptr;
};

std::unique_ptr<Layer> MakeDropout(const LayerContext& c);

}  // namespace gan

#endif  // GAN_CORE_LAYERS_DROPOUT_H_
