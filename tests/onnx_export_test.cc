// core/onnx_export: every preset's networks become ONNX models that the ONNX checker and ONNX's
// strict shape inference accept, with the inference protocol's tensor names, a dynamic batch, the
// checkpoint's weights under their checkpoint names, Keras padding as explicit pads and nothing
// of training (no Dropout, BatchNorm with one output). Numerical agreement with the engine is
// tests/server_onnx_export_test (ONNX Runtime against the running service).

#include "core/onnx_export.h"

#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/checkpoint.h"
#include "core/gan_spec.h"
#include "core/presets.h"
#include "core/safetensors.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "onnx/checker.h"
#include "onnx/shape_inference/implementation.h"
#include "tests/test_util.h"

namespace gan {
namespace {

using ::gan::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

// Every parameter of both networks of `spec`, filled with distinct values, named as in a
// checkpoint; metadata as a checkpoint at `step` has it.
SafeTensors WeightsFor(const gan::v1::GanSpec& spec, int64_t step) {
  GanShapes shapes = ValidateGanSpec(spec, GanLimits{}).value();
  SafeTensors st;
  for (const auto& [network, layers] : std::map<std::string, const std::vector<LayerShape>*>{
           {"generator", &shapes.generator}, {"discriminator", &shapes.discriminator}}) {
    for (const LayerShape& layer : *layers) {
      for (const ParamShape& param : layer.params) {
        std::vector<float> values(NumElements(param.dims));
        for (size_t i = 0; i < values.size(); ++i) {
          values[i] = param.name == "running_var" ? 1.0f + 0.01f * (i % 7)
                                                  : 0.01f * std::sin(0.1f * i + layer.index);
        }
        st.tensors[absl::StrCat(network, ".", layer.index, ".", param.name)] =
            MakeF32Tensor(param.dims, values);
      }
    }
  }
  std::string json;
  EXPECT_TRUE(google::protobuf::util::MessageToJsonString(spec, &json).ok());
  st.metadata["spec"] = json;
  st.metadata["step"] = absl::StrCat(step);
  return st;
}

// Dimensions of a value: a number, or the dim_param's name.
std::vector<std::string> Dims(const onnx::ValueInfoProto& value) {
  std::vector<std::string> dims;
  for (const auto& dim : value.type().tensor_type().shape().dim()) {
    dims.push_back(dim.has_dim_param() ? dim.dim_param() : absl::StrCat(dim.dim_value()));
  }
  return dims;
}

const onnx::NodeProto* FindNode(const onnx::ModelProto& model, const std::string& name) {
  for (const onnx::NodeProto& node : model.graph().node()) {
    if (node.name() == name) return &node;
  }
  return nullptr;
}

const onnx::AttributeProto* FindAttribute(const onnx::NodeProto& node, const std::string& name) {
  for (const onnx::AttributeProto& attribute : node.attribute()) {
    if (attribute.name() == name) return &attribute;
  }
  return nullptr;
}

std::vector<int64_t> Ints(const onnx::NodeProto& node, const std::string& name) {
  const onnx::AttributeProto* attribute = FindAttribute(node, name);
  if (attribute == nullptr) return {};
  return {attribute->ints().begin(), attribute->ints().end()};
}

// The model after a serialization round trip, checked again and shape-inferred strictly (a type
// or shape conflict anywhere throws).
onnx::ModelProto RoundTripAndInfer(const onnx::ModelProto& model) {
  std::string bytes;
  EXPECT_TRUE(model.SerializeToString(&bytes));
  onnx::ModelProto parsed;
  EXPECT_TRUE(parsed.ParseFromString(bytes));
  onnx::checker::check_model(parsed);
  onnx::ShapeInferenceOptions options{/*check_type=*/true, /*error_mode=*/1,
                                      /*enable_data_propagation=*/false};
  onnx::shape_inference::InferShapes(parsed, onnx::OpSchemaRegistry::Instance(), options);
  return parsed;
}

class OnnxExportTest : public ::testing::TestWithParam<std::string> {};

TEST_P(OnnxExportTest, DiscriminatorTakesNhwcImagesAndGivesProbabilityAndLogit) {
  const gan::v1::GanSpec spec = PresetSpec(GetParam()).value();
  const SafeTensors weights = WeightsFor(spec, 12);
  GAN_ASSERT_OK_AND_ASSIGN(onnx::ModelProto model,
                           ExportOnnx(spec, weights, OnnxNetwork::kDiscriminator));
  EXPECT_EQ(model.opset_import_size(), 1);
  EXPECT_EQ(model.opset_import(0).domain(), "");
  EXPECT_EQ(model.opset_import(0).version(), kOnnxOpsetVersion);
  const onnx::GraphProto& graph = model.graph();
  ASSERT_EQ(graph.input_size(), 1);
  EXPECT_EQ(graph.input(0).name(), "images");
  EXPECT_THAT(Dims(graph.input(0)), ElementsAre("N", "28", "28", "1"));
  ASSERT_EQ(graph.output_size(), 2);
  EXPECT_EQ(graph.output(0).name(), "probability");
  EXPECT_EQ(graph.output(1).name(), "logit");
  EXPECT_THAT(Dims(graph.output(0)), ElementsAre("N", "1"));
  EXPECT_THAT(Dims(graph.output(1)), ElementsAre("N", "1"));
  EXPECT_EQ(graph.input(0).type().tensor_type().elem_type(), onnx::TensorProto::FLOAT);

  // NHWC in, NCHW inside; the first Conv pads 28 -> 14 (5x5, stride 2) 1 before and 2 after.
  const onnx::NodeProto* transpose = FindNode(model, "discriminator.nchw");
  ASSERT_NE(transpose, nullptr);
  EXPECT_EQ(transpose->op_type(), "Transpose");
  EXPECT_THAT(Ints(*transpose, "perm"), ElementsAre(0, 3, 1, 2));
  const onnx::NodeProto* conv = FindNode(model, "discriminator.0");
  ASSERT_NE(conv, nullptr);
  EXPECT_EQ(conv->op_type(), "Conv");
  EXPECT_THAT(Ints(*conv, "pads"), ElementsAre(1, 1, 2, 2));
  EXPECT_THAT(Ints(*conv, "strides"), ElementsAre(2, 2));
  // The second Conv: 'valid' for seed (no pads), 'same' 14 -> 7 for tf-dcgan (1 before, 2 after).
  const onnx::NodeProto* conv2 =
      FindNode(model, GetParam() == "tf-dcgan" ? "discriminator.3" : "discriminator.2");
  ASSERT_NE(conv2, nullptr);
  EXPECT_THAT(Ints(*conv2, "pads"),
              GetParam() == "tf-dcgan" ? ElementsAre(1, 1, 2, 2) : ElementsAre(0, 0, 0, 0));

  for (const onnx::NodeProto& node : graph.node()) {
    EXPECT_NE(node.op_type(), "Dropout") << node.name();
  }
  // The logit is the last layer's output, the probability its sigmoid.
  const onnx::NodeProto* probability = FindNode(model, "probability");
  ASSERT_NE(probability, nullptr);
  EXPECT_EQ(probability->op_type(), "Sigmoid");
  EXPECT_THAT(probability->input(), ElementsAre("logit"));

  // Every weight is the checkpoint's tensor, under its checkpoint name and bytes.
  int weights_found = 0;
  for (const onnx::TensorProto& initializer : graph.initializer()) {
    auto it = weights.tensors.find(initializer.name());
    if (it == weights.tensors.end()) continue;
    ++weights_found;
    EXPECT_EQ(initializer.raw_data(), it->second.bytes) << initializer.name();
    EXPECT_THAT(initializer.dims(), ::testing::ElementsAreArray(it->second.shape));
  }
  int discriminator_tensors = 0;
  for (const auto& [name, tensor] : weights.tensors) {
    discriminator_tensors += absl::StartsWith(name, "discriminator.");
  }
  EXPECT_EQ(weights_found, discriminator_tensors);

  const onnx::ModelProto inferred = RoundTripAndInfer(model);
  EXPECT_THAT(Dims(inferred.graph().output(1)), ElementsAre("N", "1"));
}

TEST_P(OnnxExportTest, GeneratorTakesNoiseAndGivesNhwcImagesInInferenceMode) {
  const gan::v1::GanSpec spec = PresetSpec(GetParam()).value();
  GAN_ASSERT_OK_AND_ASSIGN(onnx::ModelProto model,
                           ExportCheckpointToOnnx(WeightsFor(spec, 34), OnnxNetwork::kGenerator));
  const onnx::GraphProto& graph = model.graph();
  ASSERT_EQ(graph.input_size(), 1);
  EXPECT_EQ(graph.input(0).name(), "noise");
  EXPECT_THAT(Dims(graph.input(0)), ElementsAre("N", "100"));
  ASSERT_EQ(graph.output_size(), 1);
  EXPECT_EQ(graph.output(0).name(), "images");
  EXPECT_THAT(Dims(graph.output(0)), ElementsAre("N", "28", "28", "1"));
  std::map<std::string, std::string> metadata;
  for (const auto& entry : model.metadata_props()) metadata[entry.key()] = entry.value();
  EXPECT_EQ(metadata["checkpoint_step"], "34");
  EXPECT_EQ(metadata["network"], "generator");

  int batch_norms = 0;
  for (const onnx::NodeProto& node : graph.node()) {
    if (node.op_type() != "BatchNormalization") continue;
    ++batch_norms;
    // Inference mode: one output, running mean and variance as inputs; Keras' epsilon.
    EXPECT_EQ(node.output_size(), 1) << node.name();
    ASSERT_EQ(node.input_size(), 5) << node.name();
    EXPECT_EQ(node.input(3), node.name() + ".running_mean");
    EXPECT_EQ(node.input(4), node.name() + ".running_var");
    const onnx::AttributeProto* epsilon = FindAttribute(node, "epsilon");
    ASSERT_NE(epsilon, nullptr);
    EXPECT_FLOAT_EQ(epsilon->f(), 1e-3f);
  }
  EXPECT_EQ(batch_norms, 3);
  const onnx::NodeProto* images = FindNode(model, "images");
  ASSERT_NE(images, nullptr);
  EXPECT_EQ(images->op_type(), "Transpose");
  EXPECT_THAT(Ints(*images, "perm"), ElementsAre(0, 2, 3, 1));

  if (GetParam() == "tf-dcgan") {
    // Conv2DTranspose 'same' 7 -> 14 (5x5, stride 2): TensorFlow crops 1 before and 2 after.
    const onnx::NodeProto* deconv = FindNode(model, "generator.7");
    ASSERT_NE(deconv, nullptr);
    EXPECT_EQ(deconv->op_type(), "ConvTranspose");
    EXPECT_THAT(Ints(*deconv, "pads"), ElementsAre(1, 1, 2, 2));
    EXPECT_EQ(deconv->input_size(), 2);  // no bias
  } else {
    const onnx::NodeProto* up = FindNode(model, "generator.7");
    ASSERT_NE(up, nullptr);
    EXPECT_EQ(up->op_type(), "Resize");
    const onnx::NodeProto* conv = FindNode(model, "generator.8");
    ASSERT_NE(conv, nullptr);
    EXPECT_THAT(Ints(*conv, "pads"), ElementsAre(2, 2, 2, 2));  // 5x5 stride 1 'same'
  }

  // Strict shape inference carries the symbolic batch through every layer to the output.
  const onnx::ModelProto inferred = RoundTripAndInfer(model);
  EXPECT_THAT(Dims(inferred.graph().output(0)), ElementsAre("N", "28", "28", "1"));
  int typed = 0;
  for (const onnx::ValueInfoProto& value : inferred.graph().value_info()) {
    if (value.name() == "generator.6") {  // the Reshape (seed) or the first BatchNorm's ReLU
      EXPECT_EQ(Dims(value).front(), "N");
      ++typed;
    }
  }
  EXPECT_EQ(typed, 1);
}

TEST_P(OnnxExportTest, MissingOrMisshapenWeightIsInvalidArgumentNamingIt) {
  const gan::v1::GanSpec spec = PresetSpec(GetParam()).value();
  SafeTensors weights = WeightsFor(spec, 1);
  SafeTensors missing = weights;
  missing.tensors.erase("generator.0.weight");
  EXPECT_THAT(ExportOnnx(spec, missing, OnnxNetwork::kGenerator),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("generator.0.weight")));
  SafeTensors misshapen = weights;
  misshapen.tensors["discriminator.0.weight"] = MakeF32Tensor({1}, std::vector<float>{0.5f});
  EXPECT_THAT(ExportOnnx(spec, misshapen, OnnxNetwork::kDiscriminator),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("discriminator.0.weight has shape (1)")));
  // The other network does not need those tensors.
  EXPECT_TRUE(ExportOnnx(spec, missing, OnnxNetwork::kDiscriminator).ok());
}

