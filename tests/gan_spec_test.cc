// Spec validation (ValidateGanSpec and, through it, InferModelShapes) and the presets: every
// rejection has the right status code and names the field path a client has to fix; the presets
// validate to the shapes of the networks they describe.
//
// Seed preset entries referred to below:
//   generator      0 Dense(1024) 1 BN 2 ReLU 3 Dense(6272) 4 BN 5 ReLU 6 Reshape(128,7,7)
//                  7 UpSampling(2) 8 Conv(64,5,s1,same) 9 BN 10 ReLU 11 UpSampling(2)
//                  12 Conv(1,5,s1,same) 13 Tanh
//   discriminator  0 Conv(64,5,s2,same) 1 LeakyReLU 2 Conv(128,5,s2,valid) 3 LeakyReLU 4 Flatten
//                  5 Dense(256) 6 LeakyReLU 7 Dropout(0.5) 8 Dense(1) 9 Sigmoid

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "core/gan_spec.h"
#include "core/model_shapes.h"
#include "core/presets.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "tests/test_util.h"

namespace gan {
namespace {

using ::gan::testing::IsOk;
using ::gan::testing::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr auto kInvalid = absl::StatusCode::kInvalidArgument;
constexpr auto kExhausted = absl::StatusCode::kResourceExhausted;
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

gan::v1::GanSpec Seed() {
  absl::StatusOr<gan::v1::GanSpec> spec = PresetSpec("seed");
  EXPECT_THAT(spec, IsOk());
  return spec.ok() ? *spec : gan::v1::GanSpec();
}

absl::StatusOr<GanShapes> Validate(const gan::v1::GanSpec& spec) {
  return ValidateGanSpec(spec, GanLimits{});
}

gan::v1::LayerSpec* G(gan::v1::GanSpec& spec, int i) {
  return spec.mutable_generator()->mutable_layers(i);
}
gan::v1::LayerSpec* D(gan::v1::GanSpec& spec, int i) {
  return spec.mutable_discriminator()->mutable_layers(i);
}
void RemoveLayer(gan::v1::ModelSpec* model, int i) { model->mutable_layers()->DeleteSubrange(i, 1); }

// --- Positive cases -------------------------------------------------------------------------

TEST(PresetTest, AllPresetsValidate) {
  for (const std::string& name : PresetNames()) {
    SCOPED_TRACE(name);
    GAN_ASSERT_OK_AND_ASSIGN(gan::v1::GanSpec spec, PresetSpec(name));
    EXPECT_THAT(Validate(spec), IsOk());
  }
}

TEST(PresetTest, UnknownPresetListsTheKnownOnes) {
  EXPECT_THAT(PresetSpec("nope"),
              StatusIs(kInvalid, AllOf(HasSubstr("'nope'"), HasSubstr("seed"),
                                       HasSubstr("seed-dcgan"), HasSubstr("tf-dcgan"))));
}

TEST(KerasSamePaddingTest, ExtraPixelGoesAfter) {
  auto expect = [](int64_t in, int64_t k, int64_t s, int64_t out, int64_t before,
                   int64_t after) {
    const SamePadding p = KerasSamePadding(in, k, s);
    EXPECT_EQ(p.out, out) << in << "," << k << "," << s;
    EXPECT_EQ(p.before, before) << in << "," << k << "," << s;
    EXPECT_EQ(p.after, after) << in << "," << k << "," << s;
  };
  expect(28, 5, 2, 14, 1, 2);
  expect(10, 5, 2, 5, 1, 2);
  expect(7, 5, 1, 7, 2, 2);
}

TEST(GanSpecTest, SeedDiscriminatorShapesWithoutTheSigmoid) {
  GAN_ASSERT_OK_AND_ASSIGN(GanShapes shapes, Validate(Seed()));
  EXPECT_TRUE(shapes.discriminator_ends_with_sigmoid);
  ASSERT_EQ(shapes.discriminator.size(), 9u);  // entry 9 (the sigmoid) is folded into the loss
  EXPECT_EQ(shapes.discriminator[0].input, (Dims{1, 28, 28}));
  EXPECT_EQ(shapes.discriminator[0].output, (Dims{64, 14, 14}));
  EXPECT_EQ(shapes.discriminator[0].pad_before[0], 1);
  EXPECT_EQ(shapes.discriminator[0].pad_after[0], 2);
  EXPECT_EQ(shapes.discriminator[2].output, (Dims{128, 5, 5}));
  EXPECT_EQ(shapes.discriminator[4].output, (Dims{3200}));
  EXPECT_EQ(shapes.discriminator[5].output, (Dims{256}));
  EXPECT_EQ(shapes.discriminator[8].output, (Dims{1}));
  EXPECT_EQ(shapes.discriminator.back().index, 8);
  // Weights in PyTorch layouts.
  ASSERT_FALSE(shapes.discriminator[2].params.empty());
  EXPECT_EQ(shapes.discriminator[2].params[0].dims, (Dims{128, 64, 5, 5}));
  ASSERT_FALSE(shapes.discriminator[5].params.empty());
  EXPECT_EQ(shapes.discriminator[5].params[0].dims, (Dims{256, 3200}));
  EXPECT_EQ(shapes.generator.back().output, (Dims{1, 28, 28}));
}

TEST(GanSpecTest, DiscriminatorWithoutSigmoidKeepsAllEntries) {
  GAN_ASSERT_OK_AND_ASSIGN(gan::v1::GanSpec spec, PresetSpec("tf-dcgan"));
  GAN_ASSERT_OK_AND_ASSIGN(GanShapes shapes, Validate(spec));
  EXPECT_FALSE(shapes.discriminator_ends_with_sigmoid);
  EXPECT_EQ(static_cast<int>(shapes.discriminator.size()), spec.discriminator().layers_size());
}

TEST(GanSpecTest, TfDcganGeneratorOutputsTheImage) {
  GAN_ASSERT_OK_AND_ASSIGN(gan::v1::GanSpec spec, PresetSpec("tf-dcgan"));
  GAN_ASSERT_OK_AND_ASSIGN(GanShapes shapes, Validate(spec));
  EXPECT_EQ(shapes.generator.front().input, (Dims{100}));
  EXPECT_EQ(shapes.generator[3].output, (Dims{256, 7, 7}));
  EXPECT_EQ(shapes.generator[4].output, (Dims{128, 7, 7}));  // ConvT same s1
  EXPECT_EQ(shapes.generator[7].output, (Dims{64, 14, 14}));  // ConvT same s2
  EXPECT_EQ(shapes.generator.back().output, (Dims{1, 28, 28}));
}

TEST(GanSpecTest, DefaultsAreFilledIn) {
  gan::v1::GanSpec spec = Seed();
  gan::v1::Conv2D* conv = D(spec, 2)->mutable_conv2d();
  conv->set_stride(0);  // 0 means 1
  conv->clear_padding();  // unspecified means 'valid'
  conv->clear_use_bias();  // unset means true
  D(spec, 2)->mutable_conv2d()->set_kernel_size(3);
  GAN_ASSERT_OK_AND_ASSIGN(GanShapes shapes, Validate(spec));
  const gan::v1::Conv2D& filled = shapes.discriminator[2].spec.conv2d();
  EXPECT_EQ(filled.stride(), 1);
  EXPECT_EQ(filled.padding(), gan::v1::PADDING_VALID);
  EXPECT_TRUE(filled.use_bias());
  EXPECT_EQ(shapes.discriminator[2].output, (Dims{128, 12, 12}));
  EXPECT_EQ(shapes.discriminator[2].params.size(), 2u);
}

TEST(PresetTest, SetHiddenActivationsKeepsTheOutputActivation) {
  gan::v1::GanSpec spec = Seed();
  const gan::v1::ModelSpec before = spec.discriminator();
  gan::v1::Activation relu;
  relu.set_function(gan::v1::ACTIVATION_FUNCTION_RELU);
  EXPECT_EQ(SetHiddenActivations(relu, spec.mutable_discriminator()), 3);
  const gan::v1::ModelSpec& after = spec.discriminator();
  ASSERT_EQ(after.layers_size(), before.layers_size());
  for (int i = 0; i < after.layers_size(); ++i) {
    SCOPED_TRACE(i);
    if (i == 1 || i == 3 || i == 6) {
      EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(after.layers(i).activation(),
                                                                     relu));
    } else {
      EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(after.layers(i),
                                                                     before.layers(i)));
    }
  }
  EXPECT_EQ(after.layers(9).activation().function(), gan::v1::ACTIVATION_FUNCTION_SIGMOID);
  EXPECT_THAT(Validate(spec), IsOk());
}

