// The initializers (core/init.h) and the recipes (core/framework_defaults.h): PyTorch's default
// initialization per layer kind against the bounds PyTorch's own formulas give and the tensors
// PyTorch drew for the same shapes (tests/data/reference/init, written by
// scripts/make_reference_data.py), PyTorch's BatchNorm and Adam defaults, and ApplyPyTorchDefaults.

#include "core/init.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "core/framework_defaults.h"
#include "core/model_shapes.h"
#include "core/parameter_store.h"
#include "core/presets.h"
#include "core/safetensors.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/test_util.h"

namespace gan {
namespace {

using ::gan::testing::TestDataPath;

struct Moments {
  double max_abs = 0;
  double std = 0;
};

Moments MomentsOf(const float* data, int64_t n) {
  double sum = 0, sum_sq = 0, max_abs = 0;
  for (int64_t i = 0; i < n; ++i) {
    sum += data[i];
    sum_sq += static_cast<double>(data[i]) * data[i];
    max_abs = std::max(max_abs, std::abs(static_cast<double>(data[i])));
  }
  const double mean = sum / n;
  return {max_abs, std::sqrt(std::max(sum_sq / n - mean * mean, 0.0))};
}

float Scalar(const SafeTensors& st, const std::string& name) {
  absl::StatusOr<std::vector<float>> v = GetF32(st, name);
  EXPECT_TRUE(v.ok() && v->size() == 1) << name << ": " << v.status();
  return v.ok() && v->size() == 1 ? (*v)[0] : NAN;
}

SafeTensors ReadReference() {
  absl::StatusOr<SafeTensors> st =
      ReadSafeTensorsFile(TestDataPath("reference/init/pytorch_default_init.safetensors"));
  EXPECT_TRUE(st.ok()) << st.status();
  return st.ok() ? *std::move(st) : SafeTensors{};
}

TEST(PyTorchInitTest, BoundsAndDrawsMatchPyTorchPerLayerKind) {
  const SafeTensors ref = ReadReference();
  const nlohmann::json cases = nlohmann::json::parse(ref.metadata.at("cases"));
  ASSERT_GE(cases.size(), 6u);
  for (const nlohmann::json& c : cases) {
    const std::string name = c["name"];
    SCOPED_TRACE(name);
    gan::v1::ModelSpec model;
    ASSERT_TRUE(
        google::protobuf::util::JsonStringToMessage(c["layer"].dump(), model.add_layers()).ok());
    const Dims input = c["input_shape"].get<Dims>();
    absl::StatusOr<std::vector<LayerShape>> layers =
        InferModelShapes(model, input, "generator", 1, ModelLimits{});
    ASSERT_TRUE(layers.ok()) << layers.status();
    ParameterStore store("generator", *layers);
    InitializePyTorchDefault(/*seed=*/11, &store);
    const ParameterStore::Entry* weight = store.Find(0, "weight");
    ASSERT_NE(weight, nullptr);
    const double bound = PyTorchInitBound(weight->dims);
    for (const ParameterStore::Entry& e : store.entries()) {
      SCOPED_TRACE(e.param);
      const std::string key = name + "." + e.param;
      // The same bound PyTorch's formulas give (for ConvTranspose2d from weight dim 1, its
      // output channels), for the weight (kaiming_uniform_, a = sqrt(5)) and the bias.
      EXPECT_NEAR(bound, Scalar(ref, key + ".bound"), 1e-6 * bound);
      const int64_t n = NumElements(e.dims);
      const Moments ours = MomentsOf(store.Data(e), n);
      EXPECT_LE(ours.max_abs, bound);
      if (n < 1000) continue;  // too few draws for the statistics below
      // U(-b, b): the extremes come close to b and the spread is b / sqrt(3), as in PyTorch's draw.
      const double torch_std = Scalar(ref, key + ".std");
      EXPECT_GT(ours.max_abs, 0.99 * bound);
      EXPECT_GT(Scalar(ref, key + ".max_abs"), 0.99 * bound);
      EXPECT_NEAR(ours.std, torch_std, 0.03 * torch_std);
      EXPECT_NEAR(torch_std, bound / std::sqrt(3.0), 0.03 * torch_std);
    }
    EXPECT_EQ(store.Find(0, "bias") != nullptr, ref.tensors.count(name + ".bias.bound") > 0);
  }
}

TEST(PyTorchInitTest, ConvTransposeFanInComesFromItsOutputChannels) {
  // IOHW [in 256, out 128, 5, 5]: PyTorch's fan_in is 128 * 25, not 256 * 25.
  EXPECT_DOUBLE_EQ(PyTorchInitBound({256, 128, 5, 5}), 1.0 / std::sqrt(128.0 * 25));
  EXPECT_DOUBLE_EQ(PyTorchInitBound({64, 1, 5, 5}), 1.0 / 5.0);
  // Conv2d OIHW [out 128, in 64, 5, 5] and Linear [out 1024, in 100].
  EXPECT_DOUBLE_EQ(PyTorchInitBound({128, 64, 5, 5}), 1.0 / std::sqrt(64.0 * 25));
  EXPECT_DOUBLE_EQ(PyTorchInitBound({1024, 100}), 0.1);
}

TEST(PyTorchInitTest, BatchNormStartsAsTheIdentity) {
  gan::v1::ModelSpec model;
  model.add_layers()->mutable_dense()->set_units(16);
  model.add_layers()->mutable_batch_norm();
  auto layers = InferModelShapes(model, {8}, "generator", 4, ModelLimits{});
  ASSERT_TRUE(layers.ok()) << layers.status();
  ParameterStore store("generator", *layers);
  InitializePyTorchDefault(3, &store);
  for (const char* param : {"weight", "bias", "running_mean", "running_var"}) {
    const float expected = std::string(param) == "weight" || std::string(param) == "running_var";
    const float* v = store.Value(1, param);
    ASSERT_NE(v, nullptr) << param;
    for (int i = 0; i < 16; ++i) EXPECT_EQ(v[i], expected) << param << "[" << i << "]";
  }
  EXPECT_EQ(store.BatchesTracked(1), 0);
}

TEST(PyTorchInitTest, DeterministicInTheSeed) {
  gan::v1::ModelSpec model;
  model.add_layers()->mutable_dense()->set_units(32);
  auto layers = InferModelShapes(model, {8}, "generator", 1, ModelLimits{});
  ASSERT_TRUE(layers.ok());
  ParameterStore a("generator", *layers), b("generator", *layers), c("generator", *layers);
  InitializePyTorchDefault(5, &a);
  InitializePyTorchDefault(5, &b);
  InitializePyTorchDefault(6, &c);
  EXPECT_EQ(a.trainable(), b.trainable());
  EXPECT_NE(a.trainable(), c.trainable());
}

TEST(InitializeParametersTest, UnspecifiedAndKerasAreGlorotUniformPyTorchIsNot) {
  gan::v1::ModelSpec model;
  model.add_layers()->mutable_dense()->set_units(64);
  auto layers = InferModelShapes(model, {100}, "generator", 1, ModelLimits{});
  ASSERT_TRUE(layers.ok());
  ParameterStore glorot("generator", *layers), unspecified("generator", *layers),
      keras("generator", *layers), pytorch("generator", *layers);
  InitializeGlorotUniform(9, &glorot);
  InitializeParameters(gan::v1::INITIALIZER_UNSPECIFIED, 9, &unspecified);
  InitializeParameters(gan::v1::INITIALIZER_KERAS, 9, &keras);
  InitializeParameters(gan::v1::INITIALIZER_PYTORCH, 9, &pytorch);
  EXPECT_EQ(unspecified.trainable(), glorot.trainable());
  EXPECT_EQ(keras.trainable(), glorot.trainable());
  // Glorot's biases are 0; PyTorch's are U(-0.1, 0.1) here.
  const float* bias = pytorch.Value(0, "bias");
  EXPECT_GT(MomentsOf(bias, 64).max_abs, 0.05);
  EXPECT_EQ(MomentsOf(glorot.Value(0, "bias"), 64).max_abs, 0.0);
}

TEST(FrameworkDefaultsTest, PyTorchValuesAreWhatPyTorchUses) {
  const SafeTensors ref = ReadReference();
  EXPECT_EQ(kPyTorchBatchNormEpsilon, Scalar(ref, "pytorch.batch_norm.eps"));
  EXPECT_EQ(kPyTorchBatchNormMomentum, Scalar(ref, "pytorch.batch_norm.momentum"));
  EXPECT_EQ(kPyTorchAdamEpsilon, Scalar(ref, "pytorch.adam.eps"));
}

TEST(FrameworkDefaultsTest, ApplyPyTorchDefaultsChangesOnlyTheRecipe) {
  for (const std::string& preset : PresetNames()) {
    SCOPED_TRACE(preset);
    absl::StatusOr<gan::v1::GanSpec> keras = PresetSpec(preset);
    ASSERT_TRUE(keras.ok());
    EXPECT_EQ(keras->initializer(), gan::v1::INITIALIZER_UNSPECIFIED);
    gan::v1::GanSpec pytorch = *keras;
    ApplyPyTorchDefaults(&pytorch);
    EXPECT_EQ(pytorch.initializer(), gan::v1::INITIALIZER_PYTORCH);
    EXPECT_EQ(pytorch.generator_optimizer().epsilon(), 1e-8f);
    EXPECT_EQ(pytorch.discriminator_optimizer().epsilon(), 1e-8f);
    int batch_norms = 0;
    for (const gan::v1::ModelSpec* model : {&pytorch.generator(), &pytorch.discriminator()}) {
      for (const gan::v1::LayerSpec& layer : model->layers()) {
        if (!layer.has_batch_norm()) continue;
        ++batch_norms;
        EXPECT_EQ(layer.batch_norm().epsilon(), 1e-5f);
        EXPECT_EQ(layer.batch_norm().momentum(), 0.1f);
      }
    }
    EXPECT_GT(batch_norms, 0);
    // Put Keras' values back: nothing else may differ.
    gan::v1::GanSpec back = pytorch;
    back.clear_initializer();
    back.mutable_generator_optimizer()->set_epsilon(kKerasAdamEpsilon);
    back.mutable_discriminator_optimizer()->set_epsilon(kKerasAdamEpsilon);
    for (gan::v1::ModelSpec* model : {back.mutable_generator(), back.mutable_discriminator()}) {
      for (gan::v1::LayerSpec& layer : *model->mutable_layers()) {
        if (!layer.has_batch_norm()) continue;
        layer.mutable_batch_norm()->set_epsilon(kKerasBatchNormEpsilon);
        layer.mutable_batch_norm()->set_momentum(kKerasBatchNormMomentum);
      }
    }
    EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(back, *keras));
  }
}

}  // namespace
}  // namespace gan
