#ifndef GAN_SERVER_JOB_SPEC_H_
#define GAN_SERVER_JOB_SPEC_H_

// Turns a client's JobSpec into everything a training run needs, validating every field: the one
// place a submitted job is checked. Nothing is created for a spec this rejects.

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "core/gan_spec.h"
#include "core/gradient_health.h"
#include "gan/v1/service.pb.h"
#include "server/dataset_registry.h"

namespace gan::server {

// What a spec leaves unset, and the caps it must respect. Filled from the server's Options
// (server/server.h), the one home of their defaults.
struct JobDefaults {
  std::string dataset;
  int64_t checkpoint_every = 0;
  int keep_checkpoints = 0;
  int64_t max_steps = 0;
  GanLimits limits;
};

struct ResolvedJob {
  gan::v1::GanSpec gan;
  std::string dataset;
  int64_t total_steps = 0;
  uint64_t seed = 0;
  int64_t checkpoint_every = 0;
  int keep_checkpoints = 0;
  int64_t metrics_every = 1;
  GradientHealthOptions gradient_health;
};

// INVALID_ARGUMENT naming the field for a bad spec; the dataset's own status (NOT_FOUND,
// FAILED_PRECONDITION for a missing built-in) when it cannot be loaded.
absl::StatusOr<ResolvedJob> ResolveJobSpec(const gan::v1::JobSpec& spec,
                                           const JobDefaults& defaults, DatasetRegistry* datasets);

}  // namespace gan::server

#endif  // GAN_SERVER_JOB_SPEC_H_
