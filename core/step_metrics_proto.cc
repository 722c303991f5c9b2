#include "core/step_metrics_proto.h"

namespace gan {
namespace {

gan::v1::LayerHealth ToProto(LayerHealth health) {
  switch (health) {
    case LayerHealth::kOk:
      return gan::v1::LAYER_HEALTH_OK;
    case LayerHealth::kVanishing:
      return gan::v1::LAYER_HEALTH_VANISHING;
    case LayerHealth::kExploding:
      return gan::v1::LAYER_HEALTH_EXPLODING;
    case LayerHealth::kNotAssessed:
      return gan::v1::LAYER_HEALTH_UNSPECIFIED;
  }
  return gan::v1::LAYER_HEALTH_UNSPECIFIED;
}

gan::v1::DiscriminatorHealth ToProto(DiscriminatorHealth health) {
  switch (health) {
    case DiscriminatorHealth::kOk:
      return gan::v1::DISCRIMINATOR_HEALTH_OK;
    case DiscriminatorHealth::kStalled:
      return gan::v1::DISCRIMINATOR_HEALTH_STALLED;
    case DiscriminatorHealth::kCollapsed:
      return gan::v1::DISCRIMINATOR_HEALTH_COLLAPSED;
  }
  return gan::v1::DISCRIMINATOR_HEALTH_UNSPECIFIED;
}

}  // namespace

gan::v1::StepMetrics StepMetricsToProto(const StepMetrics& metrics, int64_t epoch,
                                        double images_per_second) {
  gan::v1::StepMetrics proto;
  proto.set_step(metrics.step);
  proto.set_epoch(epoch);
  proto.set_d_loss(metrics.d_loss);
  proto.set_g_loss(metrics.g_loss);
  proto.set_d_real(metrics.d_real);
  proto.set_d_fake(metrics.d_fake);
  proto.set_d_accuracy(metrics.d_accuracy);
  proto.set_images_per_second(images_per_second);
  for (const LayerGradNorm& g : metrics.grad_norms) {
    gan::v1::LayerGradientNorm* norm = proto.add_gradient_norms();
    norm->set_layer(g.layer);
    norm->set_norm(g.norm);
    norm->set_weight_norm(g.weight_norm);
    norm->set_relative_norm(RelativeNorm(g.norm, g.weight_norm));
    norm->set_health(ToProto(g.health));
  }
  proto.set_discriminator_health(ToProto(metrics.discriminator_health));
  return proto;
}

}  // namespace gan
