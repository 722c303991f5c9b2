#include "core/gan_spec.h"

#include <cmath>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "io/status_macros.h"

namespace gan {
namespace {

absl::Status Invalid(absl::string_view path, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(path, ": ", what));
}

absl::Status ValidateAdam(absl::string_view path, const gan::v1::AdamSpec& adam) {
  if (!std::isfinite(adam.learning_rate()) || adam.learning_rate() <= 0) {
    return Invalid(absl::StrCat(path, ".learning_rate"), "must be a finite number > 0");
  }
  if (!(adam.beta1() >= 0 && adam.beta1() < 1)) {
    return Invalid(absl::StrCat(path, ".beta1"), "must be in [0, 1)");
  }
  if (!(adam.beta2() >= 0 && adam.beta2() < 1)) {
    return Invalid(absl::StrCat(path, ".beta2"), "must be in [0, 1)");
  }
  if (!std::isfinite(adam.epsilon()) || adam.epsilon() <= 0) {
    return Invalid(absl::StrCat(path, ".epsilon"), "must be a finite number > 0");
  }
  return absl::OkStatus();
}

bool IsSigmoid(const gan::v1::LayerSpec& layer) {
  return layer.has_activation() &&
         layer.activation().function() == gan::v1::ACTIVATION_FUNCTION_SIGMOID;
}

}  // namespace

Dims ImageDims(const gan::v1::ImageShape& image) {
  return {image.channels(), image.height(), image.width()};
}

absl::StatusOr<GanShapes> ValidateGanSpec(const gan::v1::GanSpec& spec, const GanLimits& limits) {
  if (spec.batch_size() < 1 || spec.batch_size() > limits.max_batch_size) {
    return Invalid("batch_size", absl::StrFormat("%d is out of range [1, %d]", spec.batch_size(),
                                                 limits.max_batch_size));
  }
  const gan::v1::NoiseSpec& noise = spec.noise();
  if (noise.distribution() == gan::v1::NOISE_DISTRIBUTION_UNSPECIFIED ||
      !gan::v1::NoiseDistribution_IsValid(noise.distribution())) {
    return Invalid("noise.distribution", "must be NOISE_DISTRIBUTION_UNIFORM or _NORMAL");
  }
  if (noise.dim() < 1 || noise.dim() > limits.max_noise_dim) {
    return Invalid("noise.dim", absl::StrFormat("%d is out of range [1, %d]", noise.dim(),
                                                limits.max_noise_dim));
  }
  const gan::v1::ImageShape& image = spec.image_shape();
  if (image.height() < 1 || image.height() > limits.max_image_side) {
    return Invalid("image_shape.height", absl::StrFormat("%d is out of range [1, %d]",
                                                         image.height(), limits.max_image_side));
  }
  if (image.width() < 1 || image.width() > limits.max_image_side) {
    return Invalid("image_shape.width", absl::StrFormat("%d is out of range [1, %d]", image.width(),
                                                        limits.max_image_side));
  }
  if (image.channels() < 1 || image.channels() > limits.max_image_channels) {
    return Invalid("image_shape.channels",
                   absl::StrFormat("must be in [1, %d]", limits.max_image_channels));
  }
  if (!gan::v1::Precision_IsValid(spec.precision())) {
    return Invalid("precision", absl::StrCat(spec.precision(),
                                             " is not PRECISION_UNSPECIFIED, PRECISION_FP32 or "
                                             "PRECISION_BF16"));
  }
  if (!gan::v1::Initializer_IsValid(spec.initializer())) {
    return Invalid("initializer", absl::StrCat(spec.initializer(),
                                               " is not INITIALIZER_UNSPECIFIED, INITIALIZER_KERAS "
                                               "or INITIALIZER_PYTORCH"));
  }
  GAN_RETURN_IF_ERROR(ValidateAdam("generator_optimizer", spec.generator_optimizer()));
  GAN_RETURN_IF_ERROR(ValidateAdam("discriminator_optimizer", spec.discriminator_optimizer()));

  GanShapes shapes;
  const Dims image_dims = ImageDims(image);
  GAN_ASSIGN_OR_RETURN(shapes.generator,
                       InferModelShapes(spec.generator(), {noise.dim()}, "generator",
                                        spec.batch_size(), limits.model));
  if (shapes.generator.back().output != image_dims) {
    return Invalid(
        "generator",
        absl::StrCat("output ", DimsToString(shapes.generator.back().output),
                     " does not match the image shape (C,H,W) ", DimsToString(image_dims)));
  }
  gan::v1::ModelSpec discriminator = spec.discriminator();
  if (discriminator.layers_size() > limits.model.max_layers) {
    return Invalid("discriminator.layers",
                   absl::StrFormat("%d layers exceed the limit of %d", discriminator.layers_size(),
                                   limits.model.max_layers));
  }
  if (discriminator.layers_size() > 1 && IsSigmoid(discriminator.layers().rbegin()[0])) {
    shapes.discriminator_ends_with_sigmoid = true;
    discriminator.mutable_layers()->RemoveLast();
  }
  // The discriminator's own step sees real and fake images together: batch 2B.
  GAN_ASSIGN_OR_RETURN(shapes.discriminator,
                       InferModelShapes(discriminator, image_dims, "discriminator",
                                        2 * int64_t{spec.batch_size()}, limits.model));
  if (shapes.discriminator.back().output != Dims{1}) {
    return Invalid("discriminator",
                   absl::StrCat("output ", DimsToString(shapes.discriminator.back().output),
                                " must be a single logit (1); end with Dense(1), optionally "
                                "followed by a sigmoid"));
  }
  return shapes;
}

}  // namespace gan
