#include "core/model_shapes.h"

#include <cmath>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "core/framework_defaults.h"

namespace gan {
namespace {

using gan::v1::LayerSpec;

absl::Status Invalid(const std::string& path, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(path, ": ", what));
}

// Checks lo <= value <= hi for an integer field.
absl::Status CheckRange(const std::string& path, int64_t value, int64_t lo, int64_t hi) {
  if (value < lo || value > hi) {
    return Invalid(path, absl::StrFormat("%d is out of range [%d, %d]", value, lo, hi));
  }
  return absl::OkStatus();
}

absl::Status RequireImage(const std::string& path, const Dims& in, absl::string_view layer) {
  if (in.size() != 3) {
    return Invalid(path, absl::StrCat(layer, " needs a (C,H,W) input but gets ", DimsToString(in),
                                      "; add a Reshape before it"));
  }
  return absl::OkStatus();
}

// Fills defaults and checks the shared fields of Conv2D and Conv2DTranspose.
template <typename ConvSpec>
absl::Status NormalizeConv(const std::string& path, const ModelLimits& limits, ConvSpec* conv) {
  if (conv->stride() == 0) conv->set_stride(1);
  if (conv->padding() == gan::v1::PADDING_UNSPECIFIED) conv->set_padding(gan::v1::PADDING_VALID);
  if (!conv->has_use_bias()) conv->set_use_bias(true);
  if (!gan::v1::Padding_IsValid(conv->padding()))
    return Invalid(path + ".padding", "unknown value");
  if (auto s = CheckRange(path + ".filters", conv->filters(), 1, limits.max_dimension); !s.ok()) {
    return s;
  }
  if (auto s = CheckRange(path + ".kernel_size", conv->kernel_size(), 1, limits.max_kernel_size);
      !s.ok()) {
    return s;
  }
  return CheckRange(path + ".stride", conv->stride(), 1, limits.max_stride);
}

absl::Status InferConv2D(const std::string& path, const ModelLimits& limits, LayerShape* layer) {
  gan::v1::Conv2D* conv = layer->spec.mutable_conv2d();
  const std::string field = path + ".conv2d";
  if (auto s = NormalizeConv(field, limits, conv); !s.ok()) return s;
  if (auto s = RequireImage(path, layer->input, "Conv2D"); !s.ok()) return s;
  const int64_t c = layer->input[0], k = conv->kernel_size(), stride = conv->stride();
  Dims out = {conv->filters(), 0, 0};
  for (int d = 0; d < 2; ++d) {
    const int64_t in = layer->input[1 + d];
    if (conv->padding() == gan::v1::PADDING_SAME) {
      const SamePadding p = KerasSamePadding(in, k, stride);
      out[1 + d] = p.out;
      layer->pad_before[d] = p.before;
      layer->pad_after[d] = p.after;
    } else {
      if (k > in) {
        return Invalid(field + ".kernel_size",
                       absl::StrFormat("%d is larger than the input %dx%d with padding 'valid'", k,
                                       layer->input[1], layer->input[2]));
      }
      out[1 + d] = (in - k) / stride + 1;
    }
  }
  layer->output = out;
  layer->params.push_back({"weight", {conv->filters(), c, k, k}, true});
  if (conv->use_bias()) layer->params.push_back({"bias", {conv->filters()}, true});
  return absl::OkStatus();
}

absl::Status InferConv2DTranspose(const std::string& path, const ModelLimits& limits,
                                  LayerShape* layer) {
  gan::v1::Conv2DTranspose* conv = layer->spec.mutable_conv2d_transpose();
  const std::string field = path + ".conv2d_transpose";
  if (auto s = NormalizeConv(field, limits, conv); !s.ok()) return s;
  if (auto s = RequireImage(path, layer->input, "Conv2DTranspose"); !s.ok()) return s;
  const int64_t c = layer->input[0], k = conv->kernel_size(), stride = conv->stride();
  Dims out = {conv->filters(), 0, 0};
  for (int d = 0; d < 2; ++d) {
    const int64_t in = layer->input[1 + d];
    if (conv->padding() == gan::v1::PADDING_SAME) {
      // TensorFlow: out = in * stride, cropping the full (in - 1) * stride + k output the way a
      // 'same' forward convolution from out to in would pad.
      out[1 + d] = in * stride;
      const SamePadding p = KerasSamePadding(out[1 + d], k, stride);
      layer->pad_before[d] = p.before;
      layer->pad_after[d] = (in - 1) * stride + k - out[1 + d] - p.before;
      if (layer->pad_after[d] < 0) {
        return Invalid(field + ".kernel_size",
                       absl::StrFormat("%d is smaller than the stride %d; padding 'same' needs "
                                       "kernel_size >= stride",
                                       k, stride));
      }
    } else {
      if (k < stride) {
        return Invalid(field + ".kernel_size",
                       absl::StrFormat("%d is smaller than the stride %d; padding 'valid' needs "
                                       "kernel_size >= stride",
                                       k, stride));
      }
      out[1 + d] = (in - 1) * stride + k;
    }
  }
  layer->output = out;
  layer->params.push_back({"weight", {c, conv->filters(), k, k}, true});
  if (conv->use_bias()) layer->params.push_back({"bias", {conv->filters()}, true});
  return absl::OkStatus();
}

absl::Status InferDense(const std::string& path, const ModelLimits& limits, LayerShape* layer) {
  gan::v1::Dense* dense = layer->spec.mutable_dense();
  if (!dense->has_use_bias()) dense->set_use_bias(true);
  if (auto s = CheckRange(path + ".dense.units", dense->units(), 1, limits.max_features); !s.ok()) {
    return s;
  }
  if (layer->input.size() != 1) {
    return Invalid(path, absl::StrCat("Dense needs a (features) input but gets ",
                                      DimsToString(layer->input), "; add a Flatten before it"));
  }
  layer->output = {dense->units()};
  layer->params.push_back({"weight", {dense->units(), layer->input[0]}, true});
  if (dense->use_bias()) layer->params.push_back({"bias", {dense->units()}, true});
  return absl::OkStatus();
}

absl::Status InferBatchNorm(const std::string& path, LayerShape* layer) {
  gan::v1::BatchNorm* bn = layer->spec.mutable_batch_norm();
  if (!bn->has_epsilon()) bn->set_epsilon(kPyTorchBatchNormEpsilon);
  if (!bn->has_momentum()) bn->set_momentum(kPyTorchBatchNormMomentum);
  if (!std::isfinite(bn->epsilon()) || bn->epsilon() <= 0) {
    return Invalid(path + ".batch_norm.epsilon", "must be a finite number > 0");
  }
  if (!(bn->momentum() >= 0 && bn->momentum() <= 1)) {
    return Invalid(path + ".batch_norm.momentum", "must be in [0, 1]");
  }
  if (layer->input.size() != 1 && layer->input.size() != 3) {
    return Invalid(path, absl::StrCat("BatchNorm needs a (features) or (C,H,W) input but gets ",
                                      DimsToString(layer->input)));
  }
  const int64_t c = layer->input[0];
  layer->output = layer->input;
  layer->params = {{"weight", {c}, true},
                   {"bias", {c}, true},
                   {"running_mean", {c}, false},
                   {"running_var", {c}, false}};
  return absl::OkStatus();
}

absl::Status InferActivation(const std::string& path, LayerShape* layer) {
  const gan::v1::Activation& act = layer->spec.activation();
  if (act.function() == gan::v1::ACTIVATION_FUNCTION_UNSPECIFIED ||
      !gan::v1::ActivationFunction_IsValid(act.function())) {
    return Invalid(path + ".activation.function", "must name an activation function");
  }
  if (act.function() == gan::v1::ACTIVATION_FUNCTION_LEAKY_RELU &&
      !(std::isfinite(act.alpha()) && act.alpha() >= 0)) {
    return Invalid(path + ".activation.alpha", "must be a finite number >= 0");
  }
  layer->output = layer->input;
  return absl::OkStatus();
}

absl::Status InferDropout(const std::string& path, LayerShape* layer) {
  const float rate = layer->spec.dropout().rate();
  if (!(rate >= 0 && rate < 1)) return Invalid(path + ".dropout.rate", "must be in [0, 1)");
  layer->output = layer->input;
  return absl::OkStatus();
}

absl::Status InferUpSampling2D(const std::string& path, const ModelLimits& limits,
                               LayerShape* layer) {
  const int64_t size = layer->spec.up_sampling2d().size();
  if (auto s = CheckRange(path + ".up_sampling2d.size", size, 1, limits.max_upsampling); !s.ok()) {
    return s;
  }
  if (auto s = RequireImage(path, layer->input, "UpSampling2D"); !s.ok()) return s;
  layer->output = {layer->input[0], layer->input[1] * size, layer->input[2] * size};
  return absl::OkStatus();
}

absl::Status InferReshape(const std::string& path, const ModelLimits& limits, LayerShape* layer) {
  const gan::v1::Reshape& r = layer->spec.reshape();
  const std::string field = path + ".reshape";
  if (auto s = CheckRange(field + ".channels", r.channels(), 1, limits.max_dimension); !s.ok()) {
    return s;
  }
  if (auto s = CheckRange(field + ".height", r.height(), 1, limits.max_dimension); !s.ok()) {
    return s;
  }
  if (auto s = CheckRange(field + ".width", r.width(), 1, limits.max_dimension); !s.ok()) {
    return s;
  }
  layer->output = {r.channels(), r.height(), r.width()};
  if (NumElements(layer->output) != NumElements(layer->input)) {
    return Invalid(field,
                   absl::StrCat("target ", DimsToString(layer->output), " has ",
                                NumElements(layer->output), " elements but the input ",
                                DimsToString(layer->input), " has ", NumElements(layer->input)));
  }
  return absl::OkStatus();
}

absl::Status InferLayer(const std::string& path, const ModelLimits& limits, LayerShape* layer) {
  switch (layer->spec.layer_case()) {
    case LayerSpec::kConv2D:
      return InferConv2D(path, limits, layer);
    case LayerSpec::kConv2DTranspose:
      return InferConv2DTranspose(path, limits, layer);
    case LayerSpec::kDense:
      return InferDense(path, limits, layer);
    case LayerSpec::kBatchNorm:
      return InferBatchNorm(path, layer);
    case LayerSpec::kActivation:
      return InferActivation(path, layer);
    case LayerSpec::kDropout:
      return InferDropout(path, layer);
    case LayerSpec::kUpSampling2D:
      return InferUpSampling2D(path, limits, layer);
    case LayerSpec::kFlatten:
      layer->output = {NumElements(layer->input)};
      return absl::OkStatus();
    case LayerSpec::kReshape:
      return InferReshape(path, limits, layer);
    case LayerSpec::LAYER_NOT_SET:
      break;
  }
  return Invalid(path, "no layer type is set");
}

}  // namespace