// --- Layer lists ----------------------------------------------------------------------------

TEST(GanSpecTest, RejectsEmptyGenerator) {
  gan::v1::GanSpec spec = Seed();
  spec.mutable_generator()->clear_layers();
  EXPECT_THAT(Validate(spec), StatusIs(kInvalid, StartsWith("generator.layers:")));
}

TEST(GanSpecTest, RejectsEmptyDiscriminator) {
  gan::v1::GanSpec spec = Seed();
  spec.mutable_discriminator()->clear_layers();
  EXPECT_THAT(Validate(spec), StatusIs(kInvalid, StartsWith("discriminator.layers:")));
}

TEST(GanSpecTest, RejectsLayerWithoutType) {
  gan::v1::GanSpec spec = Seed();
  D(spec, 4)->Clear();
  EXPECT_THAT(Validate(spec), StatusIs(kInvalid, AllOf(StartsWith("discriminator.layers[4]:"),
                                                       HasSubstr("no layer type"))));
}

TEST(GanSpecTest, RejectsTooManyLayers) {
  GanLimits limits;
  limits.model.max_layers = 13;  // the seed generator has 14 entries
  // A count cap, reported like the other structural caps (kernel size, stride) as
  // INVALID_ARGUMENT; only parameters and activation memory are RESOURCE_EXHAUSTED.
  EXPECT_THAT(ValidateGanSpec(Seed(), limits),
              StatusIs(kInvalid, AllOf(StartsWith("generator.layers:"), HasSubstr("14"))));
  limits.model.max_layers = 14;
  EXPECT_THAT(ValidateGanSpec(Seed(), limits), IsOk());
}

