#ifndef GAN_CORE_SEQUENTIAL_H_
#define GAN_CORE_SEQUENTIAL_H_

// A Sequential network: the layers of a validated ModelSpec bound to buffers at one batch size.
// Everything (primitives, reorders, activation and gradient buffers) is created by Create;
// Forward and Backward only execute. Several networks (e.g. the discriminator at batch 2B for its
// own step and at batch B inside the generator's step) share one ParameterStore.
//
// Memory plan: activations stay in the layout the layer producing them computes in (blocked
// after a convolution) and are reordered only at a Flatten/Reshape and at the network's output.
// Element-wise layers run in place when nothing needs the value they overwrite; views share
// buffers; an inference network keeps only two activation buffers and a training network two
// gradient buffers, used alternately, since each is dead once the next layer has run.
// Mixed precision (options.compute = bf16): the tensors between layers stay fp32; convolutions
// and Dense layers convert what they multiply (see core/layers/layer.h) and take bf16 weights
// from a WeightCopies of the store, which Forward and Backward refresh first (a no-op unless the
// store changed since).
// Not thread-safe; each network owns its oneDNN stream.

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "core/layers/dropout.h"
#include "core/layers/layer.h"
#include "core/layers/weight_copies.h"
#include "core/model_shapes.h"
#include "core/parameter_store.h"

namespace gan {

struct NetworkOptions {
  int64_t batch = 1;
  Pass pass = Pass::kTraining;
  // Whether Backward computes the gradient of the network's input (the discriminator inside the
  // generator's step needs it; nobody needs it of the generator's noise).
  bool input_grad = false;
  // Buffers shared with other networks that never run at the same time as this one (the
  // discriminator's own step and its pass inside the generator's step): the network uses buffer k
  // of the pool when it is large enough and appends the ones the pool lacks. Not owned.
  std::vector<dnnl::memory>* shared_buffers = nullptr;
  // Data type convolutions and Dense layers multiply in: f32, or bf16 (mixed precision).
  dnnl::memory::data_type compute = dnnl::memory::data_type::f32;
  // With bf16: the weight copies of `store`, shared with the other networks of that store (the
  // trainer's); the network makes its own when null. Not owned.
  WeightCopies* weight_copies = nullptr;
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
  absl::Span<float> input() { return Buffer(input_); }
  absl::Span<float> output() { return Buffer(output_); }
  // Gradient of the loss with respect to the output: set it, then call Backward.
  absl::Span<float> output_grad() { return Buffer(output_grad_); }
  // Gradient with respect to the input after Backward (only with options.input_grad).
  absl::Span<float> input_grad() { return Buffer(input_grad_); }

  // Bytes of activation and gradient buffers the plan allocated (for tests and reports).
  int64_t buffer_bytes() const { return buffer_bytes_; }

  // Training-mode dropout layers, whose masks are filled before each Forward.
  const std::vector<Dropout*>& dropout_layers() const { return dropouts_; }

  // The convolution and matmul primitives of every layer with oneDNN's implementation names.
  std::vector<PrimitiveInfo> primitives() const;

  void Forward();
  // Backpropagates output_grad(); with `param_grads` also overwrites the parameter gradients.
  void Backward(bool param_grads);

 private:
  Sequential(std::vector<LayerShape> layers, const NetworkOptions& options);
  static absl::Span<float> Buffer(const dnnl::memory& m);
  absl::Status Plan(ParameterStore* store);

  std::vector<LayerShape> layers_;
  NetworkOptions options_;
  dnnl::stream stream_;
  std::vector<dnnl::memory> buffers_;            // raw storage the memories below point into
  std::vector<std::unique_ptr<Layer>> modules_;  // per entry; nullptr for views
  std::vector<Dropout*> dropouts_;
  std::unique_ptr<WeightCopies> own_weight_copies_;
  WeightCopies* weight_copies_ = nullptr;                   // with bf16
  dnnl::memory input_, output_, output_grad_, input_grad_;  // plain
  dnnl::memory last_activation_, last_gradient_;  // in the last layer's layout
  dnnl::reorder output_reorder_, output_grad_reorder_;  // empty when that layout is plain
  int64_t buffer_bytes_ = 0;
};

}  // namespace gan

#endif  // GAN_CORE_SEQUENTIAL_H_
