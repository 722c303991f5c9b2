// TrainingRun (core/training_run.h): what survives a restart. The same spec,
// seed and thread count give the same losses; a run interrupted at a checkpoint
// and resumed reproduces the uninterrupted run's metrics and final parameters
// exactly (for a small spec and every preset); old checkpoints are pruned; a
// mismatched dataset or another run's checkpoint is refused.

#include "core/training_run.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/dataset.h"
#include "core/presets.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/small_gan_spec.h"
#include "tests/test_util.h"

namespace gan {
namespace {

using ::gan::testing::IsOk;
using ::gan::testing::MakeTempDir;
using ::gan::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

// 8x8x1 images, noise 8; both networks small enough that a step takes about a
// millisecond.
gan::v1::GanSpec SmallSpec() {
  return gan::testing::SmallConvGanSpec(gan::testing::SmallConvLayer5::kConv2D,
                                        gan::v1::NOISE_DISTRIBUTION_NORMAL);
}

// 10 images at batch 4: 2 batches per epoch, so a few steps cross epochs.
const ImageDataset& SmallDataset() {
  static const ImageDataset* dataset =
      new ImageDataset(MakeSyntheticDataset(10, 3, 8, 8, 1));
  return *dataset;
}

TrainingOptions SmallOptions(int64_t total_steps,
                             const std::string& checkpoint_dir = "") {
  TrainingOptions options;
  options.spec = SmallSpec();
  options.seed = 17;
  options.total_steps = total_steps;
  options.checkpoint_dir = checkpoint_dir;
  return options;
}

struct RecordedStep {
  StepMetrics metrics;
  int64_t epoch;
};

// Parameters, statistics and optimizer state of one network, compared bit for
// bit.
struct NetworkState {
  std::vector<float> trainable, state, exp_avg, exp_avg_sq;
  std::map<int, int64_t> batches_tracked;
  int64_t adam_steps = 0;
};

NetworkState CaptureNetwork(ParameterStore& store, Adam& adam) {
  return {store.trainable(), store.state(),           adam.exp_avg(),
          adam.exp_avg_sq(), store.batches_tracked(), adam.steps()};
}

bool SameBits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() &&
         std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

void ExpectSameNetwork(const std::string& what, const NetworkState& a,
                       const NetworkState& b) {
  EXPECT_TRUE(SameBits(a.trainable, b.trainable)) << what << " parameters";
  EXPECT_TRUE(SameBits(a.state, b.state))
      << what << " BatchNorm running statistics";
  EXPECT_TRUE(SameBits(a.exp_avg, b.exp_avg)) << what << " Adam exp_avg";
  EXPECT_TRUE(SameBits(a.exp_avg_sq, b.exp_avg_sq))
      << what << " Adam exp_avg_sq";
  EXPECT_EQ(a.batches_tracked, b.batches_tracked)
      << what << " num_batches_tracked";
  EXPECT_EQ(a.adam_steps, b.adam_steps) << what << " Adam steps";
}

struct RunResult {
  std::vector<RecordedStep> steps;
  NetworkState generator, discriminator;
  int64_t final_step = 0;
  std::vector<int64_t> checkpoints;
};

// Creates a run, optionally resumes it (expecting `expected_resume_step`), runs
// it to the end or until `stop_at`, and records everything.
void RunAndRecord(const TrainingOptions& options, const ImageDataset& dataset,
                  RunResult* result, int64_t expected_resume_step = -1,
                  int64_t stop_at = -1) {
  GAN_ASSERT_OK_AND_ASSIGN(std::unique_ptr<TrainingRun> run,
                           TrainingRun::Create(options, &dataset));
  if (expected_resume_step >= 0) {
    GAN_ASSERT_OK_AND_ASSIGN(int64_t resumed, run->ResumeFromLatest());
    EXPECT_EQ(resumed, expected_resume_step);
    EXPECT_EQ(run->step(), expected_resume_step);
  }
  TrainingCallbacks callbacks;
  callbacks.on_step = [result](const StepMetrics& m, int64_t epoch, double) {
    result->steps.push_back({m, epoch});
  };
  if (stop_at >= 0)
    callbacks.should_stop = [&run, stop_at] { return run->step() >= stop_at; };
  ASSERT_THAT(run->Run(callbacks), IsOk());
  GanTrainer& trainer = run->trainer();
  result->generator =
      CaptureNetwork(trainer.generator(), trainer.generator_optimizer());
  result->discriminator = CaptureNetwork(trainer.discriminator(),
                                         trainer.discriminator_optimizer());
  result->final_step = run->step();
  if (!options.checkpoint_dir.empty())
    result->checkpoints = run->CheckpointSteps();
}

void ExpectSameStep(const RecordedStep& actual, const RecordedStep& expected) {
  const StepMetrics& a = actual.metrics;
  const StepMetrics& b = expected.metrics;
  SCOPED_TRACE(absl::StrCat("step ", b.step));
  EXPECT_EQ(actual.epoch, expected.epoch);
  ::gan::testing::ExpectBitwiseEqual(a, b);
}

TEST(TrainingRunTest, SameSpecSeedAndThreadsGiveTheSameLosses) {
  RunResult first, second, other_seed;
  RunAndRecord(SmallOptions(6), SmallDataset(), &first);
  RunAndRecord(SmallOptions(6), SmallDataset(), &second);
  ASSERT_EQ(first.steps.size(), 6u);
  ASSERT_EQ(second.steps.size(), 6u);
  for (size_t i = 0; i < first.steps.size(); ++i) {
    EXPECT_EQ(first.steps[i].metrics.step, static_cast<int64_t>(i));
    EXPECT_EQ(first.steps[i].epoch, static_cast<int64_t>(i / 2));
    ExpectSameStep(second.steps[i], first.steps[i]);
  }
  ExpectSameNetwork("generator", second.generator, first.generator);
  ExpectSameNetwork("discriminator", second.discriminator, first.discriminator);

  // The seed matters: another one gives other losses.
  TrainingOptions options = SmallOptions(6);
  options.seed = 18;
  RunAndRecord(options, SmallDataset(), &other_seed);
  ASSERT_EQ(other_seed.steps.size(), 6u);
  EXPECT_NE(other_seed.steps[0].metrics.d_loss, first.steps[0].metrics.d_loss);
}

std::string ReadBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// A run of N steps with a checkpoint every K; then the checkpoints after K are
// deleted (as if the process had died right after writing step K) and a fresh
// run on the same checkpoint_dir resumes. Small spec: N 7, K 3 (2 batches per
// epoch). Presets at batch 4: N 4, K 2 (12 images, 3 batches per epoch, so the
// resumed part crosses an epoch boundary).
class ResumeTest : public ::testing::TestWithParam<std::string> {};

TEST_P(ResumeTest, ResumedRunMatchesTheUninterruptedOne) {
  TrainingOptions options;
  const ImageDataset* dataset = &SmallDataset();
  std::unique_ptr<ImageDataset> preset_dataset;
  int64_t total = 7, every = 3;
  if (GetParam() == "small") {
    options = SmallOptions(total);
  } else {
    GAN_ASSERT_OK_AND_ASSIGN(options.spec, PresetSpec(GetParam()));
    options.spec.set_batch_size(4);
    options.seed = 23;
    total = 4, every = 2;
    preset_dataset =
        std::make_unique<ImageDataset>(MakeSyntheticDataset(12, 4));
    dataset = preset_dataset.get();
  }
  options.total_steps = total;
  options.checkpoint_every = every;
  options.checkpoint_dir = MakeTempDir("ckpt");

  RunResult full;
  RunAndRecord(options, *dataset, &full);
  ASSERT_EQ(full.steps.size(), static_cast<size_t>(total));
  std::vector<int64_t> expected_checkpoints;
  for (int64_t s = every; s < total; s += every)
    expected_checkpoints.push_back(s);
  expected_checkpoints.push_back(total);
  ASSERT_EQ(full.checkpoints, expected_checkpoints);
  std::map<int64_t, std::string> later_files;
  for (int64_t s : expected_checkpoints) {
    if (s <= every) continue;
    const std::string path =
        absl::StrCat(options.checkpoint_dir, "/step-", s, ".safetensors");
    later_files[s] = ReadBytes(path);
    ASSERT_TRUE(std::filesystem::remove(path)) << path;
  }

  RunResult resumed;
  RunAndRecord(options, *dataset, &resumed, /*expected_resume_step=*/every);
  ASSERT_EQ(resumed.steps.size(), static_cast<size_t>(total - every));
  for (int64_t i = every; i < total; ++i)
    ExpectSameStep(resumed.steps[i - every], full.steps[i]);
  EXPECT_EQ(resumed.final_step, total);
  ExpectSameNetwork("generator", resumed.generator, full.generator);
  ExpectSameNetwork("discriminator", resumed.discriminator, full.discriminator);
  // The rewritten checkpoints are the very same files (weights, moments,
  // metadata).
  EXPECT_EQ(resumed.checkpoints, expected_checkpoints);
  for (const auto& [s, bytes] : later_files) {
    EXPECT_TRUE(ReadBytes(absl::StrCat(options.checkpoint_dir, "/step-", s,
                                       ".safetensors")) == bytes)
        << "step-" << s << ".safetensors differs from the uninterrupted run's";
  }
}

INSTANTIATE_TEST_SUITE_P(SmallSpecAndPresets, ResumeTest,
                         ::testing::Values("small", "seed", "seed-dcgan",
                                           "tf-dcgan"),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           std::string name = info.param;
                           std::replace(name.begin(), name.end(), '-', '_');
                           return name;
                         });

TEST(TrainingRunTest, StopRequestCheckpointsAndTheNextRunContinues) {
  TrainingOptions options = SmallOptions(6);
  RunResult full;
  RunAndRecord(options, SmallDataset(), &full);

  // Stopped after step 4 (no periodic checkpoints): the stop writes one; a new
  // run resumes.
  options.checkpoint_dir = MakeTempDir("ckpt");
  RunResult stopped, resumed;
  RunAndRecord(options, SmallDataset(), &stopped, /*expected_resume_step=*/-1,
               /*stop_at=*/4);
  EXPECT_EQ(stopped.final_step, 4);
  EXPECT_EQ(stopped.checkpoints, std::vector<int64_t>{4});
  ASSERT_EQ(stopped.steps.size(), 4u);
  for (int64_t i = 0; i < 4; ++i)
    ExpectSameStep(stopped.steps[i], full.steps[i]);

  RunAndRecord(options, SmallDataset(), &resumed, /*expected_resume_step=*/4);
  ASSERT_EQ(resumed.steps.size(), 2u);
  for (int64_t i = 4; i < 6; ++i)
    ExpectSameStep(resumed.steps[i - 4], full.steps[i]);
  EXPECT_EQ(resumed.checkpoints, (std::vector<int64_t>{4, 6}));
  ExpectSameNetwork("generator", resumed.generator, full.generator);
  ExpectSameNetwork("discriminator", resumed.discriminator, full.discriminator);
}

TEST(TrainingRunTest, KeepCheckpointsKeepsOnlyTheNewest) {
  for (int keep : {0, 1, 3}) {
    SCOPED_TRACE(absl::StrCat("keep_checkpoints ", keep));
    TrainingOptions options =
        SmallOptions(10, MakeTempDir(absl::StrCat("keep", keep)));
    options.checkpoint_every = 2;
    options.keep_checkpoints = keep;
    GAN_ASSERT_OK_AND_ASSIGN(std::unique_ptr<TrainingRun> run,
                             TrainingRun::Create(options, &SmallDataset()));
    std::vector<int64_t> written;
    TrainingCallbacks callbacks;
    callbacks.on_checkpoint = [&](int64_t step, const std::string& path) {
      written.push_back(step);
      EXPECT_EQ(path, run->CheckpointPath(step));
      EXPECT_TRUE(std::filesystem::exists(path))
          << path << " is durable when reported";
    };
    ASSERT_THAT(run->Run(callbacks), IsOk());
    EXPECT_THAT(written, ElementsAre(2, 4, 6, 8, 10));

    const std::vector<int64_t> all = {2, 4, 6, 8, 10};
    const std::vector<int64_t> kept(all.end() - (keep == 0 ? all.size() : keep),
                                    all.end());
    EXPECT_EQ(run->CheckpointSteps(), kept);
    std::vector<std::string> files;
    for (int64_t step : kept)
      files.push_back(absl::StrCat("step-", step, ".safetensors"));
    std::sort(files.begin(), files.end());
    EXPECT_EQ(::gan::testing::DirectoryNames(options.checkpoint_dir), files)
        << "nothing else, no temp files";
  }
}

TEST(TrainingRunTest, DatasetOfAnotherImageShapeIsInvalidArgument) {
  const ImageDataset larger = MakeSyntheticDataset(8, 1, 28, 28, 1);
  EXPECT_THAT(
      TrainingRun::Create(SmallOptions(2), &larger),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("28x28x1")));
  const ImageDataset color = MakeSyntheticDataset(8, 1, 8, 8, 3);
  EXPECT_THAT(
      TrainingRun::Create(SmallOptions(2), &color),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("image_shape")));
}

