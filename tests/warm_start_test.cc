// Warm starts (core/warm_start.h): a run started from a checkpoint continues exactly where the
// checkpoint's trainer was (weights, BatchNorm statistics and, on request, Adam); a file that does
// not match the networks is refused naming the first tensor, with both shapes, and changes
// nothing; a file written from PyTorch (tests/data/reference/init/small_gan_pytorch.safetensors,
// by scripts/make_reference_data.py) loads, also through TrainingRun as gan-train --init does.

#include "core/warm_start.h"

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/checkpoint.h"
#include "core/dataset.h"
#include "core/init.h"
#include "core/training_run.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "tests/small_gan_spec.h"
#include "tests/test_util.h"

namespace gan {
namespace {

using ::gan::testing::IsOk;
using ::gan::testing::MakeTempDir;
using ::gan::testing::StatusIs;
using ::gan::testing::TestDataPath;
using ::testing::AllOf;
using ::testing::HasSubstr;

gan::v1::GanSpec SmallSpec() {
  return gan::testing::SmallConvGanSpec(gan::testing::SmallConvLayer5::kConv2DTranspose,
                                        gan::v1::NOISE_DISTRIBUTION_UNIFORM);
}

std::unique_ptr<GanTrainer> NewTrainer(const gan::v1::GanSpec& spec, uint64_t seed) {
  absl::StatusOr<std::unique_ptr<GanTrainer>> trainer = GanTrainer::Create(spec);
  EXPECT_TRUE(trainer.ok()) << trainer.status();
  if (!trainer.ok()) return nullptr;
  InitializeGlorotUniform(seed, &(*trainer)->generator());
  InitializeGlorotUniform(seed + 1, &(*trainer)->discriminator());
  return *std::move(trainer);
}

// One step on a fixed batch with the randomness of (seed 5, step).
StepMetrics StepOn(GanTrainer& trainer, int64_t step) {
  std::vector<float> real(trainer.real_batch_size());
  for (size_t i = 0; i < real.size(); ++i) real[i] = std::sin(0.37 * i);
  SeededRandomness randomness(5, step, trainer.spec().noise().distribution());
  return trainer.Step(real, randomness);
}

std::vector<float> AllValues(ParameterStore& store) {
  std::vector<float> values = store.trainable();
  values.insert(values.end(), store.state().begin(), store.state().end());
  return values;
}

TEST(WarmStartTest, WithTheOptimizerTheRunContinuesExactly) {
  std::unique_ptr<GanTrainer> source = NewTrainer(SmallSpec(), 1);
  ASSERT_NE(source, nullptr);
  for (int64_t t = 0; t < 3; ++t) StepOn(*source, t);
  const SafeTensors checkpoint = MakeCheckpoint(*source, {3, 0, 1});

  std::unique_ptr<GanTrainer> warm = NewTrainer(SmallSpec(), 99);
  ASSERT_NE(warm, nullptr);
  ASSERT_THAT(WarmStart(checkpoint, /*with_optimizer=*/true, warm.get()), IsOk());
  EXPECT_EQ(warm->step(), 0);  // the new run counts its own steps
  EXPECT_EQ(AllValues(warm->generator()), AllValues(source->generator()));
  EXPECT_EQ(AllValues(warm->discriminator()), AllValues(source->discriminator()));
  EXPECT_EQ(warm->generator().batches_tracked(), source->generator().batches_tracked());
  EXPECT_EQ(warm->generator_optimizer().steps(), 3);
  EXPECT_EQ(warm->discriminator_optimizer().exp_avg_sq(),
            source->discriminator_optimizer().exp_avg_sq());
  // Same weights, statistics and Adam state: the next two steps agree bit for bit (numbered
  // alike here; a warm-started job numbers its steps from 0).
  warm->set_step(source->step());
  for (int64_t t = 3; t < 5; ++t) {
    ::gan::testing::ExpectBitwiseEqual(StepOn(*warm, t), StepOn(*source, t));
  }
  EXPECT_EQ(AllValues(warm->generator()), AllValues(source->generator()));
}

TEST(WarmStartTest, WithoutTheOptimizerAdamStartsFresh) {
  std::unique_ptr<GanTrainer> source = NewTrainer(SmallSpec(), 1);
  ASSERT_NE(source, nullptr);
  for (int64_t t = 0; t < 3; ++t) StepOn(*source, t);
  const SafeTensors checkpoint = MakeCheckpoint(*source, {3, 0, 1});
  std::unique_ptr<GanTrainer> warm = NewTrainer(SmallSpec(), 99);
  ASSERT_NE(warm, nullptr);
  ASSERT_THAT(WarmStart(checkpoint, /*with_optimizer=*/false, warm.get()), IsOk());
  EXPECT_EQ(warm->generator_optimizer().steps(), 0);
  EXPECT_EQ(AllValues(warm->discriminator()), AllValues(source->discriminator()));
  // D's loss in the first step comes from the weights alone; D's Adam update after it, and so G's
  // loss through the updated D, do not.
  const StepMetrics a = StepOn(*warm, 3), b = StepOn(*source, 3);
  EXPECT_EQ(a.d_loss, b.d_loss);
  EXPECT_EQ(a.d_real, b.d_real);
  EXPECT_NE(a.g_loss, b.g_loss);
  EXPECT_NE(AllValues(warm->generator()), AllValues(source->generator()));
}

TEST(WarmStartTest, AMismatchNamesTheFirstTensorWithBothShapesAndChangesNothing) {
  std::unique_ptr<GanTrainer> source = NewTrainer(SmallSpec(), 1);
  ASSERT_NE(source, nullptr);
  const SafeTensors checkpoint = MakeCheckpoint(*source, {0, 0, 1});
  gan::v1::GanSpec wider = SmallSpec();
  // Discriminator entry 0: 4 -> 6 filters changes discriminator.0.weight and, after it, the
  // Dense entry 4's input; generator tensors all match.
  wider.mutable_discriminator()->mutable_layers(0)->mutable_conv2d()->set_filters(6);
  std::unique_ptr<GanTrainer> warm = NewTrainer(wider, 7);
  ASSERT_NE(warm, nullptr);
  const std::vector<float> before = AllValues(warm->generator());
  EXPECT_THAT(WarmStart(checkpoint, false, warm.get()),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("'discriminator.0.weight'"), HasSubstr("(4,1,3,3)"),
                             HasSubstr("(6,1,3,3)"))));
  EXPECT_EQ(AllValues(warm->generator()), before);

