#include "core/training_run.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <iterator>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "core/init.h"
#include "core/random.h"
#include "core/warm_start.h"
#include "io/status_macros.h"

namespace gan {

absl::StatusOr<std::unique_ptr<TrainingRun>> TrainingRun::Create(const TrainingOptions& options,
                                                                 const ImageDataset* dataset) {
  const gan::v1::ImageShape& image = options.spec.image_shape();
  if (dataset->height() != image.height() || dataset->width() != image.width() ||
      dataset->channels() != image.channels()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("dataset '%s' holds %dx%dx%d images but the spec's image_shape is %dx%dx%d",
                        dataset->name(), dataset->height(), dataset->width(), dataset->channels(),
                        image.height(), image.width(), image.channels()));
  }
  if (options.total_steps < 1) return absl::InvalidArgumentError("steps must be >= 1");
  GAN_ASSIGN_OR_RETURN(EpochSampler sampler,
                       EpochSampler::Create(dataset->size(), options.spec.batch_size(),
                                            MixKey(options.seed, 0x44617461ull)));  // "Data"
  std::unique_ptr<TrainingRun> run(new TrainingRun(options, dataset, std::move(sampler)));
  GAN_ASSIGN_OR_RETURN(run->trainer_, GanTrainer::Create(options.spec, options.limits));
  const gan::v1::Initializer initializer = options.spec.initializer();
  InitializeParameters(initializer, MixKey(options.seed, 1), &run->trainer_->generator());
  InitializeParameters(initializer, MixKey(options.seed, 2), &run->trainer_->discriminator());
  if (!options.init_checkpoint.empty()) {
    GAN_ASSIGN_OR_RETURN(SafeTensors init, ReadSafeTensorsFile(options.init_checkpoint));
    if (absl::Status s = WarmStart(init, options.init_optimizer, run->trainer_.get()); !s.ok()) {
      return absl::Status(s.code(), absl::StrCat(options.init_checkpoint, ": ", s.message()));
    }
  }
  run->indices_.resize(options.spec.batch_size());
  run->real_.resize(run->trainer_->real_batch_size());
  if (!options.checkpoint_dir.empty()) {
    std::error_code error;
    std::filesystem::create_directories(options.checkpoint_dir, error);
    if (error) {
      return absl::InternalError(
          absl::StrCat("cannot create ", options.checkpoint_dir, ": ", error.message()));
    }
    // Temp files of writes a crash interrupted (the checkpoints themselves are never partial).
    for (const auto& entry : std::filesystem::directory_iterator(options.checkpoint_dir, error)) {
      if (absl::StrContains(entry.path().filename().string(), ".safetensors.tmp.")) {
        std::filesystem::remove(entry.path(), error);
      }
    }
  }
  return run;
}

std::string TrainingRun::CheckpointPath(int64_t step) const {
  return absl::StrCat(options_.checkpoint_dir, "/step-", step, ".safetensors");
}

std::vector<int64_t> TrainingRun::CheckpointSteps() const {
  std::vector<int64_t> steps;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(options_.checkpoint_dir, error)) {
    const std::string filename = entry.path().filename().string();
    absl::string_view name = filename;
    int64_t step;
    if (absl::ConsumePrefix(&name, "step-") && absl::ConsumeSuffix(&name, ".safetensors") &&
        absl::SimpleAtoi(name, &step)) {
      steps.push_back(step);
    }
  }
  std::sort(steps.begin(), steps.end());
  return steps;
}

absl::StatusOr<int64_t> TrainingRun::RestoreStep(int64_t step) {
  const std::string path = CheckpointPath(step);
  GAN_ASSIGN_OR_RETURN(SafeTensors checkpoint, ReadSafeTensorsFile(path));
  // A changed byte in the metadata must not pass for another run's seed: the checksum first.
  if (absl::Status s = VerifyCheckpointChecksum(checkpoint); !s.ok()) {
    return absl::Status(s.code(), absl::StrCat(path, ": ", s.message()));
  }
  // Refuse another run's checkpoint before anything of it is restored.
  auto seed = checkpoint.metadata.find("seed");
  if (seed == checkpoint.metadata.end() || seed->second != absl::StrCat(options_.seed)) {
    return absl::FailedPreconditionError(
        absl::StrCat("checkpoint ", path, " was made with seed ",
                     seed == checkpoint.metadata.end() ? "(none)" : seed->second,
                     ", this run uses ", options_.seed));
  }
  absl::StatusOr<CheckpointInfo> info = RestoreCheckpoint(checkpoint, trainer_.get());
  if (!info.ok()) {
    return absl::Status(info.status().code(), absl::StrCat(path, ": ", info.status().message()));
  }
  health_.Reset();
  last_checkpoint_step_ = info->step;
  return info->step;
}

