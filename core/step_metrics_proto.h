#ifndef GAN_CORE_STEP_METRICS_PROTO_H_
#define GAN_CORE_STEP_METRICS_PROTO_H_

// The one conversion from a training step's metrics to the API message gan.v1.StepMetrics, used by
// the server's metric events and by gan-train's JSON lines (so both use the API's field names).

#include <cstdint>

#include "core/gan_trainer.h"
#include "gan/v1/service.pb.h"

namespace gan {

gan::v1::StepMetrics StepMetricsToProto(const StepMetrics& metrics, int64_t epoch,
                                        double images_per_second);

}  // namespace gan

#endif  // GAN_CORE_STEP_METRICS_PROTO_H_
