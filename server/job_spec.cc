#include "server/job_spec.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/framework_defaults.h"
#include "core/precision.h"
#include "core/presets.h"
#include "io/status_macros.h"
#include "server/init_from.h"

namespace gan::server {
namespace {

absl::Status Invalid(absl::string_view field, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", what));
}

// A gradient-health threshold: 0 keeps `*value` (the default), else it must lie in (0, max].
// The negated comparisons also refuse NaN.
absl::Status OverrideThreshold(absl::string_view field, double given, double max, double* value) {
  if (given == 0) return absl::OkStatus();
  if (!(given > 0 && given <= max)) {
    return Invalid(absl::StrCat("gradient_health.", field),
                   absl::StrCat("must be in (0, ", max, "] (or 0 for the default)"));
  }
  *value = given;
  return absl::OkStatus();
}

// The spec's gradient-health fields over the defaults of core/gradient_health.h.
absl::StatusOr<GradientHealthOptions> ResolveGradientHealth(
    const gan::v1::GradientHealthSpec& spec) {
  GradientHealthOptions options;
  if (spec.window_steps() < 0 || spec.window_steps() > 10000) {
    return Invalid("gradient_health.window_steps", "must be in [0, 10000] (0: the default)");
  }
  if (spec.window_steps() > 0) options.window_steps = spec.window_steps();
  GAN_RETURN_IF_ERROR(
      OverrideThreshold("vanishing_ratio", spec.vanishing_ratio(), 1e6, &options.vanishing_ratio));
  GAN_RETURN_IF_ERROR(
      OverrideThreshold("exploding_ratio", spec.exploding_ratio(), 1e6, &options.exploding_ratio));
  if (options.exploding_ratio <= options.vanishing_ratio) {
    return Invalid("gradient_health.exploding_ratio",
                   absl::StrCat(options.exploding_ratio, " must exceed vanishing_ratio ",
                                options.vanishing_ratio));
  }
  GAN_RETURN_IF_ERROR(OverrideThreshold("stall_band", spec.stall_band(), 0.5, &options.stall_band));
  GAN_RETURN_IF_ERROR(OverrideThreshold("stall_loss_tolerance", spec.stall_loss_tolerance(), 1.0,
                                        &options.stall_loss_tolerance));
  return options;
}

}  // namespace

absl::StatusOr<ResolvedJob> ResolveJobSpec(const gan::v1::JobSpec& spec,
                                           const JobDefaults& defaults, DatasetRegistry* datasets) {
  ResolvedJob job;
  if (spec.has_gan()) {
    job.gan = spec.gan();
  } else if (spec.preset().empty()) {
    return Invalid("spec", "set a preset (seed, seed-dcgan, tf-dcgan) or an explicit gan");
  } else {
    GAN_ASSIGN_OR_RETURN(job.gan, PresetSpec(spec.preset()));
  }
  if (spec.pytorch_defaults()) ApplyPyTorchDefaults(&job.gan);
  if (spec.has_discriminator_hidden_activation()) {
    SetHiddenActivations(spec.discriminator_hidden_activation(), job.gan.mutable_discriminator());
  }
  if (spec.batch_size() < 0) return Invalid("batch_size", "must be > 0 (or 0 for the default)");
  if (spec.batch_size() > 0) job.gan.set_batch_size(spec.batch_size());
  if (spec.has_generator_optimizer()) {
    *job.gan.mutable_generator_optimizer() = spec.generator_optimizer();
  }
  if (spec.has_discriminator_optimizer()) {
    *job.gan.mutable_discriminator_optimizer() = spec.discriminator_optimizer();
  }
  if (auto shapes = ValidateGanSpec(job.gan, defaults.limits); !shapes.ok()) {
    return shapes.status();
  }
  // A precision this CPU cannot run is refused at submission, never trained silently in fp32.
  if (absl::Status precision = CheckPrecisionSupported(job.gan); !precision.ok()) {
    return precision;
  }
  if (spec.steps() < 0 || spec.epochs() < 0 || (spec.steps() > 0) == (spec.epochs() > 0)) {
    return Invalid("steps", "set exactly one of steps and epochs, > 0");
  }
  if (spec.checkpoint_every() < 0) return Invalid("checkpoint_every", "must be >= 0");
  if (spec.keep_checkpoints() < 0 || spec.keep_checkpoints() > 1000) {
    return Invalid("keep_checkpoints", "must be in [0, 1000]");
  }
  if (spec.metrics_every() < 0) return Invalid("metrics_every", "must be >= 0");
  if (spec.has_init_from()) {
    GAN_RETURN_IF_ERROR(ValidateInitFromFields(spec.init_from()));
  }
  GAN_ASSIGN_OR_RETURN(job.gradient_health, ResolveGradientHealth(spec.gradient_health()));

  job.dataset = spec.dataset().empty() ? defaults.dataset : spec.dataset();
  GAN_ASSIGN_OR_RETURN(std::shared_ptr<const ImageDataset> dataset, datasets->Load(job.dataset));
  const gan::v1::ImageShape& image = job.gan.image_shape();
  if (dataset->height() != image.height() || dataset->width() != image.width() ||
      dataset->channels() != image.channels()) {
    return Invalid("dataset", absl::StrFormat("'%s' holds %dx%dx%d images but the model expects "
                                              "%dx%dx%d",
                                              job.dataset, dataset->height(), dataset->width(),
                                              dataset->channels(), image.height(), image.width(),
                                              image.channels()));
  }
  if (dataset->size() < job.gan.batch_size()) {
    return Invalid("batch_size", absl::StrFormat("%d is larger than the dataset's %d images",
                                                 job.gan.batch_size(), dataset->size()));
  }
  const int64_t per_epoch = dataset->size() / job.gan.batch_size();
  if (spec.epochs() > defaults.max_steps / per_epoch + 1) {
    return Invalid("epochs", absl::StrCat("too many; at most ", defaults.max_steps, " steps"));
  }
  job.total_steps = spec.steps() > 0 ? spec.steps() : spec.epochs() * per_epoch;
  if (job.total_steps > defaults.max_steps) {
    return Invalid(
        spec.steps() > 0 ? "steps" : "epochs",
        absl::StrCat(job.total_steps, " steps exceed the limit of ", defaults.max_steps));
  }
  job.seed = spec.seed();
  job.checkpoint_every =
      spec.checkpoint_every() > 0 ? spec.checkpoint_every() : defaults.checkpoint_every;
  job.keep_checkpoints =
      spec.keep_checkpoints() > 0 ? spec.keep_checkpoints() : defaults.keep_checkpoints;
  job.metrics_every = spec.metrics_every() > 0 ? spec.metrics_every() : 1;
  return job;
}

}  // namespace gan::server