TEST(TrainingRunTest, ResumeWithoutCheckpointsStartsAtZero) {
  for (const std::string& dir : {std::string(), MakeTempDir("empty")}) {
    GAN_ASSERT_OK_AND_ASSIGN(
        std::unique_ptr<TrainingRun> run,
        TrainingRun::Create(SmallOptions(2, dir), &SmallDataset()));
    GAN_ASSERT_OK_AND_ASSIGN(int64_t step, run->ResumeFromLatest());
    EXPECT_EQ(step, 0);
    EXPECT_EQ(run->step(), 0);
  }
}

TEST(TrainingRunTest, ResumeFromAnotherSeedsCheckpointIsFailedPrecondition) {
  const std::string dir = MakeTempDir("ckpt");
  RunResult first;
  RunAndRecord(SmallOptions(2, dir), SmallDataset(), &first);
  ASSERT_EQ(first.checkpoints, std::vector<int64_t>{2});

  TrainingOptions options = SmallOptions(4, dir);
  options.seed = 18;
  GAN_ASSERT_OK_AND_ASSIGN(std::unique_ptr<TrainingRun> run,
                           TrainingRun::Create(options, &SmallDataset()));
  EXPECT_THAT(run->ResumeFromLatest(),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       ::testing::AllOf(HasSubstr("seed 17"),
                                        HasSubstr("step-2.safetensors"))));
}

