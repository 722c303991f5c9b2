#include "proto/activation_names.h"

#include "absl/strings/str_cat.h"

namespace gan {

absl::StatusOr<gan::v1::Activation> ParseActivationName(absl::string_view name) {
  gan::v1::Activation activation;
  if (name == "leaky_relu") {
    activation.set_function(gan::v1::ACTIVATION_FUNCTION_LEAKY_RELU);
    activation.set_alpha(0.2f);
  } else if (name == "relu") {
    activation.set_function(gan::v1::ACTIVATION_FUNCTION_RELU);
  } else if (name == "tanh") {
    activation.set_function(gan::v1::ACTIVATION_FUNCTION_TANH);
  } else if (name == "sigmoid") {
    activation.set_function(gan::v1::ACTIVATION_FUNCTION_SIGMOID);
  } else if (name == "linear") {
    activation.set_function(gan::v1::ACTIVATION_FUNCTION_LINEAR);
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "unknown activation '", name, "' (leaky_relu, relu, tanh, sigmoid or linear)"));
  }
  return activation;
}

}  // namespace gan
