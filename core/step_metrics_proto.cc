#include "core/step_metrics_proto.h"

namespace gan {

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
  }
  return proto;
}

}  // namespace gan
