#ifndef GAN_CORE_MODEL_SHAPES_H_
#define GAN_CORE_MODEL_SHAPES_H_

// Shape inference and validation of a ModelSpec: the one place that decides whether a layer list
// is valid and what every layer's input, output and parameter shapes are. Nothing large is
// allocated before this has accepted a spec.

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "gan/v1/spec.pb.h"

namespace gan {

// Per-sample shape, batch excluded: {C, H, W} for images, {F} for feature vectors.
using Dims = std::vector<int64_t>;

int64_t NumElements(const Dims& dims);
std::string DimsToString(const Dims& dims);

// Caps on what a spec may ask for, checked before anything is allocated. The server exposes them
// as options; these defaults are what the training tools use.
struct ModelLimits {
  int max_layers = 256;
  // Per network (weights and biases; Adam's two moments and the gradient come on top, 4x in all).
  int64_t max_parameters = 64ll << 20;
  // Activations plus their gradients, per network at its batch size.
  int64_t max_activation_bytes = 2ll << 30;
  // Largest channel/unit count and spatial size of an image tensor.
  int64_t max_dimension = 1 << 16;
  // Largest feature vector (Flatten output, Dense input/output).
  int64_t max_features = 1 << 24;
  int max_kernel_size = 31;
  int max_stride = 16;
  int max_upsampling = 16;
};

struct ParamShape {
  std::string name;  // PyTorch state_dict name within the layer: "weight", "running_mean", ...
  Dims dims;         // PyTorch layout (Conv2D OIHW, Conv2DTranspose IOHW, Dense [out, in])
  bool trainable;    // false for BatchNorm running statistics
};

struct LayerShape {
  int index = 0;  // position in ModelSpec.layers
  gan::v1::LayerSpec spec;  // with defaults filled in (stride 1, padding, use_bias, BN eps/momentum)
  Dims input;
  Dims output;
  std::vector<ParamShape> params;
  // Keras padding for convolutions: {top, left} before and {bottom, right} after.
  int64_t pad_before[2] = {0, 0};
  int64_t pad_after[2] = {0, 0};
};

// Keras/TensorFlow 'same' padding for one spatial dimension of a convolution: the output size
// ceil(in / stride) and the padding before/after (the extra pixel after).
struct SamePadding {
  int64_t out, before, after;
};
SamePadding KerasSamePadding(int64_t in, int64_t kernel, int64_t stride);

// Infers and validates every layer of `spec` applied to per-sample `input` at `batch`.
// `model_name` ("generator"/"discriminator") prefixes field paths in errors, e.g.
// "discriminator.layers[2].conv2d.kernel_size: 5 is larger than the padded input 3x3".
// Returns INVALID_ARGUMENT for an invalid spec (including a field over its cap: layer count,
// kernel size, stride, ...) and RESOURCE_EXHAUSTED when the parameters or the activation memory
// exceed `limits`.
absl::StatusOr<std::vector<LayerShape>> InferModelShapes(const gan::v1::ModelSpec& spec,
                                                         const Dims& input,
                                                         absl::string_view model_name,
                                                         int64_t batch,
                                                         const ModelLimits& limits);

// Number of trainable parameters of the inferred layers.
int64_t CountParameters(const std::vector<LayerShape>& layers);

}  // namespace gan

#endif  // GAN_CORE_MODEL_SHAPES_H_
