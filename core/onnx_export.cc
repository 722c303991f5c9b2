#include "core/onnx_export.h"

#include <exception>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "core/checkpoint.h"
#include "core/model_shapes.h"
#include "io/status_macros.h"
#include "onnx/checker.h"

namespace gan {
namespace {

using gan::v1::LayerSpec;

constexpr char kImages[] = "images";
constexpr char kNoise[] = "noise";
constexpr char kLogit[] = "logit";
constexpr char kProbability[] = "probability";

void SetShape(const std::vector<int64_t>& per_sample, onnx::ValueInfoProto* value) {
  onnx::TypeProto::Tensor* tensor = value->mutable_type()->mutable_tensor_type();
  tensor->set_elem_type(onnx::TensorProto::FLOAT);
  onnx::TensorShapeProto* shape = tensor->mutable_shape();
  shape->add_dim()->set_dim_param(kOnnxBatchDimension);
  for (int64_t d : per_sample) shape->add_dim()->set_dim_value(d);
}

// Appends nodes and initializers to one graph; every tensor name is unique.
class GraphBuilder {
 public:
  explicit GraphBuilder(onnx::GraphProto* graph) : graph_(graph) {}

  // A node `name` with one output, also named `name`.
  onnx::NodeProto* Node(const std::string& op, const std::vector<std::string>& inputs,
                        const std::string& name) {
    onnx::NodeProto* node = graph_->add_node();
    node->set_op_type(op);
    node->set_name(name);
    for (const std::string& input : inputs) node->add_input(input);
    node->add_output(name);
    return node;
  }

  // A float initializer holding `raw` (little-endian float32 values, as in safetensors).
  void FloatInitializer(const std::string& name, const std::vector<int64_t>& dims,
                        std::string raw) {
    onnx::TensorProto* tensor = graph_->add_initializer();
    tensor->set_name(name);
    tensor->set_data_type(onnx::TensorProto::FLOAT);
    for (int64_t d : dims) tensor->add_dims(d);
    tensor->set_raw_data(std::move(raw));
  }

  void FloatInitializer(const std::string& name, const std::vector<float>& values) {
    onnx::TensorProto* tensor = graph_->add_initializer();
    tensor->set_name(name);
    tensor->set_data_type(onnx::TensorProto::FLOAT);
    tensor->add_dims(static_cast<int64_t>(values.size()));
    for (float v : values) tensor->add_float_data(v);
  }

  void Int64Initializer(const std::string& name, const std::vector<int64_t>& values) {
    onnx::TensorProto* tensor = graph_->add_initializer();
    tensor->set_name(name);
    tensor->set_data_type(onnx::TensorProto::INT64);
    tensor->add_dims(static_cast<int64_t>(values.size()));
    for (int64_t v : values) tensor->add_int64_data(v);
  }

 private:
  onnx::GraphProto* graph_;
};

void IntsAttribute(const std::string& name, const std::vector<int64_t>& values,
                   onnx::NodeProto* node) {
  onnx::AttributeProto* attribute = node->add_attribute();
  attribute->set_name(name);
  attribute->set_type(onnx::AttributeProto::INTS);
  for (int64_t v : values) attribute->add_ints(v);
}

void IntAttribute(const std::string& name, int64_t value, onnx::NodeProto* node) {
  onnx::AttributeProto* attribute = node->add_attribute();
  attribute->set_name(name);
  attribute->set_type(onnx::AttributeProto::INT);
  attribute->set_i(value);
}

void FloatAttribute(const std::string& name, float value, onnx::NodeProto* node) {
  onnx::AttributeProto* attribute = node->add_attribute();
  attribute->set_name(name);
  attribute->set_type(onnx::AttributeProto::FLOAT);
  attribute->set_f(value);
}

void StringAttribute(const std::string& name, const std::string& value, onnx::NodeProto* node) {
  onnx::AttributeProto* attribute = node->add_attribute();
  attribute->set_name(name);
  attribute->set_type(onnx::AttributeProto::STRING);
  attribute->set_s(value);
}

// Emits one network's layers, reading their weights from a SafeTensors.
class NetworkEmitter {
 public:
  NetworkEmitter(const SafeTensors& weights, std::string network, GraphBuilder* graph)
      : weights_(weights), network_(std::move(network)), graph_(graph) {}