INSTANTIATE_TEST_SUITE_P(Presets, OnnxExportTest,
                         ::testing::Values("seed", "seed-dcgan", "tf-dcgan"),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           std::string name = info.param;
                           for (char& c : name) {
                             if (c == '-') c = '_';
                           }
                           return name;
                         });

TEST(OnnxExportSpecTest, InvalidSpecIsRefusedWithItsFieldPath) {
  gan::v1::GanSpec spec = PresetSpec("seed").value();
  const SafeTensors weights = WeightsFor(spec, 1);
  spec.mutable_discriminator()->mutable_layers(0)->mutable_conv2d()->set_kernel_size(0);
  EXPECT_THAT(ExportOnnx(spec, weights, OnnxNetwork::kDiscriminator),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("discriminator.layers[0].conv2d.kernel_size")));
}

TEST(OnnxExportSpecTest, BatchSizeOfTheSpecDoesNotLimitTheExport) {
  gan::v1::GanSpec spec = PresetSpec("seed").value();
  const SafeTensors weights = WeightsFor(spec, 1);
  spec.set_batch_size(1 << 20);  // over GanLimits::max_batch_size
  EXPECT_TRUE(ExportOnnx(spec, weights, OnnxNetwork::kGenerator).ok());
}

}  // namespace
}  // namespace gan
