#ifndef GAN_SERVER_SERVER_METRICS_H_
#define GAN_SERVER_SERVER_METRICS_H_

// The server's Prometheus metrics, exposed by prometheus::Exposer on --metrics_listen /metrics.
//
//   gRPC (the names of go-grpc-prometheus / grpc-java):
//     grpc_server_started_total{grpc_type,grpc_service,grpc_method}
//     grpc_server_handled_total{grpc_type,grpc_service,grpc_method,grpc_code}
//     grpc_server_handling_seconds{grpc_type,grpc_service,grpc_method} (histogram)
//   Training: gan_jobs{state}, gan_jobs_submitted_total, gan_train_steps_total,
//     gan_train_images_total, gan_train_step_seconds (histogram) and, while a job runs,
//     gan_job_{d_loss,g_loss,d_real,d_fake}{job_id}, gan_job_layer_gradient_norm{job_id,layer}
//     (the latest step's weight-gradient L2 norm), gan_job_gradient_health{job_id,layer,state}
//     (state ok, vanishing or exploding: 1 for the layer's current flag, 0 for the others; Conv
//     and Dense layers only, BatchNorm's scale is not assessed) and
//     gan_job_discriminator_health{job_id,state} (ok, stalled or collapsed;
//     core/gradient_health.h).
//   Scoring: gan_score_images_total, gan_score_request_seconds, gan_score_batch_size.
//   Dynamic batching (server/batcher.h), label model (a job id, or <job id>-generator; the Open
//   Inference Protocol's model names): gan_inference_batch_images (histogram: images per network
//   pass), gan_inference_queue_depth (gauge: requests waiting), gan_inference_queue_wait_seconds
//   (histogram: from queueing to the start of the request's batch) and
//   gan_inference_rejected_total{model,reason} (reason queue_full, deadline_exceeded, cancelled
//   or shutting_down: requests answered without being computed).
//   Streams: gan_metric_streams_open (gauge: StreamMetrics streams open, all principals; a stream
//   refused by --max_streams_per_principal is grpc_server_handled_total{grpc_method=
//   "StreamMetrics",grpc_code="RESOURCE_EXHAUSTED"}, the method's only RESOURCE_EXHAUSTED).
//   Process: process_* from /proc/self (server/process_collector.h).
//
// Families are built once, in the constructor; label handles are looked up once (per method at
// registration, per (method, code) on first use, per job when it starts), so a call or a training
// step touches only prometheus-cpp's atomics. Thread-safe.

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "gan/v1/service.pb.h"
#include "grpcpp/support/status.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace gan {
struct StepMetrics;  // core/gan_trainer.h
}  // namespace gan

namespace gan::server {

// The label handles of one gRPC method.
class GrpcMethodMetrics {
 public:
  GrpcMethodMetrics(prometheus::Family<prometheus::Counter>* handled, prometheus::Labels labels,
                    prometheus::Counter* started, prometheus::Histogram* handling)
      : handled_family_(handled),
        labels_(std::move(labels)),
        started_(started),
        handling_(handling) {}

  void Started() { started_->Increment(); }
  void Handled(grpc::StatusCode code, double seconds);

 private:
  static constexpr int kCodes = 17;  // grpc::StatusCode OK .. UNAUTHENTICATED
  prometheus::Family<prometheus::Counter>* handled_family_;
  const prometheus::Labels labels_;
  prometheus::Counter* started_;
  prometheus::Histogram* handling_;
  std::array<std::atomic<prometheus::Counter*>, kCodes> handled_{};
  std::mutex mu_;  // only while a code's counter is created
};

// One call's metrics: counts it started on construction, and handled (with its duration) on
// Finish or, when never finished (a stream torn down), as CANCELLED on destruction. A null
// method makes it a no-op.
class RpcCall {
 public:
  explicit RpcCall(GrpcMethodMetrics* method);
  ~RpcCall();
  RpcCall(RpcCall&& other) noexcept;
  RpcCall(const RpcCall&) = delete;
  RpcCall& operator=(const RpcCall&) = delete;
  RpcCall& operator=(RpcCall&&) = delete;

  void Finish(grpc::StatusCode code);
  double seconds() const;

 private:
  GrpcMethodMetrics* method_;
  std::chrono::steady_clock::time_point start_;
};

// The batching metrics of one model, created on its first request and kept for the process's
// lifetime (one set of series per model ever served).
class InferenceModelMetrics {
 public:
  enum class Rejection { kQueueFull, kDeadlineExceeded, kCancelled, kShuttingDown };
  static constexpr int kRejections = 4;

  InferenceModelMetrics(prometheus::Histogram* batch_images, prometheus::Gauge* queue_depth,
                        prometheus::Histogram* queue_wait,
                        std::array<prometheus::Counter*, kRejections> rejected)
      : batch_images_(batch_images),
        queue_depth_(queue_depth),
        queue_wait_(queue_wait),
        rejected_(rejected) {}

  // A network pass over `images` images (a batch, or one max-size chunk of a large request).
  void Batch(int64_t images) { batch_images_->Observe(static_cast<double>(images)); }
  void QueueDepth(int64_t requests) { queue_depth_->Set(static_cast<double>(requests)); }
  void QueueWait(double seconds) { queue_wait_->Observe(seconds); }
  void Rejected(Rejection reason) { rejected_[static_cast<int>(reason)]->Increment(); }

