#ifndef GAN_CORE_LAYERS_DROPOUT_H_
#define GAN_CORE_LAYERS_DROPOUT_H_

#include <memory>
#include <vector>

#include "absl/types/span.h"
#include "core/layers/layer.h"

namespace gan {

// Inverted dropout in training (at inference it is a view): y = x * mask / (1 - rate), with a
// 0/1 mask of the input's shape that the owner fills before every Forward (from the step's random
// stream, or from outside in tests). oneDNN 2.6 has no dropout primitive; this is element-wise.
class Dropout : public Layer {
 public:
  explicit Dropout(const LayerBinding& b);

  float rate() const { return rate_; }
  int64_t layer_index() const { return index_; }
  absl::Span<float> mask() { return absl::MakeSpan(mask_); }

  void Forward(dnnl::stream& s) override;
  void Backward(dnnl::stream& s, bool param_grads) override;

 private:
  float rate_, scale_;
  int index_;
  float *src_, *dst_, *diff_src_, *diff_dst_;
  std::vector<float> mask_;
};

std::unique_ptr<Layer> MakeDropout(const LayerBinding& b);

}  // namespace gan

#endif  // GAN_CORE_LAYERS_DROPOUT_H_