TEST(TrainingRunTest, RefusedResumeLeavesTheRunUntouched) {
  // Like RestoreCheckpoint, a refused resume should not leave the run holding
  // another run's weights and step (a caller that logs the error and trains on
  // would mix the two runs).
  const std::string dir = MakeTempDir("ckpt");
  RunResult first;
  RunAndRecord(SmallOptions(2, dir), SmallDataset(), &first);

  TrainingOptions options = SmallOptions(4, dir);
  options.seed = 18;
  GAN_ASSERT_OK_AND_ASSIGN(std::unique_ptr<TrainingRun> run,
                           TrainingRun::Create(options, &SmallDataset()));
  GanTrainer& trainer = run->trainer();
  const NetworkState generator =
      CaptureNetwork(trainer.generator(), trainer.generator_optimizer());
  const NetworkState discriminator = CaptureNetwork(
      trainer.discriminator(), trainer.discriminator_optimizer());
  EXPECT_THAT(
      run->ResumeFromLatest(),
      StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("seed")));
  EXPECT_EQ(run->step(), 0);
  ExpectSameNetwork(
      "generator",
      CaptureNetwork(trainer.generator(), trainer.generator_optimizer()),
      generator);
  ExpectSameNetwork("discriminator",
                    CaptureNetwork(trainer.discriminator(),
                                   trainer.discriminator_optimizer()),
                    discriminator);
}

}  // namespace
}  // namespace gan