absl::StatusOr<int64_t> TrainingRun::ResumeFromLatest(std::vector<SetAsideCheckpoint>* set_aside) {
  if (options_.checkpoint_dir.empty()) return 0;
  const std::vector<int64_t> steps = CheckpointSteps();
  if (steps.empty()) return 0;
  std::vector<SetAsideCheckpoint> damaged;
  auto report = [&] {
    if (set_aside != nullptr) set_aside->insert(set_aside->end(), damaged.begin(), damaged.end());
  };
  for (auto step = steps.rbegin(); step != steps.rend(); ++step) {
    absl::StatusOr<int64_t> restored = RestoreStep(*step);
    if (restored.ok()) {
      report();
      return restored;
    }
    // Only damaged contents are set aside; anything else (another seed, a file that cannot be
    // read) is the caller's to decide, with the file left where it is.
    if (restored.status().code() != absl::StatusCode::kInvalidArgument) {
      report();
      return restored.status();
    }
    SetAsideCheckpoint entry{*step, CheckpointPath(*step),
                             absl::StrCat(CheckpointPath(*step), kSetAsideSuffix),
                             restored.status()};
    std::error_code error;
    std::filesystem::rename(entry.path, entry.moved_to, error);
    if (error) {
      report();
      return absl::InternalError(absl::StrCat(
          "cannot set aside the damaged checkpoint ", entry.path, " (", restored.status().message(),
          "): rename to ", entry.moved_to, ": ", error.message()));
    }
    damaged.push_back(std::move(entry));
  }
  report();
  // The directory once, then each file by name with why it was set aside.
  std::string message = absl::StrCat("no intact checkpoint to resume from in ",
                                     options_.checkpoint_dir, "; set aside:");
  for (const SetAsideCheckpoint& entry : damaged) {
    const std::string name = std::filesystem::path(entry.path).filename().string();
    absl::StrAppend(&message, " ", name, " as ", name, kSetAsideSuffix, " (",
                    absl::StripPrefix(entry.reason.message(), absl::StrCat(entry.path, ": ")),
                    ");");
  }
  message.pop_back();
  return absl::DataLossError(message);
}

absl::Status TrainingRun::CheckpointWriteError(int64_t step, const absl::Status& cause) const {
  std::string previous = "there is no earlier checkpoint";
  const std::vector<int64_t> steps = CheckpointSteps();
  auto older = std::lower_bound(steps.begin(), steps.end(), step);
  if (older != steps.begin()) {
    const std::string path = CheckpointPath(*std::prev(older));
    absl::StatusOr<SafeTensors> read = ReadSafeTensorsFile(path);
    const absl::Status intact = read.ok() ? VerifyCheckpointChecksum(*read) : read.status();
    previous = intact.ok() ? absl::StrCat("the previous checkpoint ", path, " is intact")
                           : absl::StrCat("the previous checkpoint ", path,
                                          " cannot be read either: ", intact.message());
  }
  return absl::Status(cause.code(),
                      absl::StrCat("checkpoint at step ", step, " not written (",
                                   CheckpointPath(step), "): ", cause.message(), "; ", previous));
}

absl::Status TrainingRun::CheckpointFailed(int64_t step, const std::string& path, bool existed,
                                           const absl::Status& cause) const {
  // A failure after the rename (the directory's fsync) leaves the new file in place without the
  // durability the write promises: it goes, so the previous checkpoint stays the newest.
  std::error_code error;
  if (!existed) std::filesystem::remove(path, error);
  return CheckpointWriteError(step, cause);
}

void TrainingRun::CheckpointDone(const TrainingCallbacks& callbacks, int64_t step,
                                 const std::string& path) {
  last_checkpoint_step_ = step;
  if (callbacks.on_checkpoint) callbacks.on_checkpoint(step, path);
  // Older checkpoints go only once the new one is durable.
  if (options_.keep_checkpoints > 0) {
    std::error_code error;
    std::vector<int64_t> steps = CheckpointSteps();
    for (size_t i = 0; i + options_.keep_checkpoints < steps.size(); ++i) {
      std::filesystem::remove(CheckpointPath(steps[i]), error);
    }
  }
}