// --- Layer fields ---------------------------------------------------------------------------

TEST(GanSpecTest, RejectsKernelLargerThanValidInput) {
  gan::v1::GanSpec spec = Seed();
  D(spec, 2)->mutable_conv2d()->set_kernel_size(15);  // its input is 14x14, padding 'valid'
  EXPECT_THAT(Validate(spec),
              StatusIs(kInvalid, AllOf(StartsWith("discriminator.layers[2].conv2d.kernel_size:"),
                                       HasSubstr("14x14"))));
  D(spec, 2)->mutable_conv2d()->set_kernel_size(14);  // exactly fits: 1x1 output
  EXPECT_THAT(Validate(spec), IsOk());
}

TEST(GanSpecTest, RejectsNonPositiveConvFields) {
  for (int value : {0, -3}) {
    SCOPED_TRACE(value);
    gan::v1::GanSpec spec = Seed();
    D(spec, 0)->mutable_conv2d()->set_filters(value);
    EXPECT_THAT(Validate(spec),
                StatusIs(kInvalid, StartsWith("discriminator.layers[0].conv2d.filters:")));
    spec = Seed();
    G(spec, 8)->mutable_conv2d()->set_kernel_size(value);
    EXPECT_THAT(Validate(spec),
                StatusIs(kInvalid, StartsWith("generator.layers[8].conv2d.kernel_size:")));
  }
  // stride 0 is the default (1); only a negative stride is invalid.
  gan::v1::GanSpec spec = Seed();
  D(spec, 0)->mutable_conv2d()->set_stride(-1);
  EXPECT_THAT(Validate(spec),
              StatusIs(kInvalid, StartsWith("discriminator.layers[0].conv2d.stride:")));
}

