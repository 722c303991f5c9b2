// Every layer type against PyTorch: forward output, input gradient, parameter gradients and
// BatchNorm running statistics from tests/data/reference/layers (scripts/make_reference_data.py).

#include <string>
#include <vector>

#include "core/engine.h"
#include "core/model_shapes.h"
#include "core/parameter_store.h"
#include "core/safetensors.h"
#include "core/sequential.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/test_util.h"

namespace gan {
namespace {

using ::gan::testing::ExpectAllClose;

class LayerReferenceTest : public ::testing::TestWithParam<std::string> {};

TEST_P(LayerReferenceTest, MatchesPyTorch) {
  GAN_ASSERT_OK_AND_ASSIGN(
      SafeTensors ref,
      ReadSafeTensorsFile(::gan::testing::TestDataPath("reference/layers/" + GetParam() +
                                                       ".safetensors")));
  gan::v1::ModelSpec spec;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(ref.metadata.at("layer"),
                                                          spec.add_layers())
                  .ok());
  const std::vector<int64_t> input_shape =
      nlohmann::json::parse(ref.metadata.at("input_shape")).get<std::vector<int64_t>>();
  const int64_t batch = input_shape[0];
  const Dims per_sample(input_shape.begin() + 1, input_shape.end());
  GAN_ASSERT_OK_AND_ASSIGN(std::vector<LayerShape> layers,
                           InferModelShapes(spec, per_sample, "layer", batch, ModelLimits{}));
  ParameterStore store("layer", layers);
  for (const ParameterStore::Entry& e : store.entries()) {
    GAN_ASSERT_OK_AND_ASSIGN(std::vector<float> values, GetF32(ref, "param." + e.param, e.dims));
    std::copy(values.begin(), values.end(), store.Data(e));
  }
  GAN_ASSERT_OK_AND_ASSIGN(
      std::unique_ptr<Sequential> net,
      Sequential::Create(layers, &store, {batch, Pass::kTraining, /*input_grad=*/true}));

  GAN_ASSERT_OK_AND_ASSIGN(std::vector<float> input, GetF32(ref, "input", input_shape));
  std::copy(input.begin(), input.end(), net->input().begin());
  for (Dropout* dropout : net->dropout_layers()) {
    GAN_ASSERT_OK_AND_ASSIGN(std::vector<float> mask, GetF32(ref, "mask"));
    ASSERT_EQ(mask.size(), dropout->mask().size());
    std::copy(mask.begin(), mask.end(), dropout->mask().begin());
  }
  net->Forward();
  GAN_ASSERT_OK_AND_ASSIGN(std::vector<float> expected_output, GetF32(ref, "expected.output"));
  ExpectAllClose("output", std::vector<float>(net->output().begin(), net->output().end()),
                 expected_output);

  GAN_ASSERT_OK_AND_ASSIGN(std::vector<float> grad_output, GetF32(ref, "grad_output"));
  ASSERT_EQ(grad_output.size(), net->output_grad().size());
  std::copy(grad_output.begin(), grad_output.end(), net->output_grad().begin());
  net->Backward(/*param_grads=*/true);
  GAN_ASSERT_OK_AND_ASSIGN(std::vector<float> expected_grad_input,
                           GetF32(ref, "expected.grad_input", input_shape));
  ExpectAllClose("grad_input",
                 std::vector<float>(net->input_grad().begin(), net->input_grad().end()),
                 expected_grad_input);
  for (const ParameterStore::Entry& e : store.entries()) {
    const float* actual = store.Data(e);
    std::string expected_name = "expected." + e.param;  // running statistics
    if (e.trainable) {
      actual = store.Grad(e.layer, e.param);
      expected_name = "expected.grad." + e.param;
    }
    GAN_ASSERT_OK_AND_ASSIGN(std::vector<float> expected, GetF32(ref, expected_name, e.dims));
    ExpectAllClose(expected_name, actual, expected.data(), expected.size());
  }
  if (spec.layers(0).has_batch_norm()) {
    EXPECT_EQ(store.BatchesTracked(0), 1);
  }
}

INSTANTIATE_TEST_SUITE_P(
    AllLayers, LayerReferenceTest,
    ::testing::Values("conv2d_same_s2", "conv2d_valid_s2", "conv2d_same_s1_nobias",
                      "conv2d_same_s2_even", "conv2d_few_filters_same_k4",
                      "conv2d_few_filters_valid", "conv2d_transpose_same_s2",
                      "conv2d_transpose_same_s1_nobias", "conv2d_transpose_valid_s2", "dense",
                      "dense_nobias", "batch_norm_features", "batch_norm_channels", "leaky_relu",
                      "relu", "sigmoid", "tanh", "linear", "dropout", "up_sampling2d", "flatten",
                      "reshape"),
    [](const ::testing::TestParamInfo<std::string>& info) { return info.param; });

}  // namespace
}  // namespace gan