  absl::StatusOr<GanShapes> shapes = ValidateGanSpec(wider, GanLimits{});
  ASSERT_TRUE(shapes.ok());
  EXPECT_THAT(CheckWarmStartTensors(checkpoint, *shapes, false),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("discriminator.0.weight")));
}

TEST(WarmStartTest, MissingExtraAndOptimizerTensorsAreNamed) {
  std::unique_ptr<GanTrainer> source = NewTrainer(SmallSpec(), 1);
  ASSERT_NE(source, nullptr);
  const SafeTensors checkpoint = MakeCheckpoint(*source, {0, 0, 1});
  absl::StatusOr<GanShapes> shapes = ValidateGanSpec(SmallSpec(), GanLimits{});
  ASSERT_TRUE(shapes.ok());
  EXPECT_THAT(CheckWarmStartTensors(checkpoint, *shapes, true), IsOk());

  SafeTensors missing = checkpoint;
  missing.tensors.erase("generator.6.running_var");
  EXPECT_THAT(CheckWarmStartTensors(missing, *shapes, false),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("'generator.6.running_var' is missing")));

  SafeTensors extra = checkpoint;
  extra.tensors["discriminator.9.weight"] = MakeF32Tensor({2}, {1, 2});
  EXPECT_THAT(CheckWarmStartTensors(extra, *shapes, false),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("'discriminator.9.weight' (shape (2)) is in the file")));

  SafeTensors weights_only;
  for (const auto& [name, tensor] : checkpoint.tensors) {
    if (name.rfind("optimizer.", 0) != 0) weights_only.tensors[name] = tensor;
  }
  EXPECT_THAT(CheckWarmStartTensors(weights_only, *shapes, false), IsOk());
  EXPECT_THAT(CheckWarmStartTensors(weights_only, *shapes, true),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("'optimizer.generator.0.weight.exp_avg' is missing")));
}