TEST(GanSpecTest, RejectsNonPositiveConvTransposeFields) {
  for (int value : {0, -2}) {
    SCOPED_TRACE(value);
    GAN_ASSERT_OK_AND_ASSIGN(gan::v1::GanSpec spec, PresetSpec("tf-dcgan"));
    G(spec, 4)->mutable_conv2d_transpose()->set_filters(value);
    EXPECT_THAT(Validate(spec), StatusIs(kInvalid, StartsWith("generator.layers[4]."
                                                              "conv2d_transpose.filters:")));
    GAN_ASSERT_OK_AND_ASSIGN(spec, PresetSpec("tf-dcgan"));
    G(spec, 7)->mutable_conv2d_transpose()->set_kernel_size(value);
    EXPECT_THAT(Validate(spec), StatusIs(kInvalid, StartsWith("generator.layers[7]."
                                                              "conv2d_transpose.kernel_size:")));
  }
  GAN_ASSERT_OK_AND_ASSIGN(gan::v1::GanSpec spec, PresetSpec("tf-dcgan"));
  G(spec, 7)->mutable_conv2d_transpose()->set_stride(-2);
  EXPECT_THAT(Validate(spec),
              StatusIs(kInvalid, StartsWith("generator.layers[7].conv2d_transpose.stride:")));
}

TEST(GanSpecTest, RejectsNonPositiveUnits) {
  for (int value : {0, -5}) {
    SCOPED_TRACE(value);
    gan::v1::GanSpec spec = Seed();
    D(spec, 5)->mutable_dense()->set_units(value);
    EXPECT_THAT(Validate(spec),
                StatusIs(kInvalid, StartsWith("discriminator.layers[5].dense.units:")));
  }
}

TEST(GanSpecTest, RejectsDenseOnImageWithoutFlatten) {
  gan::v1::GanSpec spec = Seed();
  RemoveLayer(spec.mutable_discriminator(), 4);  // the Dense(256) is now entry 4
  EXPECT_THAT(Validate(spec), StatusIs(kInvalid, AllOf(StartsWith("discriminator.layers[4]:"),
                                                       HasSubstr("Flatten"))));
}

TEST(GanSpecTest, RejectsConvOnFeatures) {
  gan::v1::GanSpec spec = Seed();
  gan::v1::Conv2D* conv = G(spec, 0)->mutable_conv2d();  // replaces the Dense on the noise
  conv->set_filters(8), conv->set_kernel_size(3);
  EXPECT_THAT(Validate(spec), StatusIs(kInvalid, AllOf(StartsWith("generator.layers[0]:"),
                                                       HasSubstr("(C,H,W)"))));
}

TEST(GanSpecTest, RejectsReshapeWithOtherElementCount) {
  gan::v1::GanSpec spec = Seed();
  G(spec, 6)->mutable_reshape()->set_channels(64);  // 64x7x7 from 6272 features
  EXPECT_THAT(Validate(spec), StatusIs(kInvalid, AllOf(StartsWith("generator.layers[6].reshape:"),
                                                       HasSubstr("6272"))));
}

TEST(GanSpecTest, RejectsDropoutRateOutsideUnitInterval) {
  for (float rate : {1.0f, -0.1f, kNaN}) {
    SCOPED_TRACE(rate);
    gan::v1::GanSpec spec = Seed();
    D(spec, 7)->mutable_dropout()->set_rate(rate);
    EXPECT_THAT(Validate(spec),
                StatusIs(kInvalid, StartsWith("discriminator.layers[7].dropout.rate:")));
  }
}

