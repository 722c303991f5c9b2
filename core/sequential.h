#ifndef GAN_CORE_SEQUENTIAL_H_
#define GAN_CORE_SEQUENTIAL_H_

// A Sequential network: the layers of a validated ModelSpec bound to buffers at one batch size.
// Everything (primitives, reorders, activation and gradient buffers) is created by Create;
// Forward and Backward only execute. Several networks (e.g. the discriminator at batch 2B for its
// own step and at batch B inside the generator's step) share one ParameterStore.
// Not thread-safe; each network owns its oneDNN stream.

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "core/layers/dropout.h"
#include "core/layers/layer.h"
#include "core/model_shapes.h"
#include "core/parameter_store.h"

namespace gan {

struct NetworkOptions {
  int64_t batch = 1;
  Pass pass = Pass::kTraining;
  // Whether Backward computes the gradient of the network's input (the discriminator inside the
  // generator's step needs it; nobody needs it of the generator's noise).
  bool input_grad = false;
};

class Sequential {
 public:
  // `layers` from InferModelShapes at a batch >= options.batch; `store` outlives the network.
  static absl::StatusOr<std::unique_ptr<Sequential>> Create(std::vector<LayerShape> layers,
                                                            ParameterStore* store,
                                                            const NetworkOptions& options);

  int64_t batch() const { return options_.batch; }
  const std::vector<LayerShape>& layers() const { return layers_; }

  // Input (batch, per-sample input) and output (batch, per-sample output), plain row-major.
  absl::Span<float> input() { return Buffer(activations_.front()); }
  absl::Span<float> output() { return Buffer(activations_.back()); }
  // Output of entry i (after its activation when i is an activation entry).
  absl::Span<float> activation(int i) { return Buffer(activations_[i + 1]); }
  // Gradient of the loss with respect to the output: set it, then call Backward.
  absl::Span<float> output_grad() { return Buffer(gradients_.back()); }
  // Gradient with respect to the input after Backward (only with options.input_grad).
  absl::Span<float> input_grad() { return Buffer(gradients_.front()); }

  // Training-mode dropout layers, whose masks are filled before each Forward.
  const std::vector<Dropout*>& dropout_layers() const { return dropouts_; }

  void Forward();
  // Backpropagates output_grad(); with `param_grads` also overwrites the parameter gradients.
  void Backward(bool param_grads);

 private:
  Sequential(std::vector<LayerShape> layers, const NetworkOptions& options);
  static absl::Span<float> Buffer(const dnnl::memory& m);

  std::vector<LayerShape> layers_;
  NetworkOptions options_;
  dnnl::stream stream_;
  std::vector<dnnl::memory> activations_;  // [0] input, [i + 1] output of entry i
  std::vector<dnnl::memory> gradients_;    // same indexing; empty memories where unneeded
  std::vector<std::unique_ptr<Layer>> modules_;  // per entry; nullptr for views
  std::vector<Dropout*> dropouts_;
};

}  // namespace gan

#endif  // GAN_CORE_SEQUENTIAL_H_
