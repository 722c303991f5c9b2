#include "core/framework_defaults.h"

namespace gan {
namespace {

void ApplyToBatchNorms(gan::v1::ModelSpec* model) {
  for (gan::v1::LayerSpec& layer : *model->mutable_layers()) {
    if (!layer.has_batch_norm()) continue;
    layer.mutable_batch_norm()->set_epsilon(kPyTorchBatchNormEpsilon);
    layer.mutable_batch_norm()->set_momentum(kPyTorchBatchNormMomentum);
  }
}

}  // namespace

void ApplyPyTorchDefaults(gan::v1::GanSpec* spec) {
  spec->set_initializer(gan::v1::INITIALIZER_PYTORCH);
  ApplyToBatchNorms(spec->mutable_generator());
  ApplyToBatchNorms(spec->mutable_discriminator());
  spec->mutable_generator_optimizer()->set_epsilon(kPyTorchAdamEpsilon);
  spec->mutable_discriminator_optimizer()->set_epsilon(kPyTorchAdamEpsilon);
}

}  // namespace gan
