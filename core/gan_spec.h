#ifndef GAN_CORE_GAN_SPEC_H_
#define GAN_CORE_GAN_SPEC_H_

// Validation of a whole GanSpec and the shapes of both networks. Every spec, whether a preset,
// a file or a client request, goes through ValidateGanSpec before anything is built.

#include <vector>

#include "absl/status/statusor.h"
#include "core/model_shapes.h"
#include "gan/v1/spec.pb.h"

namespace gan {

struct GanLimits {
  ModelLimits model;
  int max_batch_size = 4096;
  int max_noise_dim = 1 << 16;
  int max_image_side = 1024;
  int max_image_channels = 4;
};

struct GanShapes {
  std::vector<LayerShape> generator;
  // Without a trailing sigmoid entry, which is folded into the loss in training and applied when
  // scoring; its output is one logit.
  std::vector<LayerShape> discriminator;
  bool discriminator_ends_with_sigmoid = false;
};

// Image shape as the models see it: (C, H, W).
Dims ImageDims(const gan::v1::ImageShape& image);

// Checks every field (sizes, precision, optimizers, noise) and both networks: the generator maps
// (noise.dim) to the image shape, the discriminator maps the image shape to one logit.
// INVALID_ARGUMENT with the field path ("discriminator.layers[4]: ...",
// "generator_optimizer.learning_rate: ...") or RESOURCE_EXHAUSTED over a limit. Whether this CPU
// can run the precision is CheckPrecisionSupported's question (core/precision.h).
absl::StatusOr<GanShapes> ValidateGanSpec(const gan::v1::GanSpec& spec, const GanLimits& limits);

}  // namespace gan

#endif  // GAN_CORE_GAN_SPEC_H_
