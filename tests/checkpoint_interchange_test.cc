// Weights trained in PyTorch load into the engine: the seed preset's
// discriminator as an nn.Sequential state_dict
// (tests/data/reference/interchange, written by scripts/make_reference_data.py)
// loads with LoadNetworkWeights and scores PyTorch's images to PyTorch's
// eval-mode logits and probabilities. The other direction (a gan-train
// checkpoint into PyTorch with strict=True) is
// scripts/load_checkpoint_in_torch.py.

#include <memory>
#include <string>
#include <vector>

#include "core/checkpoint.h"
#include "core/gan_spec.h"
#include "core/parameter_store.h"
#include "core/presets.h"
#include "core/safetensors.h"
#include "core/scorer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/test_util.h"

namespace gan {
namespace {

using ::gan::testing::ExpectAllClose;
using ::gan::testing::IsOk;
using ::gan::testing::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;

constexpr int64_t kImages = 8;

absl::StatusOr<SafeTensors> ReadInterchange(const std::string& name) {
  return ReadSafeTensorsFile(
      ::gan::testing::TestDataPath("reference/interchange/" + name));
}

absl::StatusOr<GanShapes> PresetShapes(const std::string& preset) {
  absl::StatusOr<gan::v1::GanSpec> spec = PresetSpec(preset);
  if (!spec.ok()) return spec.status();
  return ValidateGanSpec(*spec, GanLimits{});
}

TEST(CheckpointInterchangeTest, PyTorchDiscriminatorScoresAsInPyTorch) {
  GAN_ASSERT_OK_AND_ASSIGN(SafeTensors weights,
                           ReadInterchange("seed_discriminator.safetensors"));
  GAN_ASSERT_OK_AND_ASSIGN(
      SafeTensors outputs,
      ReadInterchange("seed_discriminator_outputs.safetensors"));
  GAN_ASSERT_OK_AND_ASSIGN(GanShapes shapes, PresetShapes("seed"));
  ASSERT_TRUE(shapes.discriminator_ends_with_sigmoid);
  ParameterStore store("discriminator", shapes.discriminator);
  ASSERT_THAT(LoadNetworkWeights(weights, &store), IsOk());

  // Every tensor of the store came from the file (nothing left at its zero
  // start).
  for (const ParameterStore::Entry& e : store.entries()) {
    GAN_ASSERT_OK_AND_ASSIGN(std::vector<float> expected,
                             GetF32(weights, e.name, e.dims));
    ExpectAllClose(e.name, store.Data(e), expected.data(), expected.size(), 0,
                   0);
  }

  GAN_ASSERT_OK_AND_ASSIGN(std::vector<float> images,
                           GetF32(outputs, "images", {kImages, 1, 28, 28}));
  GAN_ASSERT_OK_AND_ASSIGN(std::vector<float> expected_logits,
                           GetF32(outputs, "logits", {kImages, 1}));
  GAN_ASSERT_OK_AND_ASSIGN(std::vector<float> expected_probabilities,
                           GetF32(outputs, "probabilities", {kImages, 1}));
  // A chunk of 4 also exercises a full chunk followed by a tail network.
  for (int64_t chunk : {int64_t{64}, int64_t{4}, int64_t{3}}) {
    SCOPED_TRACE(chunk);
    Scorer scorer(shapes.discriminator, &store, chunk);
    std::vector<float> logits(kImages), probabilities(kImages);
    ASSERT_THAT(scorer.Score(images, kImages, absl::MakeSpan(logits),
                             absl::MakeSpan(probabilities)),
                IsOk());
    ExpectAllClose("logits", logits, expected_logits, /*atol=*/1e-4,
                   /*rtol=*/0);
    ExpectAllClose("probabilities", probabilities, expected_probabilities,
                   /*atol=*/1e-4,
                   /*rtol=*/0);
  }
}

TEST(CheckpointInterchangeTest,
     OtherArchitecturesRejectTheFileNamingTheTensor) {
  GAN_ASSERT_OK_AND_ASSIGN(SafeTensors weights,
                           ReadInterchange("seed_discriminator.safetensors"));

  // tf-dcgan's discriminator: entry 0 matches (64 5x5 filters), entry 3 is a
  // Conv2D where the seed has an activation, so the file lacks its weight.
  GAN_ASSERT_OK_AND_ASSIGN(GanShapes tf_dcgan, PresetShapes("tf-dcgan"));
  ParameterStore tf_store("discriminator", tf_dcgan.discriminator);
  EXPECT_THAT(LoadNetworkWeights(weights, &tf_store),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("discriminator.3.weight")));
  for (float v : tf_store.trainable())
    ASSERT_EQ(v, 0.0f) << "nothing is copied on failure";

  // The seed's layer list with 128 Dense units: same names, other shape.
  GAN_ASSERT_OK_AND_ASSIGN(gan::v1::GanSpec narrower, PresetSpec("seed"));
  narrower.mutable_discriminator()
      ->mutable_layers(5)
      ->mutable_dense()
      ->set_units(128);
  GAN_ASSERT_OK_AND_ASSIGN(GanShapes narrower_shapes,
                           ValidateGanSpec(narrower, GanLimits{}));
  ParameterStore narrower_store("discriminator", narrower_shapes.discriminator);
  EXPECT_THAT(LoadNetworkWeights(weights, &narrower_store),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("discriminator.5.weight"),
                             HasSubstr("(256,3200)"))));
  for (float v : narrower_store.trainable())
    ASSERT_EQ(v, 0.0f) << "nothing is copied on failure";

  // The generator finds none of its tensors in a discriminator file.
  GAN_ASSERT_OK_AND_ASSIGN(GanShapes seed, PresetShapes("seed"));
  ParameterStore generator("generator", seed.generator);
  EXPECT_THAT(LoadNetworkWeights(weights, &generator),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("generator.0.weight")));
}

}  // namespace
}  // namespace gan
