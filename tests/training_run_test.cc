// TrainingRun (core/training_run.h): what survives a restart. The same spec,
// seed and thread count give the same losses; a run interrupted at a checkpoint
// and resumed reproduces the uninterrupted run's metrics and final parameters
// exactly (for a small spec and every preset); old checkpoints are pruned; a
// mismatched dataset or another run's checkpoint is refused; a damaged newest
// checkpoint is set aside and the run resumes from the previous intact one; a
// checkpoint write that fails ends the run, naming the checkpoint, the cause and
// the intact previous checkpoint, whether it is written on the training thread or in the
// background (which writes the same files).

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
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/dataset.h"
#include "core/presets.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "io/atomic_file.h"
#include "tests/small_gan_spec.h"
#include "tests/test_util.h"

namespace gan {
namespace {

using ::gan::testing::IsOk;
using ::gan::testing::MakeTempDir;
using ::gan::testing::StatusIs;
using ::testing::AllOf;
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
  static const ImageDataset* dataset = new ImageDataset(MakeSyntheticDataset(10, 3, 8, 8, 1));
  return *dataset;
}

TrainingOptions SmallOptions(int64_t total_steps, const std::string& checkpoint_dir = "") {
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
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

void ExpectSameNetwork(const std::string& what, const NetworkState& a, const NetworkState& b) {
  EXPECT_TRUE(SameBits(a.trainable, b.trainable)) << what << " parameters";
  EXPECT_TRUE(SameBits(a.state, b.state)) << what << " BatchNorm running statistics";
  EXPECT_TRUE(SameBits(a.exp_avg, b.exp_avg)) << what << " Adam exp_avg";
  EXPECT_TRUE(SameBits(a.exp_avg_sq, b.exp_avg_sq)) << what << " Adam exp_avg_sq";
  EXPECT_EQ(a.batches_tracked, b.batches_tracked) << what << " num_batches_tracked";
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
void RunAndRecord(const TrainingOptions& options, const ImageDataset& dataset, RunResult* result,
                  int64_t expected_resume_step = -1, int64_t stop_at = -1) {
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
  if (stop_at >= 0) callbacks.should_stop = [&run, stop_at] { return run->step() >= stop_at; };
  ASSERT_THAT(run->Run(callbacks), IsOk());
  GanTrainer& trainer = run->trainer();
  result->generator = CaptureNetwork(trainer.generator(), trainer.generator_optimizer());
  result->discriminator =
      CaptureNetwork(trainer.discriminator(), trainer.discriminator_optimizer());
  result->final_step = run->step();
  if (!options.checkpoint_dir.empty()) result->checkpoints = run->CheckpointSteps();
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
    preset_dataset = std::make_unique<ImageDataset>(MakeSyntheticDataset(12, 4));
    dataset = preset_dataset.get();
  }
  options.total_steps = total;
  options.checkpoint_every = every;
  options.checkpoint_dir = MakeTempDir("ckpt");

  RunResult full;
  RunAndRecord(options, *dataset, &full);
  ASSERT_EQ(full.steps.size(), static_cast<size_t>(total));
  std::vector<int64_t> expected_checkpoints;
  for (int64_t s = every; s < total; s += every) expected_checkpoints.push_back(s);
  expected_checkpoints.push_back(total);
  ASSERT_EQ(full.checkpoints, expected_checkpoints);
  std::map<int64_t, std::string> later_files;
  for (int64_t s : expected_checkpoints) {
    if (s <= every) continue;
    const std::string path = absl::StrCat(options.checkpoint_dir, "/step-", s, ".safetensors");
    later_files[s] = ReadBytes(path);
    ASSERT_TRUE(std::filesystem::remove(path)) << path;
  }

  RunResult resumed;
  RunAndRecord(options, *dataset, &resumed, /*expected_resume_step=*/every);
  ASSERT_EQ(resumed.steps.size(), static_cast<size_t>(total - every));
  for (int64_t i = every; i < total; ++i) ExpectSameStep(resumed.steps[i - every], full.steps[i]);
  EXPECT_EQ(resumed.final_step, total);
  ExpectSameNetwork("generator", resumed.generator, full.generator);
  ExpectSameNetwork("discriminator", resumed.discriminator, full.discriminator);
  // The rewritten checkpoints are the very same files (weights, moments,
  // metadata).
  EXPECT_EQ(resumed.checkpoints, expected_checkpoints);
  for (const auto& [s, bytes] : later_files) {
    EXPECT_TRUE(ReadBytes(absl::StrCat(options.checkpoint_dir, "/step-", s, ".safetensors")) ==
                bytes)
        << "step-" << s << ".safetensors differs from the uninterrupted run's";
  }
}

INSTANTIATE_TEST_SUITE_P(SmallSpecAndPresets, ResumeTest,
                         ::testing::Values("small", "seed", "seed-dcgan", "tf-dcgan"),
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
  for (int64_t i = 0; i < 4; ++i) ExpectSameStep(stopped.steps[i], full.steps[i]);

  RunAndRecord(options, SmallDataset(), &resumed, /*expected_resume_step=*/4);
  ASSERT_EQ(resumed.steps.size(), 2u);
  for (int64_t i = 4; i < 6; ++i) ExpectSameStep(resumed.steps[i - 4], full.steps[i]);
  EXPECT_EQ(resumed.checkpoints, (std::vector<int64_t>{4, 6}));
  ExpectSameNetwork("generator", resumed.generator, full.generator);
  ExpectSameNetwork("discriminator", resumed.discriminator, full.discriminator);
}

TEST(TrainingRunTest, KeepCheckpointsKeepsOnlyTheNewest) {
  for (int keep : {0, 1, 3}) {
    SCOPED_TRACE(absl::StrCat("keep_checkpoints ", keep));
    TrainingOptions options = SmallOptions(10, MakeTempDir(absl::StrCat("keep", keep)));
    options.checkpoint_every = 2;
    options.keep_checkpoints = keep;
    GAN_ASSERT_OK_AND_ASSIGN(std::unique_ptr<TrainingRun> run,
                             TrainingRun::Create(options, &SmallDataset()));
    std::vector<int64_t> written;
    TrainingCallbacks callbacks;
    callbacks.on_checkpoint = [&](int64_t step, const std::string& path) {
      written.push_back(step);
      EXPECT_EQ(path, run->CheckpointPath(step));
      EXPECT_TRUE(std::filesystem::exists(path)) << path << " is durable when reported";
    };
    ASSERT_THAT(run->Run(callbacks), IsOk());
    EXPECT_THAT(written, ElementsAre(2, 4, 6, 8, 10));

    const std::vector<int64_t> all = {2, 4, 6, 8, 10};
    const std::vector<int64_t> kept(all.end() - (keep == 0 ? all.size() : keep), all.end());
    EXPECT_EQ(run->CheckpointSteps(), kept);
    std::vector<std::string> files;
    for (int64_t step : kept) files.push_back(absl::StrCat("step-", step, ".safetensors"));
    std::sort(files.begin(), files.end());
    EXPECT_EQ(::gan::testing::DirectoryNames(options.checkpoint_dir), files)
        << "nothing else, no temp files";
  }
}

// A background write (from a snapshot, on its own thread) gives the same files, in the same order,
// as writing on the training thread, and each is durable when reported; training does not wait
// for it, so the steps are the same too. A stop right after a periodic checkpoint in flight does
// not write that step again.
TEST(TrainingRunTest, BackgroundCheckpointsAreTheFilesForegroundOnesWouldBe) {
  std::map<bool, std::map<int64_t, std::string>> files;
  std::map<bool, RunResult> results;
  for (bool background : {false, true}) {
    SCOPED_TRACE(background ? "background" : "foreground");
    TrainingOptions options = SmallOptions(9, MakeTempDir("ckpt"));
    options.checkpoint_every = 2;
    options.background_checkpoints = background;
    GAN_ASSERT_OK_AND_ASSIGN(std::unique_ptr<TrainingRun> run,
                             TrainingRun::Create(options, &SmallDataset()));
    std::vector<int64_t> reported;
    TrainingCallbacks callbacks;
    callbacks.on_step = [&](const StepMetrics& m, int64_t epoch, double) {
      results[background].steps.push_back({m, epoch});
    };
    callbacks.on_checkpoint = [&](int64_t step, const std::string& path) {
      reported.push_back(step);
      EXPECT_EQ(path, run->CheckpointPath(step));
      files[background][step] = ReadBytes(path);  // whole and renamed when reported
    };
    ASSERT_THAT(run->Run(callbacks), IsOk());
    EXPECT_THAT(reported, ElementsAre(2, 4, 6, 8, 9));
    for (const auto& [step, bytes] : files[background]) {
      EXPECT_TRUE(ReadBytes(run->CheckpointPath(step)) == bytes) << "step " << step;
    }
  }
  EXPECT_TRUE(files[true] == files[false]) << "the checkpoints differ byte for byte";
  ASSERT_EQ(results[true].steps.size(), results[false].steps.size());
  for (size_t i = 0; i < results[true].steps.size(); ++i) {
    ExpectSameStep(results[true].steps[i], results[false].steps[i]);
  }

  TrainingOptions options = SmallOptions(9, MakeTempDir("stop"));
  options.checkpoint_every = 2;
  RunResult stopped;
  RunAndRecord(options, SmallDataset(), &stopped, /*expected_resume_step=*/-1, /*stop_at=*/4);
  EXPECT_EQ(stopped.checkpoints, (std::vector<int64_t>{2, 4}));
  EXPECT_TRUE(ReadBytes(absl::StrCat(options.checkpoint_dir, "/step-4.safetensors")) ==
              files[false][4]);
}

TEST(TrainingRunTest, DatasetOfAnotherImageShapeIsInvalidArgument) {
  const ImageDataset larger = MakeSyntheticDataset(8, 1, 28, 28, 1);
  EXPECT_THAT(TrainingRun::Create(SmallOptions(2), &larger),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("28x28x1")));
  const ImageDataset color = MakeSyntheticDataset(8, 1, 8, 8, 3);
  EXPECT_THAT(TrainingRun::Create(SmallOptions(2), &color),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("image_shape")));
}

