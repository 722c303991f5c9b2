#include "core/scorer.h"

#include <algorithm>

#include "absl/status/status.h"
#include "core/loss.h"
#include "io/status_macros.h"

namespace gan {

Scorer::Scorer(std::vector<LayerShape> discriminator, ParameterStore* params, int64_t chunk)
    : layers_(std::move(discriminator)),
      params_(params),
      chunk_(chunk),
      image_floats_(NumElements(layers_.front().input)) {}

absl::StatusOr<Sequential*> Scorer::NetworkFor(int64_t batch) {
  int64_t size = 1;
  while (size < batch && size < chunk_) size *= 2;
  size = std::min(size, chunk_);
  auto it = networks_.find(size);
  if (it == networks_.end()) {
    GAN_ASSIGN_OR_RETURN(std::unique_ptr<Sequential> net,
                         Sequential::Create(layers_, params_, {size, Pass::kInference, false}));
    it = networks_.emplace(size, std::move(net)).first;
  }
  return it->second.get();
}

absl::Status Scorer::Score(absl::Span<const float> images, int64_t n, absl::Span<float> logits,
                           absl::Span<float> probabilities) {
  if (n < 0 || static_cast<int64_t>(images.size()) != n * image_floats_ ||
      static_cast<int64_t>(logits.size()) < n || static_cast<int64_t>(probabilities.size()) < n) {
    return absl::InvalidArgumentError("Score: buffer sizes do not match the image count");
  }
  for (int64_t start = 0; start < n; start += chunk_) {
    const int64_t count = std::min(chunk_, n - start);
    GAN_ASSIGN_OR_RETURN(Sequential * net, NetworkFor(count));
    absl::Span<float> input = net->input();
    std::copy_n(images.data() + start * image_floats_, count * image_floats_, input.data());
    // Padding rows of a tail network are zeros; their outputs are discarded.
    std::fill(input.begin() + count * image_floats_, input.end(), 0.0f);
    net->Forward();
    const float* out = net->output().data();
    for (int64_t i = 0; i < count; ++i) {
      logits[start + i] = out[i];
      probabilities[start + i] = Sigmoid(out[i]);
    }
  }
  return absl::OkStatus();
}

}  // namespace gan
