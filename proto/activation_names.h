#ifndef GAN_PROTO_ACTIVATION_NAMES_H_
#define GAN_PROTO_ACTIVATION_NAMES_H_

// The one parser of activation names given on command lines ("leaky_relu", "relu", "tanh",
// "sigmoid", "linear"), shared by gan-train and ganctl. "leaky_relu" means slope 0.2 (the seed
// discriminator's).

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "gan/v1/spec.pb.h"

namespace gan {

// INVALID_ARGUMENT listing the known names for anything else.
absl::StatusOr<gan::v1::Activation> ParseActivationName(absl::string_view name);

}  // namespace gan

#endif  // GAN_PROTO_ACTIVATION_NAMES_H_
