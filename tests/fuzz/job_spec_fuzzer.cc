// A submitted gan.v1.JobSpec (the input parsed as its protobuf encoding) through ResolveJobSpec
// with the server's default JobDefaults and caps on the built-in "synthetic" dataset (a preset or
// an explicit GanSpec, overrides, ValidateGanSpec, the dataset, steps from epochs); a spec that
// resolves is then built with GanTrainer::Create under the same limits, but only when it is small
// (at most kMaxParameters parameters per network and kMaxActivationFloats activation floats per
// network at its batch size), so that one input stays fast. Larger specs stop after resolution.

#include <cstddef>
#include <cstdint>

#include "core/gan_spec.h"
#include "core/gan_trainer.h"
#include "core/model_shapes.h"
#include "gan/v1/service.pb.h"
#include "server/dataset_registry.h"
#include "server/job_manager.h"
#include "server/job_spec.h"
#include "server/server.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

constexpr int64_t kMaxParameters = 1 << 16;
constexpr int64_t kMaxActivationFloats = 1 << 18;

int64_t ActivationFloats(const std::vector<gan::LayerShape>& layers, int64_t batch) {
  int64_t floats = 0;
  for (const gan::LayerShape& layer : layers) floats += gan::NumElements(layer.output) * batch;
  return floats;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const bool quiet = gan::fuzz::SilenceProtobufLogs();
  (void)quiet;
  gan::v1::JobSpec spec;
  if (!spec.ParseFromArray(data, static_cast<int>(size))) return 0;
  static const gan::server::JobDefaults defaults = [] {
    gan::server::JobDefaults d = gan::server::JobManagerOptionsFrom(gan::server::Options{}).defaults;
    d.dataset = "synthetic";  // the registry below has no Fashion-MNIST directory
    return d;
  }();
  static gan::server::DatasetRegistry* datasets =
      new gan::server::DatasetRegistry("/nonexistent-gan-fuzz-data", "/nonexistent-gan-fuzz-data");

  absl::StatusOr<gan::server::ResolvedJob> job = gan::server::ResolveJobSpec(spec, defaults, datasets);
  if (!job.ok()) return 0;
  absl::StatusOr<gan::GanShapes> shapes = gan::ValidateGanSpec(job->gan, defaults.limits);
  if (!shapes.ok()) __builtin_trap();  // ResolveJobSpec accepted it
  const int64_t batch = job->gan.batch_size();
  if (gan::CountParameters(shapes->generator) > kMaxParameters ||
      gan::CountParameters(shapes->discriminator) > kMaxParameters ||
      ActivationFloats(shapes->generator, batch) > kMaxActivationFloats ||
      ActivationFloats(shapes->discriminator, 2 * batch) > kMaxActivationFloats) {
    return 0;
  }
  (void)gan::GanTrainer::Create(job->gan, defaults.limits);
  return 0;
}