TEST(TrainingRunTest, ResumeWithoutCheckpointsStartsAtZero) {
  for (const std::string& dir : {std::string(), MakeTempDir("empty")}) {
    GAN_ASSERT_OK_AND_ASSIGN(std::unique_ptr<TrainingRun> run,
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
                       ::testing::AllOf(HasSubstr("seed 17"), HasSubstr("step-2.safetensors"))));
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
  const NetworkState generator = CaptureNetwork(trainer.generator(), trainer.generator_optimizer());
  const NetworkState discriminator =
      CaptureNetwork(trainer.discriminator(), trainer.discriminator_optimizer());
  EXPECT_THAT(run->ResumeFromLatest(),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("seed")));
  EXPECT_EQ(run->step(), 0);
  ExpectSameNetwork("generator", CaptureNetwork(trainer.generator(), trainer.generator_optimizer()),
                    generator);
  ExpectSameNetwork("discriminator",
                    CaptureNetwork(trainer.discriminator(), trainer.discriminator_optimizer()),
                    discriminator);
}

std::string CheckpointFile(const TrainingOptions& options, int64_t step) {
  return absl::StrCat(options.checkpoint_dir, "/step-", step, ".safetensors");
}

void WriteBytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
}

// Ways a checkpoint file gets damaged after it was written.
struct Damage {
  std::string name;
  std::string (*apply)(const std::string& bytes);
};