TEST(GanSpecTest, RejectsLeakyReluAlphaNaN) {
  gan::v1::GanSpec spec = Seed();
  D(spec, 1)->mutable_activation()->set_alpha(kNaN);
  EXPECT_THAT(Validate(spec),
              StatusIs(kInvalid, StartsWith("discriminator.layers[1].activation.alpha:")));
}

TEST(GanSpecTest, RejectsUnspecifiedActivationFunction) {
  gan::v1::GanSpec spec = Seed();
  G(spec, 2)->mutable_activation()->clear_function();
  EXPECT_THAT(Validate(spec),
              StatusIs(kInvalid, StartsWith("generator.layers[2].activation.function:")));
}

TEST(GanSpecTest, RejectsBatchNormEpsilonAndMomentum) {
  gan::v1::GanSpec spec = Seed();
  G(spec, 1)->mutable_batch_norm()->set_epsilon(0);
  EXPECT_THAT(Validate(spec),
              StatusIs(kInvalid, StartsWith("generator.layers[1].batch_norm.epsilon:")));
  spec = Seed();
  G(spec, 4)->mutable_batch_norm()->set_momentum(2);
  EXPECT_THAT(Validate(spec),
              StatusIs(kInvalid, StartsWith("generator.layers[4].batch_norm.momentum:")));
}

// --- Network outputs ------------------------------------------------------------------------

TEST(GanSpecTest, RejectsGeneratorOutputOtherThanImage) {
  gan::v1::GanSpec spec = Seed();
  RemoveLayer(spec.mutable_generator(), 11);  // the last UpSampling2D: 14x14 images
  EXPECT_THAT(Validate(spec),
              StatusIs(kInvalid, AllOf(StartsWith("generator:"), HasSubstr("(1,14,14)"),
                                       HasSubstr("(1,28,28)"))));
}

TEST(GanSpecTest, RejectsDiscriminatorOutputOtherThanOneLogit) {
  gan::v1::GanSpec spec = Seed();
  D(spec, 8)->mutable_dense()->set_units(2);
  EXPECT_THAT(Validate(spec),
              StatusIs(kInvalid, AllOf(StartsWith("discriminator:"), HasSubstr("(2)"))));
}

// --- GanSpec fields -------------------------------------------------------------------------

TEST(GanSpecTest, RejectsBatchSizeOutOfRange) {
  const GanLimits limits;
  for (int batch : {0, -1, limits.max_batch_size + 1}) {
    SCOPED_TRACE(batch);
    gan::v1::GanSpec spec = Seed();
    spec.set_batch_size(batch);
    EXPECT_THAT(Validate(spec), StatusIs(kInvalid, StartsWith("batch_size:")));
  }
}

TEST(GanSpecTest, RejectsNoise) {
  gan::v1::GanSpec spec = Seed();
  spec.mutable_noise()->set_dim(0);
  EXPECT_THAT(Validate(spec), StatusIs(kInvalid, StartsWith("noise.dim:")));
  spec = Seed();
  spec.mutable_noise()->clear_distribution();
  EXPECT_THAT(Validate(spec), StatusIs(kInvalid, StartsWith("noise.distribution:")));
}

TEST(GanSpecTest, RejectsLearningRate) {
  for (float lr : {0.0f, -1e-4f, kNaN, kInf}) {
    SCOPED_TRACE(lr);
    gan::v1::GanSpec spec = Seed();
    spec.mutable_generator_optimizer()->set_learning_rate(lr);
    EXPECT_THAT(Validate(spec),
                StatusIs(kInvalid, StartsWith("generator_optimizer.learning_rate:")));
    spec = Seed();
    spec.mutable_discriminator_optimizer()->set_learning_rate(lr);
    EXPECT_THAT(Validate(spec),
                StatusIs(kInvalid, StartsWith("discriminator_optimizer.learning_rate:")));
  }
}

