#ifndef GAN_CORE_FRAMEWORK_DEFAULTS_H_
#define GAN_CORE_FRAMEWORK_DEFAULTS_H_

// Keras' and PyTorch's default hyperparameters, in PyTorch's conventions: the one home of these
// numbers. The presets follow Keras (core/presets.cc); an unset BatchNorm field takes PyTorch's
// value (core/model_shapes.cc); ApplyPyTorchDefaults switches a spec to PyTorch's recipe (the
// JobSpec's pytorch_defaults, gan-train --pytorch_defaults). The initializers themselves are in
// core/init.h.

#include "gan/v1/spec.pb.h"

namespace gan {

// BatchNormalization(epsilon=1e-3, momentum=0.99): Keras' momentum m is 1 - m here.
inline constexpr float kKerasBatchNormEpsilon = 1e-3f;
inline constexpr float kKerasBatchNormMomentum = 0.01f;
// keras.optimizers.Adam(epsilon=1e-7).
inline constexpr float kKerasAdamEpsilon = 1e-7f;

// nn.BatchNorm1d/2d(eps=1e-5, momentum=0.1).
inline constexpr float kPyTorchBatchNormEpsilon = 1e-5f;
inline constexpr float kPyTorchBatchNormMomentum = 0.1f;
// torch.optim.Adam(eps=1e-8).
inline constexpr float kPyTorchAdamEpsilon = 1e-8f;

// PyTorch's recipe for `spec`'s networks: initializer INITIALIZER_PYTORCH, every BatchNorm entry
// of both networks eps 1e-5 and momentum 0.1, both optimizers' epsilon 1e-8. Everything else
// (layers, learning rates, betas, noise, batch) stays.
void ApplyPyTorchDefaults(gan::v1::GanSpec* spec);

}  // namespace gan

#endif  // GAN_CORE_FRAMEWORK_DEFAULTS_H_