 private:
  prometheus::Histogram* batch_images_;
  prometheus::Gauge* queue_depth_;
  prometheus::Histogram* queue_wait_;
  std::array<prometheus::Counter*, kRejections> rejected_;
};

// The gauges of one running job, removed from their families on destruction.
class JobMetrics {
 public:
  JobMetrics(class ServerMetrics* metrics, const std::string& job_id);
  ~JobMetrics();
  JobMetrics(const JobMetrics&) = delete;
  JobMetrics& operator=(const JobMetrics&) = delete;

  // After a step of `images` real images that took `seconds`. Atomics only.
  void Step(float d_loss, float g_loss, float d_real, float d_fake, int64_t images, double seconds);
  // The step's per-layer gradient norms and health flags. The layers' series are created on the
  // first step (and again if the layers change); after that, atomics only.
  void Gradients(const StepMetrics& step);

 private:
  static constexpr int kLayerStates = 3;          // ok, vanishing, exploding (gan::LayerHealth)
  static constexpr int kDiscriminatorStates = 3;  // ok, stalled, collapsed
  struct LayerSeries {
    std::string layer;
    prometheus::Gauge* norm;
    std::array<prometheus::Gauge*, kLayerStates> health;
  };
  void RemoveLayerSeries();

  ServerMetrics* metrics_;
  prometheus::Labels labels_;
  std::vector<LayerSeries> layers_;
  std::array<prometheus::Gauge*, kDiscriminatorStates> discriminator_health_{};
  prometheus::Gauge* d_loss_;
  prometheus::Gauge* g_loss_;
  prometheus::Gauge* d_real_;
  prometheus::Gauge* d_fake_;
};

class ServerMetrics {
 public:
  enum class RpcType { kUnary, kServerStream };

  ServerMetrics();

  const std::shared_ptr<prometheus::Registry>& registry() const { return registry_; }

  // The handles of a method, created on the first call and stable for the Metrics' lifetime.
  // `service` is fully qualified (gan.v1.TrainingService). Call at registration, not per call.
  GrpcMethodMetrics* Method(const std::string& service, const std::string& method, RpcType type);

  // gan_jobs{state}: the number of jobs in each state.
  void SetJobs(gan::v1::JobState state, int64_t count);
  void MoveJob(gan::v1::JobState from, gan::v1::JobState to);
  void JobSubmitted();

  // A Score request of `images` images that took `seconds`; the image count and batch size are
  // recorded for successful requests only.
  void Scored(int64_t images, double seconds, bool ok);

  // The batching metrics of `model`, created on first use and stable for the Metrics' lifetime.
  // Takes a mutex: call once per model queue, not per request.
  InferenceModelMetrics* InferenceModel(const std::string& model);

  // gan_metric_streams_open, kept by the StreamQuota (server/stream_quota.h).
  prometheus::Gauge* MetricStreamsOpen() { return &metric_streams_open_; }

 private:
  friend class JobMetrics;
  prometheus::Gauge* JobsGauge(gan::v1::JobState state);

  std::shared_ptr<prometheus::Registry> registry_;

  prometheus::Family<prometheus::Counter>& grpc_started_;
  prometheus::Family<prometheus::Counter>& grpc_handled_;
  prometheus::Family<prometheus::Histogram>& grpc_handling_;
  std::mutex methods_mu_;
  std::map<std::string, std::unique_ptr<GrpcMethodMetrics>> methods_;

  prometheus::Family<prometheus::Gauge>& jobs_;
  std::array<prometheus::Gauge*, 6> jobs_by_state_{};  // indexed by gan::v1::JobState
  prometheus::Counter& jobs_submitted_;
  prometheus::Counter& train_steps_;
  prometheus::Counter& train_images_;
  prometheus::Histogram& train_step_seconds_;
  prometheus::Family<prometheus::Gauge>& job_d_loss_;
  prometheus::Family<prometheus::Gauge>& job_g_loss_;
  prometheus::Family<prometheus::Gauge>& job_d_real_;
  prometheus::Family<prometheus::Gauge>& job_d_fake_;
  prometheus::Family<prometheus::Gauge>& job_layer_gradient_norm_;
  prometheus::Family<prometheus::Gauge>& job_gradient_health_;
  prometheus::Family<prometheus::Gauge>& job_discriminator_health_;

  prometheus::Counter& score_images_;
  prometheus::Histogram& score_request_seconds_;
  prometheus::Histogram& score_batch_size_;

  prometheus::Family<prometheus::Histogram>& inference_batch_images_;
  prometheus::Family<prometheus::Gauge>& inference_queue_depth_;
  prometheus::Family<prometheus::Histogram>& inference_queue_wait_;
  prometheus::Family<prometheus::Counter>& inference_rejected_;
  std::mutex inference_mu_;
  std::map<std::string, std::unique_ptr<InferenceModelMetrics>> inference_models_;

  prometheus::Gauge& metric_streams_open_;
};

}  // namespace gan::server

#endif  // GAN_SERVER_SERVER_METRICS_H_