  // Appends `layer` applied to tensor `x`; returns the name of its output (`x` itself for a
  // layer that is the identity at inference).
  absl::StatusOr<std::string> Layer(const LayerShape& layer, const std::string& x) {
    const std::string name = absl::StrCat(network_, ".", layer.index);
    const LayerSpec& spec = layer.spec;
    switch (spec.layer_case()) {
      case LayerSpec::kConv2D: {
        const gan::v1::Conv2D& conv = spec.conv2d();
        GAN_ASSIGN_OR_RETURN(std::vector<std::string> inputs, Params(layer, x));
        onnx::NodeProto* node = graph_->Node("Conv", inputs, name);
        ConvAttributes(layer, conv.kernel_size(), conv.stride(), node);
        return name;
      }
      case LayerSpec::kConv2DTranspose: {
        // The pads crop the full (in - 1) * stride + k output: TensorFlow's 'same' cropping, or
        // nothing for 'valid' (core/model_shapes.cc computes both).
        const gan::v1::Conv2DTranspose& conv = spec.conv2d_transpose();
        GAN_ASSIGN_OR_RETURN(std::vector<std::string> inputs, Params(layer, x));
        onnx::NodeProto* node = graph_->Node("ConvTranspose", inputs, name);
        ConvAttributes(layer, conv.kernel_size(), conv.stride(), node);
        return name;
      }
      case LayerSpec::kDense: {
        GAN_ASSIGN_OR_RETURN(std::vector<std::string> inputs, Params(layer, x));
        onnx::NodeProto* node = graph_->Node("Gemm", inputs, name);
        IntAttribute("transB", 1, node);  // weight [out, in]
        return name;
      }
      case LayerSpec::kBatchNorm: {
        // Inputs X, scale, B, mean, var: the order of the layer's params (model_shapes.cc).
        GAN_ASSIGN_OR_RETURN(std::vector<std::string> inputs, Params(layer, x));
        onnx::NodeProto* node = graph_->Node("BatchNormalization", inputs, name);
        FloatAttribute("epsilon", spec.batch_norm().epsilon(), node);
        // ONNX's momentum weighs the old running value (Keras' convention); unused at inference.
        FloatAttribute("momentum", 1.0f - spec.batch_norm().momentum(), node);
        return name;
      }
      case LayerSpec::kActivation:
        return Activation(spec.activation(), x, name);
      case LayerSpec::kDropout:
        return x;
      case LayerSpec::kUpSampling2D: {
        const float size = static_cast<float>(spec.up_sampling2d().size());
        const std::string scales = name + ".scales";
        graph_->FloatInitializer(scales, {1.0f, 1.0f, size, size});
        onnx::NodeProto* node = graph_->Node("Resize", {x, "", scales}, name);
        StringAttribute("mode", "nearest", node);
        StringAttribute("coordinate_transformation_mode", "asymmetric", node);
        StringAttribute("nearest_mode", "floor", node);
        return name;
      }
      case LayerSpec::kFlatten: {
        onnx::NodeProto* node = graph_->Node("Flatten", {x}, name);
        IntAttribute("axis", 1, node);
        return name;
      }
      case LayerSpec::kReshape: {
        const std::string shape = name + ".shape";
        // 0 copies the batch dimension, so shape inference keeps it symbolic.
        graph_->Int64Initializer(shape, {0, layer.output[0], layer.output[1], layer.output[2]});
        graph_->Node("Reshape", {x, shape}, name);
        return name;
      }
      case LayerSpec::LAYER_NOT_SET:
        break;
    }
    return absl::InvalidArgumentError(absl::StrCat(name, ": no layer type is set"));
  }

