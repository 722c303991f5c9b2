#ifndef GAN_CORE_PRESETS_H_
#define GAN_CORE_PRESETS_H_

// Named GAN configurations (docs/presets in the README):
//   seed        the seed's Keras discriminator and its DCGAN-lineage generator; D Adam(1e-5,
//               beta1 0.1), G Adam(2e-4, beta1 0.5), noise U(-1,1)^100, batch 32.
//   seed-dcgan  the same networks with Adam(2e-4, beta1 0.5) for both (the better setting).
//   tf-dcgan    the TensorFlow DCGAN tutorial; Adam(1e-4) for both, noise N(0,1)^100, batch 256.
// All use Adam beta2 0.999 and eps 1e-7 (Keras' defaults) and BatchNorm eps 1e-3, momentum 0.01
// (Keras' values in PyTorch's convention; core/framework_defaults.h), and initialize like Keras
// (initializer unset). ApplyPyTorchDefaults turns any of them into PyTorch's recipe. Images are
// 28x28x1.

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "gan/v1/spec.pb.h"

namespace gan {

std::vector<std::string> PresetNames();

// INVALID_ARGUMENT naming the known presets for an unknown name.
absl::StatusOr<gan::v1::GanSpec> PresetSpec(absl::string_view name);

// Replaces every activation entry of `model` except the model's last entry (its output
// activation, e.g. the discriminator's sigmoid or the generator's tanh) with `activation`.
// Returns the number of entries replaced.
int SetHiddenActivations(const gan::v1::Activation& activation, gan::v1::ModelSpec* model);

}  // namespace gan

#endif  // GAN_CORE_PRESETS_H_
