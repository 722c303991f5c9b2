#ifndef GAN_SERVER_INIT_FROM_H_
#define GAN_SERVER_INIT_FROM_H_

// JobSpec.init_from (proto/gan/v1/service.proto): the checks a warm-started job passes at
// submission, and the checkpoint it starts from. Whether the caller may see the source job is
// the Authorizer's question (server/authorizer.h), asked by the SubmitJob handler first.

#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "core/gan_spec.h"
#include "gan/v1/service.pb.h"

namespace gan::server {

// A job's checkpoint file: its newest (step 0) or the one at `step` (JobManager::CheckpointPath:
// NOT_FOUND for an unknown job or step, FAILED_PRECONDITION when the job has no durable
// checkpoint yet).
using CheckpointLookup =
    std::function<absl::StatusOr<std::string>(const std::string& job_id, int64_t step)>;

// The fields alone, no I/O: INVALID_ARGUMENT for an empty job_id or a negative checkpoint_step.
absl::Status ValidateInitFromFields(const gan::v1::InitFrom& init);

// The checkpoint file `init` names; the lookup's status prefixed with "init_from: ".
absl::StatusOr<std::string> InitFromPath(const gan::v1::InitFrom& init,
                                         const CheckpointLookup& lookup);

// InitFromPath, then reads the file and checks it against the networks of `gan`
// (CheckWarmStartTensors, with Adam's state when init.init_optimizer): INVALID_ARGUMENT naming
// the first tensor that does not match, with both shapes. Returns the path. Reads the whole
// checkpoint: call it off gRPC threads.
absl::StatusOr<std::string> CheckInitFrom(const gan::v1::InitFrom& init,
                                          const gan::v1::GanSpec& gan, const GanLimits& limits,
                                          const CheckpointLookup& lookup);

}  // namespace gan::server

#endif  // GAN_SERVER_INIT_FROM_H_