 private:
  // `x` followed by the layer's parameters as initializers, in the layer's order.
  absl::StatusOr<std::vector<std::string>> Params(const LayerShape& layer, const std::string& x) {
    std::vector<std::string> inputs = {x};
    for (const ParamShape& param : layer.params) {
      const std::string name = absl::StrCat(network_, ".", layer.index, ".", param.name);
      auto it = weights_.tensors.find(name);
      if (it == weights_.tensors.end()) {
        return absl::InvalidArgumentError(absl::StrCat("tensor ", name, " is missing"));
      }
      const Tensor& tensor = it->second;
      if (tensor.dtype != DType::kF32) {
        return absl::InvalidArgumentError(absl::StrCat("tensor ", name, " has dtype ",
                                                       DTypeName(tensor.dtype), ", expected F32"));
      }
      if (tensor.shape != param.dims) {
        return absl::InvalidArgumentError(absl::StrCat("tensor ", name, " has shape ",
                                                       DimsToString(tensor.shape), ", expected ",
                                                       DimsToString(param.dims)));
      }
      graph_->FloatInitializer(name, param.dims, tensor.bytes);
      inputs.push_back(name);
    }
    return inputs;
  }

  static void ConvAttributes(const LayerShape& layer, int64_t kernel, int64_t stride,
                             onnx::NodeProto* node) {
    IntsAttribute("kernel_shape", {kernel, kernel}, node);
    IntsAttribute("strides", {stride, stride}, node);
    IntsAttribute("dilations", {1, 1}, node);
    // [top, left, bottom, right].
    IntsAttribute(
        "pads", {layer.pad_before[0], layer.pad_before[1], layer.pad_after[0], layer.pad_after[1]},
        node);
    IntAttribute("group", 1, node);
  }

  absl::StatusOr<std::string> Activation(const gan::v1::Activation& activation,
                                         const std::string& x, const std::string& name) {
    switch (activation.function()) {
      case gan::v1::ACTIVATION_FUNCTION_LINEAR:
        return x;
      case gan::v1::ACTIVATION_FUNCTION_RELU:
        graph_->Node("Relu", {x}, name);
        return name;
      case gan::v1::ACTIVATION_FUNCTION_LEAKY_RELU:
        FloatAttribute("alpha", activation.alpha(), graph_->Node("LeakyRelu", {x}, name));
        return name;
      case gan::v1::ACTIVATION_FUNCTION_SIGMOID:
        graph_->Node("Sigmoid", {x}, name);
        return name;
      case gan::v1::ACTIVATION_FUNCTION_TANH:
        graph_->Node("Tanh", {x}, name);
        return name;
      default:
        break;
    }
    return absl::InvalidArgumentError(absl::StrCat(name, ": unknown activation function"));
  }