uint64_t HeaderEnd(const std::string& bytes) {
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), sizeof(n));
  return 8 + n;
}

const std::vector<Damage>& Damages() {
  static const std::vector<Damage>* damages = new std::vector<Damage>{
      {"truncated", [](const std::string& b) { return b.substr(0, b.size() / 2); }},
      {"empty", [](const std::string&) { return std::string(); }},
      {"tensor_bytes_flipped",
       [](const std::string& b) {
         std::string out = b;
         for (size_t at = HeaderEnd(b) + 3; at < out.size(); at += 97) out[at] ^= 0x5a;
         return out;
       }},
      {"metadata_digit_changed",  // the file still parses: only the checksum can tell
       [](const std::string& b) {
         std::string out = b;
         const size_t at = out.find("\"epoch\":\"");
         if (at != std::string::npos) out[at + 9] = out[at + 9] == '9' ? '8' : '9';
         return out;
       }},
      {"bad_header",
       [](const std::string& b) {
         std::string out = b;
         out[8] = 'x';  // the JSON header's '{'
         return out;
       }},
      {"header_length_beyond_the_file",
       [](const std::string& b) {
         std::string out = b;
         for (int i = 0; i < 8; ++i) out[i] = '\x7f';
         return out;
       }},
  };
  return *damages;
}