absl::Status TrainingRun::FinishBackgroundCheckpoint(const TrainingCallbacks& callbacks,
                                                     bool wait) {
  if (!background_.in_flight() || (!wait && !background_.finished())) return absl::OkStatus();
  const absl::Status written = background_.Wait();
  if (!written.ok()) {
    return CheckpointFailed(background_.step(), background_.path(), background_existed_, written);
  }
  CheckpointDone(callbacks, background_.step(), background_.path());
  return absl::OkStatus();
}

absl::Status TrainingRun::WriteCheckpoint(const TrainingCallbacks& callbacks, bool background) {
  const int64_t step = trainer_->step();
  // A run stopped before its first step has nothing to keep: its start is the seed's.
  if (options_.checkpoint_dir.empty() || step == 0) return absl::OkStatus();
  // One write at a time, in step order: the one in flight completes (and is reported) first.
  GAN_RETURN_IF_ERROR(FinishBackgroundCheckpoint(callbacks, /*wait=*/true));
  // A step already written (a stop right after a periodic checkpoint, written in the background
  // or not, or the one resumed from) is not written again.
  if (step == last_checkpoint_step_) return absl::OkStatus();
  const std::string path = CheckpointPath(step);
  std::error_code error;
  const bool existed = std::filesystem::exists(path, error);
  const CheckpointInfo info{step, sampler_.EpochOf(step), options_.seed};
  if (background) {
    background_existed_ = existed;
    background_.Start(step, path, CheckpointSnapshot::Take(*trainer_, info));
    return absl::OkStatus();
  }
  if (absl::Status saved = SaveCheckpoint(path, *trainer_, info); !saved.ok()) {
    return CheckpointFailed(step, path, existed, saved);
  }
  CheckpointDone(callbacks, step, path);
  return absl::OkStatus();
}

void TrainingRun::MarkHealth(StepMetrics* metrics) {
  relative_norms_.clear();
  for (const LayerGradNorm& g : metrics->grad_norms) {
    relative_norms_.push_back(RelativeNorm(g.norm, g.weight_norm));
  }
  health_.Observe(relative_norms_,
                  {metrics->d_loss, metrics->d_real, metrics->d_fake, metrics->d_accuracy});
  for (size_t k = 0; k < metrics->grad_norms.size(); ++k) {
    LayerGradNorm& g = metrics->grad_norms[k];
    g.health = g.kernel ? health_.layer_health()[k] : LayerHealth::kNotAssessed;
  }
  metrics->discriminator_health = health_.discriminator_health();
}

absl::Status TrainingRun::Run(const TrainingCallbacks& callbacks) {
  const int64_t batch = options_.spec.batch_size();
  auto last = std::chrono::steady_clock::now();
  while (trainer_->step() < options_.total_steps) {
    GAN_RETURN_IF_ERROR(FinishBackgroundCheckpoint(callbacks, /*wait=*/false));
    if (callbacks.should_stop && callbacks.should_stop()) break;
    const int64_t step = trainer_->step();
    sampler_.BatchIndices(step, indices_.data());
    dataset_->FillBatch(indices_, real_.data());
    SeededRandomness randomness(options_.seed, step, options_.spec.noise().distribution());
    StepMetrics metrics = trainer_->Step(real_, randomness);
    MarkHealth(&metrics);
    const auto now = std::chrono::steady_clock::now();
    const double seconds = std::chrono::duration<double>(now - last).count();
    last = now;
    if (callbacks.on_step) {
      callbacks.on_step(metrics, sampler_.EpochOf(step), seconds > 0 ? batch / seconds : 0);
    }
    if (options_.checkpoint_every > 0 && trainer_->step() % options_.checkpoint_every == 0 &&
        trainer_->step() < options_.total_steps) {
      GAN_RETURN_IF_ERROR(WriteCheckpoint(callbacks, options_.background_checkpoints));
    }
  }
  // The final checkpoint is waited for (after the one in flight, which it may make redundant).
  return WriteCheckpoint(callbacks, /*background=*/false);
}

}  // namespace gan
