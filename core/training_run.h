#ifndef GAN_CORE_TRAINING_RUN_H_
#define GAN_CORE_TRAINING_RUN_H_

// A training run: a GanTrainer fed from a dataset in seeded epoch order, with periodic atomic
// checkpoints in <checkpoint_dir>/step-<N>.safetensors and resume from the newest one. gan-train
// and the server's job workers both drive training through this class.
//
// Determinism: noise, dropout masks and data order are functions of (seed, step), so the same
// spec, seed and thread count give the same losses, and a resumed run continues exactly as the
// uninterrupted one would have.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/background_checkpoint.h"
#include "core/checkpoint.h"
#include "core/dataset.h"
#include "core/gan_trainer.h"
#include "core/gradient_health.h"
#include "core/training_defaults.h"

namespace gan {

struct TrainingOptions {
  gan::v1::GanSpec spec;
  uint64_t seed = 1;
  int64_t total_steps = 0;       // iterations to reach (counting those before a resume)
  int64_t checkpoint_every = 0;  // 0: only the final checkpoint
  int keep_checkpoints = 0;      // newest checkpoints kept on disk; 0 keeps all
  std::string checkpoint_dir;    // empty: no checkpoints
  GanLimits limits;
  // Window and thresholds of the health flags in every step's metrics.
  GradientHealthOptions gradient_health;
  // Weights to start from instead of spec.initializer's (core/warm_start.h): a checkpoint or a
  // file written from PyTorch. Empty: none. A checkpoint of this run (ResumeFromLatest) wins.
  std::string init_checkpoint;
  bool init_optimizer = false;  // also take the file's Adam states
  // Periodic checkpoints are written on a thread of their own from a snapshot (training goes on
  // meanwhile; the snapshot costs the checkpoint's size in memory while it is written). False:
  // on the training thread, which waits for the disk. The final checkpoint is always waited for.
  bool background_checkpoints = kDefaultBackgroundCheckpoints;
};

struct TrainingCallbacks {
  // After every step, with the step's metrics (gradient-health flags included) and the recent
  // throughput (real images/s).
  std::function<void(const StepMetrics&, int64_t epoch, double images_per_s)> on_step;
  // After a checkpoint is durable on disk; on the thread that called Run (a background write is
  // reported between two steps, so later steps may have run by then).
  std::function<void(int64_t step, const std::string& path)> on_checkpoint;
  // Polled before every step; returning true stops the run after a checkpoint.
  std::function<bool()> should_stop;
};

// A checkpoint ResumeFromLatest found damaged and set aside.
struct SetAsideCheckpoint {
  int64_t step = 0;
  std::string path;      // where it was: <checkpoint_dir>/step-<N>.safetensors
  std::string moved_to;  // where it is now: path + kSetAsideSuffix
  absl::Status reason;   // why it could not be restored
};

// Appended to the name of a damaged checkpoint that ResumeFromLatest set aside.
inline constexpr char kSetAsideSuffix[] = ".corrupt";

class TrainingRun {
 public:
  // `dataset` must match the spec's image shape and outlive the run.
  static absl::StatusOr<std::unique_ptr<TrainingRun>> Create(const TrainingOptions& options,
                                                             const ImageDataset* dataset);

  // Restores the newest intact checkpoint in checkpoint_dir; returns its step, or 0 when there is
  // none at all.
  //
  // A checkpoint whose contents are damaged (truncated, bytes changed, a bad header: reading,
  // checking or restoring it fails with INVALID_ARGUMENT) is set aside: renamed to
  // <name>kSetAsideSuffix, so it is kept for inspection but no longer listed by CheckpointSteps,
  // and appended to *set_aside (when not null; filled on error too); the next older one is tried.
  // When checkpoints exist but none is intact: DATA_LOSS naming every file set aside and why.
  // Stays a failure, leaving the file where it is: a checkpoint of another seed
  // (FAILED_PRECONDITION) and a file that cannot be read at all (permissions, I/O errors: the
  // status of the read), since its contents may well be intact. Nothing is restored on error.
  absl::StatusOr<int64_t> ResumeFromLatest(std::vector<SetAsideCheckpoint>* set_aside = nullptr);

  // Trains until total_steps (or should_stop), checkpointing every checkpoint_every steps and at
  // the end (a step is written once, even when a stop follows its periodic checkpoint). With
  // background_checkpoints, at most one periodic write is in flight: the next periodic checkpoint
  // waits for it, and Run returns only after every write it started has finished.
  //
  // A checkpoint that cannot be written (an I/O error, a full disk, a file over the size limit)
  // ends the run with the write's status code and a message naming the checkpoint, the cause and
  // the state of the previous checkpoint, which the failed write never touches (it is read back
  // to say that it is intact). Nothing of the failed write is left on disk and on_checkpoint is
  // not called for it.
  absl::Status Run(const TrainingCallbacks& callbacks);

  GanTrainer& trainer() { return *trainer_; }
  int64_t step() const { return trainer_->step(); }
  int64_t batches_per_epoch() const { return sampler_.batches_per_epoch(); }
  // Path of the checkpoint for a step.
  std::string CheckpointPath(int64_t step) const;
  // Steps of the checkpoints on disk, ascending.
  std::vector<int64_t> CheckpointSteps() const;

 private:
  TrainingRun(const TrainingOptions& options, const ImageDataset* dataset, EpochSampler sampler)
      : options_(options),
        dataset_(dataset),
        sampler_(std::move(sampler)),
        health_(options.gradient_health) {}
  // Writes the checkpoint of the current step, on the training thread or (`background`) starting
  // a background write; a step already written or being written is skipped.
  absl::Status WriteCheckpoint(const TrainingCallbacks& callbacks, bool background);
  // Completes the background write in flight, if any: with `wait`, waits for it; else only when
  // it has already finished. A failed write's status is the run's error (CheckpointWriteError).
  absl::Status FinishBackgroundCheckpoint(const TrainingCallbacks& callbacks, bool wait);
  // After the checkpoint at `step` is durable: records it, reports it, prunes older ones.
  void CheckpointDone(const TrainingCallbacks& callbacks, int64_t step, const std::string& path);
  // The status of a failed write at `step` to `path`, which did not exist before when `!existed`
  // (a file a failure left there goes).
  absl::Status CheckpointFailed(int64_t step, const std::string& path, bool existed,
                                const absl::Status& cause) const;
  // The error of a checkpoint write at `step` that failed with `cause`.
  absl::Status CheckpointWriteError(int64_t step, const absl::Status& cause) const;
  // Restores the checkpoint at `step` (ResumeFromLatest's checks, in order).
  absl::StatusOr<int64_t> RestoreStep(int64_t step);
  // Feeds the step to health_ and writes its flags into `metrics`.
  void MarkHealth(StepMetrics* metrics);

  TrainingOptions options_;
  const ImageDataset* dataset_;
  EpochSampler sampler_;
  std::unique_ptr<GanTrainer> trainer_;
  std::vector<int64_t> indices_;
  std::vector<float> real_;
  GradientHealthTracker health_;
  std::vector<double> relative_norms_;
  int64_t last_checkpoint_step_ = -1;  // the step of the last checkpoint this run wrote
  BackgroundCheckpoint background_;
  bool background_existed_ = false;  // the background write's file existed when it started
};

}  // namespace gan

#endif  // GAN_CORE_TRAINING_RUN_H_