class DamagedCheckpointTest : public ::testing::TestWithParam<Damage> {};

// A run of 6 steps with a checkpoint every 2 (steps 2, 4, 6), then step-6 damaged: the resume
// sets it aside and continues from step 4 exactly as the uninterrupted run did.
TEST_P(DamagedCheckpointTest, IsSetAsideAndTheRunResumesFromThePreviousOne) {
  TrainingOptions options = SmallOptions(6, MakeTempDir("ckpt"));
  options.checkpoint_every = 2;
  RunResult full;
  RunAndRecord(options, SmallDataset(), &full);
  ASSERT_EQ(full.checkpoints, (std::vector<int64_t>{2, 4, 6}));
  const std::string newest = CheckpointFile(options, 6);
  const std::string original = ReadBytes(newest);
  const std::string damaged = GetParam().apply(original);
  ASSERT_NE(damaged, original);
  WriteBytes(newest, damaged);

  GAN_ASSERT_OK_AND_ASSIGN(std::unique_ptr<TrainingRun> run,
                           TrainingRun::Create(options, &SmallDataset()));
  std::vector<SetAsideCheckpoint> set_aside;
  GAN_ASSERT_OK_AND_ASSIGN(const int64_t resumed, run->ResumeFromLatest(&set_aside));
  EXPECT_EQ(resumed, 4);
  EXPECT_EQ(run->step(), 4);
  ASSERT_EQ(set_aside.size(), 1u);
  EXPECT_EQ(set_aside[0].step, 6);
  EXPECT_EQ(set_aside[0].path, newest);
  EXPECT_EQ(set_aside[0].moved_to, newest + ".corrupt");
  EXPECT_THAT(set_aside[0].reason,
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("step-6.safetensors")));
  // Kept for inspection, byte for byte, but no longer a checkpoint of the run.
  EXPECT_FALSE(std::filesystem::exists(newest));
  EXPECT_EQ(ReadBytes(newest + ".corrupt"), damaged);
  EXPECT_EQ(run->CheckpointSteps(), (std::vector<int64_t>{2, 4}));

  // Training on from step 4 repeats the uninterrupted run's steps 4 and 5 and rewrites step 6.
  std::vector<RecordedStep> steps;
  TrainingCallbacks callbacks;
  callbacks.on_step = [&](const StepMetrics& m, int64_t epoch, double) {
    steps.push_back({m, epoch});
  };
  ASSERT_THAT(run->Run(callbacks), IsOk());
  ASSERT_EQ(steps.size(), 2u);
  for (int64_t i = 4; i < 6; ++i) ExpectSameStep(steps[i - 4], full.steps[i]);
  EXPECT_EQ(run->CheckpointSteps(), (std::vector<int64_t>{2, 4, 6}));
  EXPECT_TRUE(ReadBytes(newest) == original) << "step-6 differs from the uninterrupted run's";
  EXPECT_THAT(::gan::testing::DirectoryNames(options.checkpoint_dir),
              ElementsAre("step-2.safetensors", "step-4.safetensors", "step-6.safetensors",
                          "step-6.safetensors.corrupt"));
}

INSTANTIATE_TEST_SUITE_P(Damages, DamagedCheckpointTest, ::testing::ValuesIn(Damages()),
                         [](const ::testing::TestParamInfo<Damage>& info) {
                           return info.param.name;
                         });