TEST(GanSpecTest, RejectsAdamBetasAndEpsilon) {
  gan::v1::GanSpec spec = Seed();
  spec.mutable_discriminator_optimizer()->set_beta1(1.0f);
  EXPECT_THAT(Validate(spec), StatusIs(kInvalid, StartsWith("discriminator_optimizer.beta1:")));
  spec = Seed();
  spec.mutable_generator_optimizer()->set_beta2(kNaN);
  EXPECT_THAT(Validate(spec), StatusIs(kInvalid, StartsWith("generator_optimizer.beta2:")));
  spec = Seed();
  spec.mutable_generator_optimizer()->set_epsilon(0);
  EXPECT_THAT(Validate(spec), StatusIs(kInvalid, StartsWith("generator_optimizer.epsilon:")));
}

TEST(GanSpecTest, RejectsImageShape) {
  gan::v1::GanSpec spec = Seed();
  spec.mutable_image_shape()->set_height(0);
  // The message names the message holding height and width, not the single field.
  EXPECT_THAT(Validate(spec), StatusIs(kInvalid, StartsWith("image_shape")));
  spec = Seed();
  spec.mutable_image_shape()->set_channels(5);
  EXPECT_THAT(Validate(spec), StatusIs(kInvalid, StartsWith("image_shape.channels:")));
}

TEST(GanSpecTest, AcceptsEveryPrecision) {
  for (gan::v1::Precision precision : {gan::v1::PRECISION_UNSPECIFIED, gan::v1::PRECISION_FP32,
                                       gan::v1::PRECISION_BF16}) {
    SCOPED_TRACE(gan::v1::Precision_Name(precision));
    gan::v1::GanSpec spec = Seed();
    spec.set_precision(precision);
    // Validation is about the spec; whether this CPU can run bf16 is CheckPrecisionSupported's.
    EXPECT_THAT(Validate(spec), IsOk());
  }
}

TEST(GanSpecTest, RejectsPrecisionOutOfRange) {
  // proto3 enums are open: a client can send any number.
  for (int value : {3, -1, 1000}) {
    SCOPED_TRACE(value);
    gan::v1::GanSpec spec = Seed();
    spec.set_precision(static_cast<gan::v1::Precision>(value));
    EXPECT_THAT(Validate(spec),
                StatusIs(kInvalid, AllOf(StartsWith("precision:"), HasSubstr("PRECISION_BF16"))));
  }
}

// --- Resource caps (small custom limits: validation allocates nothing either way) -------------

TEST(GanSpecTest, RejectsTooManyParameters) {
  GanLimits limits;
  // The seed generator has ~6.8M parameters, its discriminator ~1.03M.
  limits.model.max_parameters = 8 << 20;
  gan::v1::GanSpec spec = Seed();
  ASSERT_THAT(ValidateGanSpec(spec, limits), IsOk());
  D(spec, 5)->mutable_dense()->set_units(4096);  // 3200 x 4096 = 13.1M weights
  EXPECT_THAT(ValidateGanSpec(spec, limits),
              StatusIs(kExhausted, StartsWith("discriminator.layers[5]:")));
}

TEST(GanSpecTest, RejectsActivationsOverTheLimitAtLargeBatch) {
  GanLimits limits;
  limits.model.max_activation_bytes = 64 << 20;  // the seed networks need ~36 MB at batch 32
  gan::v1::GanSpec spec = Seed();
  ASSERT_THAT(ValidateGanSpec(spec, limits), IsOk());
  spec.set_batch_size(limits.max_batch_size);
  EXPECT_THAT(ValidateGanSpec(spec, limits),
              StatusIs(kExhausted, AllOf(StartsWith("generator.layers["), HasSubstr("4096"))));
}

}  // namespace
}  // namespace gan