SafeTensors PyTorchFile() {
  absl::StatusOr<SafeTensors> file =
      ReadSafeTensorsFile(TestDataPath("reference/init/small_gan_pytorch.safetensors"));
  EXPECT_TRUE(file.ok()) << file.status();
  return file.ok() ? *std::move(file) : SafeTensors{};
}

TEST(WarmStartTest, LoadsAFileWrittenFromPyTorch) {
  const SafeTensors file = PyTorchFile();
  absl::StatusOr<gan::v1::GanSpec> spec = CheckpointSpec(file);
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(*spec, SmallSpec()))
      << spec->DebugString();
  std::unique_ptr<GanTrainer> trainer = NewTrainer(SmallSpec(), 3);
  ASSERT_NE(trainer, nullptr);
  ASSERT_THAT(WarmStart(file, false, trainer.get()), IsOk());
  for (ParameterStore* store : {&trainer->generator(), &trainer->discriminator()}) {
    for (const ParameterStore::Entry& e : store->entries()) {
      SCOPED_TRACE(e.name);
      absl::StatusOr<std::vector<float>> values = GetF32(file, e.name, e.dims);
      ASSERT_TRUE(values.ok()) << values.status();
      const float* data = store->Data(e);
      EXPECT_EQ(std::vector<float>(data, data + values->size()), *values);
      if (store->Find(e.layer, "running_mean") != nullptr) continue;
      // PyTorch drew these: they respect the bound of our PyTorch initializer and, with enough
      // draws, come close to it (a ConvTranspose2d fan_in taken from its input channels would
      // give the bound 1/6 < 1/sqrt(27) that PyTorch's draws of entry 5 exceed).
      const double bound = PyTorchInitBound(store->Find(e.layer, "weight")->dims);
      double max_abs = 0;
      for (float v : *values) max_abs = std::max(max_abs, std::abs(static_cast<double>(v)));
      EXPECT_LE(max_abs, bound);
      if (values->size() >= 100) {
        EXPECT_GT(max_abs, 0.9 * bound);
      }
    }
  }
  for (int64_t t = 0; t < 3; ++t) {
    const StepMetrics m = StepOn(*trainer, t);
    EXPECT_TRUE(std::isfinite(m.d_loss) && std::isfinite(m.g_loss));
  }
}

TEST(WarmStartTest, TrainingRunStartsFromTheInitFile) {
  const ImageDataset dataset = MakeSyntheticDataset(16, 3, 8, 8, 1);
  TrainingOptions options;
  options.spec = SmallSpec();
  options.seed = 4;
  options.total_steps = 2;
  options.init_checkpoint = TestDataPath("reference/init/small_gan_pytorch.safetensors");
  absl::StatusOr<std::unique_ptr<TrainingRun>> run = TrainingRun::Create(options, &dataset);
  ASSERT_TRUE(run.ok()) << run.status();
  absl::StatusOr<std::vector<float>> weight = GetF32(PyTorchFile(), "generator.5.weight");
  ASSERT_TRUE(weight.ok());
  const float* ours = (*run)->trainer().generator().Value(5, "weight");
  EXPECT_EQ(std::vector<float>(ours, ours + weight->size()), *weight);
  EXPECT_THAT((*run)->Run({}), IsOk());

  // The Adam state is not in a weights-only file; a mismatched spec names the file.
  options.init_optimizer = true;
  EXPECT_THAT(TrainingRun::Create(options, &dataset).status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("small_gan_pytorch.safetensors"),
                             HasSubstr("optimizer.generator.0.weight.exp_avg"))));
  options.init_optimizer = false;
  options.spec.mutable_generator()->mutable_layers(0)->mutable_dense()->set_units(32);
  options.spec.mutable_generator()->mutable_layers(3)->mutable_reshape()->set_channels(2);
  EXPECT_THAT(TrainingRun::Create(options, &dataset).status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("'generator.0.weight' has shape (64,8) in the file"),
                             HasSubstr("the network needs (32,8)"))));
}

}  // namespace
}  // namespace gan
