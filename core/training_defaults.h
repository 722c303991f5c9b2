#ifndef GAN_CORE_TRAINING_DEFAULTS_H_
#define GAN_CORE_TRAINING_DEFAULTS_H_

// Defaults shared by gan-train and gan-server (whose options refer to these), so a local run and a
// job behave alike unless told otherwise.

#include <cstdint>

namespace gan {

// Dataset of a run that names none.
inline constexpr char kDefaultDataset[] = "fashion-mnist";
// Steps between checkpoints, and how many of the newest are kept.
inline constexpr int64_t kDefaultCheckpointEvery = 500;
inline constexpr int kDefaultKeepCheckpoints = 3;
// Periodic checkpoints are written by a background thread from a snapshot of the weights and
// Adam's moments, so training does not stall on the disk.
inline constexpr bool kDefaultBackgroundCheckpoints = true;
// OpenMP threads of one training run (the 2 cores of a small machine).
inline constexpr int kDefaultTrainingThreads = 2;

}  // namespace gan

#endif  // GAN_CORE_TRAINING_DEFAULTS_H_
