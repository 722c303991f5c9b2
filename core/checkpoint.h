#ifndef GAN_CORE_CHECKPOINT_H_
#define GAN_CORE_CHECKPOINT_H_

// Training checkpoints as safetensors files, interchangeable with PyTorch:
//   generator.<i>.<param>, discriminator.<i>.<param>   F32 weights in PyTorch layouts (Conv2D
//       OIHW, Conv2DTranspose IOHW, Dense [out, in], BatchNorm weight/bias/running_mean/
//       running_var); <model>.<i>.num_batches_tracked I64 (0-d)
//   optimizer.<model>.<i>.<param>.exp_avg / .exp_avg_sq   Adam moments (F32)
//   __metadata__ (strings): format, step, epoch, seed, rng, spec (GanSpec as JSON),
//       optimizer.generator.steps, optimizer.discriminator.steps, crc32 (see kChecksumKey)
// Stripping the "generator." prefix of the generator's tensors gives a state_dict that an
// equivalent torch.nn.Sequential loads with strict=True (likewise for the discriminator).
//
// Files are written atomically (temp file, fsync, rename, fsync of the directory). Loading
// validates the whole file against the trainer's networks before changing anything: a corrupt,
// truncated or mismatched file is an INVALID_ARGUMENT naming what is wrong, never a crash, and
// leaves the trainer untouched. The checksum catches what parsing cannot: changed bytes inside
// the tensors or the metadata of a file that is otherwise well formed.

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/gan_trainer.h"
#include "core/parameter_store.h"
#include "core/safetensors.h"

namespace gan {

inline constexpr char kCheckpointFormat[] = "gan-checkpoint-v1";

// The metadata key of a checkpoint's checksum: zlib's CRC-32 as 8 lowercase hex digits over every
// tensor (name, dtype, shape, bytes) and every other metadata entry, in name order
// (CheckpointChecksum). Files without it (written before it existed, or by other tools) load
// unchecked.
inline constexpr char kChecksumKey[] = "crc32";

struct CheckpointInfo {
  int64_t step = 0;   // iterations completed
  int64_t epoch = 0;  // epoch of the next batch
  uint64_t seed = 0;  // the run's seed (noise, dropout and data order derive from seed and step)
};

// Everything needed to resume: both networks, Adam's moments and step counts, and `info`.
SafeTensors MakeCheckpoint(GanTrainer& trainer, const CheckpointInfo& info);
absl::Status SaveCheckpoint(const std::string& path, GanTrainer& trainer,
                            const CheckpointInfo& info);

// A checkpoint copied out of the trainer, so that it can be written while training goes on. Take
// costs one copy of the tensors (the checkpoint's size in memory, until the snapshot is
// destroyed); Write computes the checksum and writes the same file as SaveCheckpoint would have
// at Take, byte for byte, from any thread. Movable.
class CheckpointSnapshot {
 public:
  static CheckpointSnapshot Take(GanTrainer& trainer, const CheckpointInfo& info);
  CheckpointSnapshot(CheckpointSnapshot&&) noexcept;
  CheckpointSnapshot& operator=(CheckpointSnapshot&&) noexcept;
  ~CheckpointSnapshot();

  // SaveCheckpoint's atomic write and errors.
  absl::Status Write(const std::string& path) const;

 private:
  struct Contents;
  explicit CheckpointSnapshot(std::unique_ptr<Contents> contents);
  std::unique_ptr<Contents> contents_;
};

// The checksum MakeCheckpoint stores under kChecksumKey, computed over `checkpoint` as it is
// (its own kChecksumKey entry left out).
std::string CheckpointChecksum(const SafeTensors& checkpoint);
// OK when `checkpoint` has no kChecksumKey entry or the entry matches its contents;
// INVALID_ARGUMENT ("checkpoint: crc32 ... does not match ...") when the file changed after it was
// written.
absl::Status VerifyCheckpointChecksum(const SafeTensors& checkpoint);

// Restores a checkpoint made by MakeCheckpoint for the same spec (networks, optimizers, step),
// after checking its structure and then its checksum. Returns its info. On error nothing in
// `trainer` has changed.
absl::StatusOr<CheckpointInfo> RestoreCheckpoint(const SafeTensors& checkpoint,
                                                 GanTrainer* trainer);
absl::StatusOr<CheckpointInfo> LoadCheckpoint(const std::string& path, GanTrainer* trainer);

// Copies one network's weights ("<model>.<i>.<param>" tensors, as in a checkpoint or a PyTorch
// state_dict with the prefix added) into `store`, after checking that every tensor the store
// expects is present with its dtype and shape and that no other "<model>." tensor is. Optimizer
// tensors and metadata are ignored, so weights-only files (e.g. exported from PyTorch) load too.
absl::Status LoadNetworkWeights(const SafeTensors& checkpoint, ParameterStore* store);

// The GanSpec stored in a checkpoint's metadata.
absl::StatusOr<gan::v1::GanSpec> CheckpointSpec(const SafeTensors& checkpoint);

}  // namespace gan

#endif  // GAN_CORE_CHECKPOINT_H_
