#include "server/server_metrics.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "core/gan_trainer.h"

namespace gan::server {
namespace {

// The status names of grpc/grpc doc/statuscodes.md, indexed by code.
constexpr const char* kCodeNames[] = {
    "OK",        "CANCELLED",      "UNKNOWN",           "INVALID_ARGUMENT",   "DEADLINE_EXCEEDED",
    "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
    "ABORTED",   "OUT_OF_RANGE",   "UNIMPLEMENTED",     "INTERNAL",           "UNAVAILABLE",
    "DATA_LOSS", "UNAUTHENTICATED"};

// Latency buckets from 1 ms to ~80 s (RPCs and training steps).
prometheus::Histogram::BucketBoundaries SecondsBuckets() {
  return {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 80};
}

// Queue waits from 50 us (a batch that forms at once) to ~10 s.
prometheus::Histogram::BucketBoundaries QueueWaitBuckets() {
  return {0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
          0.025,   0.05,   0.1,     0.25,   0.5,   1,      2.5,   10};
}

// The state label values of the health gauges, indexed by gan::LayerHealth and
// gan::DiscriminatorHealth.
constexpr const char* kLayerStateNames[] = {"ok", "vanishing", "exploding"};
constexpr const char* kDiscriminatorStateNames[] = {"ok", "stalled", "collapsed"};

prometheus::Histogram::BucketBoundaries ImageCountBuckets() {
  return {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096};
}

}  // namespace

void GrpcMethodMetrics::Handled(grpc::StatusCode code, double seconds) {
  int index = static_cast<int>(code);
  if (index < 0 || index >= kCodes) index = static_cast<int>(grpc::StatusCode::UNKNOWN);
  prometheus::Counter* counter = handled_[index].load(std::memory_order_acquire);
  if (counter == nullptr) {
    std::lock_guard<std::mutex> lock(mu_);
    counter = handled_[index].load(std::memory_order_relaxed);
    if (counter == nullptr) {
      prometheus::Labels labels = labels_;
      labels["grpc_code"] = kCodeNames[index];
      counter = &handled_family_->Add(labels);
      handled_[index].store(counter, std::memory_order_release);
    }
  }
  counter->Increment();
  handling_->Observe(seconds);
}

RpcCall::RpcCall(GrpcMethodMetrics* method)
    : method_(method), start_(std::chrono::steady_clock::now()) {
  if (method_ != nullptr) method_->Started();
}

RpcCall::RpcCall(RpcCall&& other) noexcept : method_(other.method_), start_(other.start_) {
  other.method_ = nullptr;
}

RpcCall::~RpcCall() { Finish(grpc::StatusCode::CANCELLED); }

double RpcCall::seconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void RpcCall::Finish(grpc::StatusCode code) {
  if (method_ == nullptr) return;
  method_->Handled(code, seconds());
  method_ = nullptr;
}

JobMetrics::JobMetrics(ServerMetrics* metrics, const std::string& job_id)
    : metrics_(metrics), labels_({{"job_id", job_id}}) {
  d_loss_ = &metrics_->job_d_loss_.Add(labels_);
  g_loss_ = &metrics_->job_g_loss_.Add(labels_);
  d_real_ = &metrics_->job_d_real_.Add(labels_);
  d_fake_ = &metrics_->job_d_fake_.Add(labels_);
  for (int state = 0; state < kDiscriminatorStates; ++state) {
    prometheus::Labels labels = labels_;
    labels["state"] = kDiscriminatorStateNames[state];
    discriminator_health_[state] = &metrics_->job_discriminator_health_.Add(labels);
  }
}

JobMetrics::~JobMetrics() {
  metrics_->job_d_loss_.Remove(d_loss_);
  metrics_->job_g_loss_.Remove(g_loss_);
  metrics_->job_d_real_.Remove(d_real_);
  metrics_->job_d_fake_.Remove(d_fake_);
  for (prometheus::Gauge* gauge : discriminator_health_) {
    metrics_->job_discriminator_health_.Remove(gauge);
  }
  RemoveLayerSeries();
}

void JobMetrics::RemoveLayerSeries() {
  for (const LayerSeries& series : layers_) {
    metrics_->job_layer_gradient_norm_.Remove(series.norm);
    for (prometheus::Gauge* gauge : series.health) {
      if (gauge != nullptr) metrics_->job_gradient_health_.Remove(gauge);
    }
  }
  layers_.clear();
}

void JobMetrics::Gradients(const StepMetrics& step) {
  bool same_layers = layers_.size() == step.grad_norms.size();
  for (size_t k = 0; same_layers && k < layers_.size(); ++k) {
    same_layers = layers_[k].layer == step.grad_norms[k].layer;
  }
  if (!same_layers) {
    RemoveLayerSeries();
    for (const LayerGradNorm& g : step.grad_norms) {
      LayerSeries series;
      series.layer = g.layer;
      prometheus::Labels labels = labels_;
      labels["layer"] = g.layer;
      series.norm = &metrics_->job_layer_gradient_norm_.Add(labels);
      series.health.fill(nullptr);
      // BatchNorm's scale has no health state (gan::LayerHealth::kNotAssessed).
      if (!g.kernel) {
        layers_.push_back(std::move(series));
        continue;
      }
      for (int state = 0; state < kLayerStates; ++state) {
        labels["state"] = kLayerStateNames[state];
        series.health[state] = &metrics_->job_gradient_health_.Add(labels);
      }
      layers_.push_back(std::move(series));
    }
  }
  for (size_t k = 0; k < layers_.size(); ++k) {
    const LayerGradNorm& g = step.grad_norms[k];
    layers_[k].norm->Set(g.norm);
    for (int state = 0; state < kLayerStates; ++state) {
      if (layers_[k].health[state] == nullptr) continue;
      layers_[k].health[state]->Set(static_cast<int>(g.health) == state ? 1 : 0);
    }
  }
  for (int state = 0; state < kDiscriminatorStates; ++state) {
    discriminator_health_[state]->Set(static_cast<int>(step.discriminator_health) == state ? 1 : 0);
  }
}

void JobMetrics::Step(float d_loss, float g_loss, float d_real, float d_fake, int64_t images,
                      double seconds) {
  d_loss_->Set(d_loss);
  g_loss_->Set(g_loss);
  d_real_->Set(d_real);
  d_fake_->Set(d_fake);
  metrics_->train_steps_.Increment();
  metrics_->train_images_.Increment(static_cast<double>(images));
  metrics_->train_step_seconds_.Observe(seconds);
}

ServerMetrics::ServerMetrics()
    : registry_(std::make_shared<prometheus::Registry>()),
      grpc_started_(prometheus::BuildCounter()
                        .Name("grpc_server_started_total")
                        .Help("Total number of RPCs started on the server.")
                        .Register(*registry_)),
      grpc_handled_(prometheus::BuildCounter()
                        .Name("grpc_server_handled_total")
                        .Help("Total number of RPCs completed on the server, regardless of "
                              "success or failure.")
                        .Register(*registry_)),
      grpc_handling_(prometheus::BuildHistogram()
                         .Name("grpc_server_handling_seconds")
                         .Help("Histogram of response latency (seconds) of gRPC that had been "
                               "application-level handled by the server.")
                         .Register(*registry_)),
      jobs_(prometheus::BuildGauge()
                .Name("gan_jobs")
                .Help("Training jobs in each state.")
                .Register(*registry_)),
      jobs_submitted_(prometheus::BuildCounter()
                          .Name("gan_jobs_submitted_total")
                          .Help("Training jobs accepted by SubmitJob (idempotent retries not "
                                "counted).")
                          .Register(*registry_)
                          .Add({})),
      train_steps_(prometheus::BuildCounter()
                       .Name("gan_train_steps_total")
                       .Help("Training steps (one D and one G update) completed.")
                       .Register(*registry_)
                       .Add({})),
      train_images_(prometheus::BuildCounter()
                        .Name("gan_train_images_total")
                        .Help("Real images fed to the discriminator by training steps.")
                        .Register(*registry_)
                        .Add({})),
      train_step_seconds_(prometheus::BuildHistogram()
                              .Name("gan_train_step_seconds")
                              .Help("Wall time of one training step.")
                              .Register(*registry_)
                              .Add({}, SecondsBuckets())),
      job_d_loss_(prometheus::BuildGauge()
                      .Name("gan_job_d_loss")
                      .Help("Discriminator loss of a running job's latest step.")
                      .Register(*registry_)),
      job_g_loss_(prometheus::BuildGauge()
                      .Name("gan_job_g_loss")
                      .Help("Generator loss of a running job's latest step.")
                      .Register(*registry_)),
      job_d_real_(prometheus::BuildGauge()
                      .Name("gan_job_d_real")
                      .Help("Mean D(x) on real images in a running job's latest step.")
                      .Register(*registry_)),
      job_d_fake_(prometheus::BuildGauge()
                      .Name("gan_job_d_fake")
                      .Help("Mean D(G(z)) on generated images in a running job's latest step.")
                      .Register(*registry_)),
      job_layer_gradient_norm_(prometheus::BuildGauge()
                                   .Name("gan_job_layer_gradient_norm")
                                   .Help("L2 norm of a layer's weight gradient in a running "
                                         "job's latest step.")
                                   .Register(*registry_)),
      job_gradient_health_(prometheus::BuildGauge()
                               .Name("gan_job_gradient_health")
                               .Help("1 for a running job's layer's current gradient-health "
                                     "state (ok, vanishing, exploding), 0 for the others.")
                               .Register(*registry_)),
      job_discriminator_health_(prometheus::BuildGauge()
                                    .Name("gan_job_discriminator_health")
                                    .Help("1 for a running job's discriminator's current health "
                                          "state (ok, stalled, collapsed), 0 for the others.")
                                    .Register(*registry_)),
      score_images_(prometheus::BuildCounter()
                        .Name("gan_score_images_total")
                        .Help("Images scored by successful Score requests.")
                        .Register(*registry_)
                        .Add({})),
      score_request_seconds_(prometheus::BuildHistogram()
                                 .Name("gan_score_request_seconds")
                                 .Help("Wall time of a Score request.")
                                 .Register(*registry_)
                                 .Add({}, SecondsBuckets())),
      score_batch_size_(prometheus::BuildHistogram()
                            .Name("gan_score_batch_size")
                            .Help("Images per Score request.")
                            .Register(*registry_)
                            .Add({}, ImageCountBuckets())),
      inference_batch_images_(prometheus::BuildHistogram()
                                  .Name("gan_inference_batch_images")
                                  .Help("Images per network pass of a model's dynamic batches "
                                        "(Score and ModelInfer requests merged).")
                                  .Register(*registry_)),
      inference_queue_depth_(prometheus::BuildGauge()
                                 .Name("gan_inference_queue_depth")
                                 .Help("Requests waiting in a model's batch queue.")
                                 .Register(*registry_)),
      inference_queue_wait_(prometheus::BuildHistogram()
                                .Name("gan_inference_queue_wait_seconds")
                                .Help("Time from queueing a request to the start of its batch.")
                                .Register(*registry_)),
      inference_rejected_(prometheus::BuildCounter()
                              .Name("gan_inference_rejected_total")
                              .Help("Inference requests answered without being computed, by "
                                    "reason (queue_full, deadline_exceeded, cancelled, "
                                    "shutting_down).")
                              .Register(*registry_)),
      metric_streams_open_(prometheus::BuildGauge()
                               .Name("gan_metric_streams_open")
                               .Help("StreamMetrics streams open, all principals together.")
                               .Register(*registry_)
                               .Add({})) {
  for (int state = gan::v1::JOB_STATE_QUEUED; state <= gan::v1::JOB_STATE_CANCELLED; ++state) {
    // "JOB_STATE_QUEUED" -> "queued"
    std::string name = gan::v1::JobState_Name(static_cast<gan::v1::JobState>(state)).substr(10);
    jobs_by_state_[state] = &jobs_.Add({{"state", absl::AsciiStrToLower(name)}});
  }
}

GrpcMethodMetrics* ServerMetrics::Method(const std::string& service, const std::string& method,
                                         RpcType type) {
  const std::string key = absl::StrCat(service, "/", method);
  std::lock_guard<std::mutex> lock(methods_mu_);
  std::unique_ptr<GrpcMethodMetrics>& entry = methods_[key];
  if (entry == nullptr) {
    const prometheus::Labels labels = {
        {"grpc_type", type == RpcType::kUnary ? "unary" : "server_stream"},
        {"grpc_service", service},
        {"grpc_method", method}};
    entry = std::make_unique<GrpcMethodMetrics>(&grpc_handled_, labels, &grpc_started_.Add(labels),
                                                &grpc_handling_.Add(labels, SecondsBuckets()));
  }
  return entry.get();
}

prometheus::Gauge* ServerMetrics::JobsGauge(gan::v1::JobState state) {
  if (state < gan::v1::JOB_STATE_QUEUED || state > gan::v1::JOB_STATE_CANCELLED) return nullptr;
  return jobs_by_state_[state];
}

void ServerMetrics::SetJobs(gan::v1::JobState state, int64_t count) {
  if (prometheus::Gauge* gauge = JobsGauge(state)) gauge->Set(static_cast<double>(count));
}

void ServerMetrics::MoveJob(gan::v1::JobState from, gan::v1::JobState to) {
  if (from == to) return;
  if (prometheus::Gauge* gauge = JobsGauge(from)) gauge->Decrement();
  if (prometheus::Gauge* gauge = JobsGauge(to)) gauge->Increment();
}

void ServerMetrics::JobSubmitted() {
  jobs_submitted_.Increment();
  if (prometheus::Gauge* gauge = JobsGauge(gan::v1::JOB_STATE_QUEUED)) gauge->Increment();
}

void ServerMetrics::Scored(int64_t images, double seconds, bool ok) {
  score_request_seconds_.Observe(seconds);
  if (!ok) return;  // a rejected request's shape may be anything
  score_batch_size_.Observe(static_cast<double>(images));
  score_images_.Increment(static_cast<double>(images));
}

}  // namespace gan::server

namespace gan::server {

InferenceModelMetrics* ServerMetrics::InferenceModel(const std::string& model) {
  std::lock_guard<std::mutex> lock(inference_mu_);
  std::unique_ptr<InferenceModelMetrics>& entry = inference_models_[model];
  if (entry == nullptr) {
    const prometheus::Labels labels = {{"model", model}};
    std::array<prometheus::Counter*, InferenceModelMetrics::kRejections> rejected{};
    const char* reasons[] = {"queue_full", "deadline_exceeded", "cancelled", "shutting_down"};
    for (int i = 0; i < InferenceModelMetrics::kRejections; ++i) {
      rejected[i] = &inference_rejected_.Add({{"model", model}, {"reason", reasons[i]}});
    }
    entry = std::make_unique<InferenceModelMetrics>(
        &inference_batch_images_.Add(labels, ImageCountBuckets()),
        &inference_queue_depth_.Add(labels), &inference_queue_wait_.Add(labels, QueueWaitBuckets()),
        rejected);
  }
  return entry.get();
}

}  // namespace gan::server
