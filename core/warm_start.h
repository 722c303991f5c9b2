#ifndef GAN_CORE_WARM_START_H_
#define GAN_CORE_WARM_START_H_

// Starting a run from existing weights instead of a fresh initialization: a checkpoint of this
// project (another job's, another gan-train run's) or a file written from PyTorch with the same
// tensor names and layouts (docs/architecture.md, "On disk":
// "<generator|discriminator>.<i>.<param>" F32 in PyTorch layouts, BatchNorm num_batches_tracked I64
// 0-d). Used by the server's JobSpec.init_from and gan-train --init.
//
// What is taken: both networks' tensors (BatchNorm running statistics and num_batches_tracked
// included) and, with `with_optimizer`, both Adam states ("optimizer.<tensor>.exp_avg" /
// ".exp_avg_sq" and the "optimizer.<model>.steps" metadata). What is not: the step, epoch, seed
// and spec of the file; the run keeps its own.

#include "absl/status/status.h"
#include "core/gan_spec.h"
#include "core/gan_trainer.h"
#include "core/safetensors.h"

namespace gan {

// Checks, from the networks' shapes alone (nothing allocated), that `file` holds exactly the
// tensors the networks need: every one present with its dtype and shape, and no other
// "generator." or "discriminator." tensor. INVALID_ARGUMENT naming the first tensor that does not
// match, in network order (generator first), with both shapes: "tensor 'generator.0.weight' has
// shape (64,8) in the file, the network needs (32,8)". Optimizer tensors are checked only with
// `with_optimizer`; other tensors and metadata are ignored.
absl::Status CheckWarmStartTensors(const SafeTensors& file, const GanShapes& shapes,
                                   bool with_optimizer);

// CheckWarmStartTensors against the trainer's networks, then copies the tensors in. On error the
// trainer is unchanged. The trainer's step stays as it is.
absl::Status WarmStart(const SafeTensors& file, bool with_optimizer, GanTrainer* trainer);

}  // namespace gan

#endif  // GAN_CORE_WARM_START_H_