int64_t NumElements(const Dims& dims) {
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  return n;
}

std::string DimsToString(const Dims& dims) {
  return absl::StrCat("(", absl::StrJoin(dims, ","), ")");
}

SamePadding KerasSamePadding(int64_t in, int64_t kernel, int64_t stride) {
  SamePadding p;
  p.out = (in + stride - 1) / stride;
  const int64_t total = std::max<int64_t>((p.out - 1) * stride + kernel - in, 0);
  p.before = total / 2;
  p.after = total - p.before;
  return p;
}

absl::StatusOr<std::vector<LayerShape>> InferModelShapes(const gan::v1::ModelSpec& spec,
                                                         const Dims& input,
                                                         absl::string_view model_name,
                                                         int64_t batch, const ModelLimits& limits) {
  const std::string name(model_name);
  if (spec.layers().empty()) return Invalid(name + ".layers", "the model has no layers");
  if (spec.layers_size() > limits.max_layers) {
    return Invalid(name + ".layers", absl::StrFormat("%d layers exceed the limit of %d",
                                                     spec.layers_size(), limits.max_layers));
  }
  std::vector<LayerShape> layers;
  layers.reserve(spec.layers_size());
  Dims current = input;
  // Activation memory estimate: each layer's output and its gradient, plus the input, in f32.
  double activation_bytes = 2.0 * NumElements(input) * batch * sizeof(float);
  double parameters = 0;
  for (int i = 0; i < spec.layers_size(); ++i) {
    const std::string path = absl::StrFormat("%s.layers[%d]", name, i);
    LayerShape layer;
    layer.index = i;
    layer.spec = spec.layers(i);
    layer.input = current;
    if (auto s = InferLayer(path, limits, &layer); !s.ok()) return s;
    const int64_t max_dim = layer.output.size() == 1 ? limits.max_features : limits.max_dimension;
    for (int64_t d : layer.output) {
      if (d < 1 || d > max_dim) {
        return Invalid(path, absl::StrFormat("output shape %s is outside [1, %d] in some dimension",
                                             DimsToString(layer.output), max_dim));
      }
    }
    for (const ParamShape& p : layer.params) {
      double n = 1;
      for (int64_t d : p.dims) n *= static_cast<double>(d);
      if (p.trainable) parameters += n;
    }
    if (parameters > static_cast<double>(limits.max_parameters)) {
      return absl::ResourceExhaustedError(absl::StrFormat(
          "%s: the model needs more than the limit of %d parameters (at least %.0f)", path,
          limits.max_parameters, parameters));
    }
    activation_bytes += 2.0 * static_cast<double>(NumElements(layer.output)) *
                        static_cast<double>(batch) * sizeof(float);
    if (activation_bytes > static_cast<double>(limits.max_activation_bytes)) {
      return absl::ResourceExhaustedError(
          absl::StrFormat("%s: activations at batch %d need more than the limit of %d bytes", path,
                          batch, limits.max_activation_bytes));
    }
    current = layer.output;
    layers.push_back(std::move(layer));
  }
  return layers;
}

int64_t CountParameters(const std::vector<LayerShape>& layers) {
  int64_t n = 0;
  for (const LayerShape& layer : layers) {
    for (const ParamShape& p : layer.params) {
      if (p.trainable) n += NumElements(p.dims);
    }
  }
  return n;
}

}  // namespace gan