  const SafeTensors& weights_;
  const std::string network_;
  GraphBuilder* graph_;
};

// Gives the tensor `current` the graph output name `output`: renames the output of the node that
// produces it, or adds an Identity when a graph input is the output.
void NameOutput(const std::string& current, const std::string& output, onnx::GraphProto* graph) {
  for (onnx::NodeProto& node : *graph->mutable_node()) {
    if (node.output_size() == 1 && node.output(0) == current) {
      node.set_output(0, output);
      return;
    }
  }
  onnx::NodeProto* node = graph->add_node();
  node->set_op_type("Identity");
  node->set_name(output);
  node->add_input(current);
  node->add_output(output);
}

void AddMetadata(const std::string& key, const std::string& value, onnx::ModelProto* model) {
  onnx::StringStringEntryProto* entry = model->add_metadata_props();
  entry->set_key(key);
  entry->set_value(value);
}

}  // namespace

absl::string_view OnnxNetworkName(OnnxNetwork network) {
  return network == OnnxNetwork::kGenerator ? "generator" : "discriminator";
}

absl::StatusOr<onnx::ModelProto> ExportOnnx(const gan::v1::GanSpec& spec,
                                            const SafeTensors& weights, OnnxNetwork network,
                                            const GanLimits& limits) {
  // The exported model's batch is dynamic: validate the networks at batch 1.
  gan::v1::GanSpec one = spec;
  one.set_batch_size(1);
  GAN_ASSIGN_OR_RETURN(GanShapes shapes, ValidateGanSpec(one, limits));
  const std::string name(OnnxNetworkName(network));
  const gan::v1::ImageShape& image = spec.image_shape();
  const std::vector<int64_t> nhwc = {image.height(), image.width(), image.channels()};

  onnx::ModelProto model;
  model.set_ir_version(onnx::IR_VERSION);
  onnx::OperatorSetIdProto* opset = model.add_opset_import();
  opset->set_domain("");
  opset->set_version(kOnnxOpsetVersion);
  model.set_producer_name("gan-server");
  model.set_producer_version("1");
  model.set_model_version(1);
  onnx::GraphProto* graph = model.mutable_graph();
  graph->set_name(absl::StrCat("gan_", name));
  GraphBuilder builder(graph);
  NetworkEmitter emitter(weights, name, &builder);

  std::string current;
  const std::vector<LayerShape>* layers = nullptr;
  if (network == OnnxNetwork::kDiscriminator) {
    model.set_doc_string(
        "GAN discriminator: images [N, H, W, C] float in [-1, 1] (NHWC) -> logit [N, 1] and "
        "probability [N, 1] (sigmoid of the logit). BatchNorm uses running statistics; Dropout "
        "is omitted.");
    SetShape(nhwc, graph->add_input());
    graph->mutable_input(0)->set_name(kImages);
    current = "discriminator.nchw";
    IntsAttribute("perm", {0, 3, 1, 2}, builder.Node("Transpose", {kImages}, current));
    layers = &shapes.discriminator;  // without a trailing sigmoid: its output is the logit
  } else {
    model.set_doc_string(
        "GAN generator: noise [N, noise_dim] float -> images [N, H, W, C] float (NHWC, the "
        "generator's range, [-1, 1] for tanh). BatchNorm uses running statistics; Dropout is "
        "omitted.");
    SetShape({spec.noise().dim()}, graph->add_input());
    graph->mutable_input(0)->set_name(kNoise);
    current = kNoise;
    layers = &shapes.generator;
  }
  for (const LayerShape& layer : *layers) {
    GAN_ASSIGN_OR_RETURN(current, emitter.Layer(layer, current));
  }
  if (network == OnnxNetwork::kDiscriminator) {
    NameOutput(current, kLogit, graph);
    builder.Node("Sigmoid", {kLogit}, kProbability);
    SetShape({1}, graph->add_output());
    graph->mutable_output(0)->set_name(kProbability);
    SetShape({1}, graph->add_output());
    graph->mutable_output(1)->set_name(kLogit);
  } else {
    IntsAttribute("perm", {0, 2, 3, 1}, builder.Node("Transpose", {current}, kImages));
    SetShape(nhwc, graph->add_output());
    graph->mutable_output(0)->set_name(kImages);
  }
  AddMetadata("network", name, &model);
  AddMetadata("image_layout", "NHWC", &model);

  try {
    onnx::checker::check_model(model);
  } catch (const std::exception& e) {
    return absl::InternalError(
        absl::StrCat("the exported ", name, " is not a valid ONNX model: ", e.what()));
  }
  return model;
}

absl::StatusOr<onnx::ModelProto> ExportCheckpointToOnnx(const SafeTensors& checkpoint,
                                                        OnnxNetwork network,
                                                        const GanLimits& limits) {
  GAN_ASSIGN_OR_RETURN(gan::v1::GanSpec spec, CheckpointSpec(checkpoint));
  GAN_ASSIGN_OR_RETURN(onnx::ModelProto model, ExportOnnx(spec, checkpoint, network, limits));
  auto step = checkpoint.metadata.find("step");
  int64_t value = 0;
  if (step != checkpoint.metadata.end() && absl::SimpleAtoi(step->second, &value)) {
    AddMetadata("checkpoint_step", step->second, &model);
  }
  return model;
}

}  // namespace gan