TEST(TrainingRunTest, ResumeFallsBackPastEveryDamagedCheckpoint) {
  TrainingOptions options = SmallOptions(6, MakeTempDir("ckpt"));
  options.checkpoint_every = 2;
  RunResult full;
  RunAndRecord(options, SmallDataset(), &full);
  WriteBytes(CheckpointFile(options, 6), "");
  WriteBytes(CheckpointFile(options, 4), Damages()[2].apply(ReadBytes(CheckpointFile(options, 4))));

  RunResult resumed;
  RunAndRecord(options, SmallDataset(), &resumed, /*expected_resume_step=*/2);
  ASSERT_EQ(resumed.steps.size(), 4u);
  for (int64_t i = 2; i < 6; ++i) ExpectSameStep(resumed.steps[i - 2], full.steps[i]);
  ExpectSameNetwork("generator", resumed.generator, full.generator);
  ExpectSameNetwork("discriminator", resumed.discriminator, full.discriminator);
  EXPECT_THAT(::gan::testing::DirectoryNames(options.checkpoint_dir),
              ElementsAre("step-2.safetensors", "step-4.safetensors", "step-4.safetensors.corrupt",
                          "step-6.safetensors", "step-6.safetensors.corrupt"));
}

TEST(TrainingRunTest, NoIntactCheckpointIsDataLossNamingEveryFile) {
  TrainingOptions options = SmallOptions(4, MakeTempDir("ckpt"));
  options.checkpoint_every = 2;
  RunResult full;
  RunAndRecord(options, SmallDataset(), &full);
  WriteBytes(CheckpointFile(options, 4), "not a checkpoint");
  WriteBytes(CheckpointFile(options, 2), ReadBytes(CheckpointFile(options, 2)).substr(0, 100));

  GAN_ASSERT_OK_AND_ASSIGN(std::unique_ptr<TrainingRun> run,
                           TrainingRun::Create(options, &SmallDataset()));
  std::vector<SetAsideCheckpoint> set_aside;
  EXPECT_THAT(run->ResumeFromLatest(&set_aside),
              StatusIs(absl::StatusCode::kDataLoss,
                       AllOf(HasSubstr("no intact checkpoint"), HasSubstr(options.checkpoint_dir),
                             HasSubstr("step-4.safetensors.corrupt"),
                             HasSubstr("step-2.safetensors.corrupt"))));
  ASSERT_EQ(set_aside.size(), 2u);
  EXPECT_EQ(set_aside[0].step, 4);  // newest first
  EXPECT_EQ(set_aside[1].step, 2);
  EXPECT_EQ(run->step(), 0) << "nothing restored";
  EXPECT_TRUE(run->CheckpointSteps().empty());
}

TEST(TrainingRunTest, AnotherSeedsCheckpointBehindADamagedOneIsStillRefused) {
  const std::string dir = MakeTempDir("ckpt");
  TrainingOptions other = SmallOptions(2, dir);
  other.seed = 18;
  RunResult first;
  RunAndRecord(other, SmallDataset(), &first);  // step-2 of seed 18
  WriteBytes(absl::StrCat(dir, "/step-3.safetensors"), "garbage");

  GAN_ASSERT_OK_AND_ASSIGN(std::unique_ptr<TrainingRun> run,
                           TrainingRun::Create(SmallOptions(4, dir), &SmallDataset()));
  std::vector<SetAsideCheckpoint> set_aside;
  EXPECT_THAT(run->ResumeFromLatest(&set_aside),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("seed 18")));
  ASSERT_EQ(set_aside.size(), 1u);
  EXPECT_EQ(set_aside[0].step, 3);
  // The other seed's file is not damaged: it stays where it is.
  EXPECT_EQ(run->CheckpointSteps(), std::vector<int64_t>{2});
}

class CheckpointWriteFaultTest
    : public ::testing::TestWithParam<std::tuple<AtomicWriteStage, bool>> {};

