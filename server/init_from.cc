#include "server/init_from.h"

#include "absl/strings/str_cat.h"
#include "core/safetensors.h"
#include "core/warm_start.h"
#include "io/status_macros.h"

namespace gan::server {
namespace {

absl::Status Prefixed(const absl::Status& status, absl::string_view prefix) {
  return absl::Status(status.code(), absl::StrCat(prefix, status.message()));
}

}  // namespace

absl::Status ValidateInitFromFields(const gan::v1::InitFrom& init) {
  if (init.job_id().empty()) return absl::InvalidArgumentError("init_from.job_id: required");
  if (init.checkpoint_step() < 0) {
    return absl::InvalidArgumentError("init_from.checkpoint_step: must be >= 0 (0: the newest)");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> InitFromPath(const gan::v1::InitFrom& init,
                                         const CheckpointLookup& lookup) {
  GAN_RETURN_IF_ERROR(ValidateInitFromFields(init));
  absl::StatusOr<std::string> path = lookup(init.job_id(), init.checkpoint_step());
  if (!path.ok()) return Prefixed(path.status(), "init_from: ");
  return path;
}

absl::StatusOr<std::string> CheckInitFrom(const gan::v1::InitFrom& init,
                                          const gan::v1::GanSpec& gan, const GanLimits& limits,
                                          const CheckpointLookup& lookup) {
  GAN_ASSIGN_OR_RETURN(std::string path, InitFromPath(init, lookup));
  GAN_ASSIGN_OR_RETURN(GanShapes shapes, ValidateGanSpec(gan, limits));
  absl::StatusOr<SafeTensors> checkpoint = ReadSafeTensorsFile(path);
  if (!checkpoint.ok()) {
    // Recorded in the store but gone from disk: pruned by the source job in the meantime.
    if (checkpoint.status().code() == absl::StatusCode::kNotFound) {
      return absl::NotFoundError(absl::StrCat("init_from: the checkpoint of job ", init.job_id(),
                                              " no longer exists (", path, ")"));
    }
    return Prefixed(checkpoint.status(), "init_from: ");
  }
  const std::string where =
      absl::StrCat("init_from: checkpoint ", path.substr(path.find_last_of('/') + 1), " of job ",
                   init.job_id(), ": ");
  if (absl::Status s = CheckWarmStartTensors(*checkpoint, shapes, init.init_optimizer()); !s.ok()) {
    return Prefixed(s, where);
  }
  return path;
}

}  // namespace gan::server