// The checkpoint at step 4 fails at each stage of the atomic write, written on the training
// thread or in the background: the run ends with the write's status, naming the checkpoint, the
// cause and the intact previous checkpoint; nothing of the failed write is left, and a later run
// resumes from step 2.
TEST_P(CheckpointWriteFaultTest, EndsTheRunAndKeepsThePreviousCheckpoint) {
  const auto [stage, background] = GetParam();
  TrainingOptions options = SmallOptions(6, MakeTempDir("ckpt"));
  options.checkpoint_every = 2;
  options.keep_checkpoints = 1;  // the failed write must not prune the one it would replace
  options.background_checkpoints = background;
  GAN_ASSERT_OK_AND_ASSIGN(std::unique_ptr<TrainingRun> run,
                           TrainingRun::Create(options, &SmallDataset()));
  std::vector<int64_t> reported;
  TrainingCallbacks callbacks;
  callbacks.on_checkpoint = [&](int64_t step, const std::string&) {
    reported.push_back(step);
    if (step == 2) SetAtomicWriteFaultForTesting(stage);  // the next write fails
  };
  const absl::Status status = run->Run(callbacks);
  SetAtomicWriteFaultForTesting(AtomicWriteStage::kNone);
  EXPECT_THAT(status,
              StatusIs(absl::StatusCode::kInternal,
                       AllOf(HasSubstr("checkpoint at step 4 not written"),
                             HasSubstr(CheckpointFile(options, 4)), HasSubstr("injected fault"),
                             HasSubstr(absl::StrCat("the previous checkpoint ",
                                                    CheckpointFile(options, 2), " is intact")))));
  EXPECT_EQ(reported, std::vector<int64_t>{2});
  // A background write's failure ends the run at the first step boundary after it.
  if (background) {
    EXPECT_GE(run->step(), 4);
  } else {
    EXPECT_EQ(run->step(), 4);
  }
  EXPECT_EQ(::gan::testing::DirectoryNames(options.checkpoint_dir),
            std::vector<std::string>{"step-2.safetensors"})
      << "no temp file and no step-4 file";

  RunResult full, resumed;
  RunAndRecord(SmallOptions(6), SmallDataset(), &full);
  RunAndRecord(options, SmallDataset(), &resumed, /*expected_resume_step=*/2);
  for (int64_t i = 2; i < 6; ++i) ExpectSameStep(resumed.steps[i - 2], full.steps[i]);
  EXPECT_EQ(resumed.checkpoints, std::vector<int64_t>{6});
}

INSTANTIATE_TEST_SUITE_P(
    Stages, CheckpointWriteFaultTest,
    ::testing::Combine(::testing::Values(AtomicWriteStage::kAfterWrite,
                                         AtomicWriteStage::kAfterFsync,
                                         AtomicWriteStage::kAfterRename),
                       ::testing::Bool()),
    [](const ::testing::TestParamInfo<std::tuple<AtomicWriteStage, bool>>& info) {
      std::string name;
      switch (std::get<0>(info.param)) {
        case AtomicWriteStage::kAfterWrite:
          name = "after_write";
          break;
        case AtomicWriteStage::kAfterFsync:
          name = "after_fsync";
          break;
        case AtomicWriteStage::kAfterRename:
          name = "after_rename";
          break;
        default:
          name = "none";
      }
      return name + (std::get<1>(info.param) ? "_background" : "_foreground");
    });

TEST(TrainingRunTest, AFailedFirstCheckpointSaysThereIsNoEarlierOne) {
  TrainingOptions options = SmallOptions(4, MakeTempDir("ckpt"));
  options.checkpoint_every = 2;
  GAN_ASSERT_OK_AND_ASSIGN(std::unique_ptr<TrainingRun> run,
                           TrainingRun::Create(options, &SmallDataset()));
  SetAtomicWriteFaultForTesting(AtomicWriteStage::kAfterWrite);
  const absl::Status status = run->Run({});
  SetAtomicWriteFaultForTesting(AtomicWriteStage::kNone);
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kInternal,
                               AllOf(HasSubstr("checkpoint at step 2 not written"),
                                     HasSubstr("there is no earlier checkpoint"))));
  EXPECT_TRUE(::gan::testing::DirectoryNames(options.checkpoint_dir).empty());
}

}  // namespace
}  // namespace gan
