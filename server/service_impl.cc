#include "server/service_impl.h"

#include <chrono>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/log.h"
#include "server/metrics_stream.h"
#include "server/status_util.h"

namespace gan::server {
namespace {

// Finishes a unary call (and its metrics) with `result`, copied into `response` when OK. Errors
// that are the server's fault (INTERNAL, DATA_LOSS, UNKNOWN) are logged.
template <typename T>
void FinishCall(RpcCall& call, grpc::ServerUnaryReactor* reactor, const char* method,
                const absl::StatusOr<T>& result, T* response) {
  if (result.ok()) *response = *result;
  const absl::StatusCode code = result.status().code();
  if (code == absl::StatusCode::kInternal || code == absl::StatusCode::kDataLoss ||
      code == absl::StatusCode::kUnknown) {
    log::Error("rpc failed", {{"method", method}, {"status", result.status()}});
  }
  grpc::Status status = ToGrpcStatus(result.status());
  call.Finish(status.error_code());
  reactor->Finish(status);
}

template <typename T>
grpc::ServerUnaryReactor* Reply(RpcCall call, grpc::CallbackServerContext* context,
                                const char* method, const absl::StatusOr<T>& result, T* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  FinishCall(call, reactor, method, result, response);
  return reactor;
}

// Runs `work` (returning absl::StatusOr<T>) on `executor` and finishes the call with its result.
// A full executor answers RESOURCE_EXHAUSTED at once naming `queue_option`; a call cancelled by
// its client, or past its deadline, when a worker takes it is answered without running `work`.
template <typename T, typename Work>
grpc::ServerUnaryReactor* Offload(Executor* executor, const char* queue_option, RpcCall call,
                                  grpc::CallbackServerContext* context, const char* method,
                                  T* response, Work work) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  auto shared_call = std::make_shared<RpcCall>(std::move(call));
  const bool scheduled = executor->TrySchedule(
      [shared_call, reactor, context, method, response, work = std::move(work)]() mutable {
        absl::StatusOr<T> result;
        if (context->IsCancelled()) {
          result = absl::CancelledError("the client cancelled the call");
        } else if (std::chrono::system_clock::now() > context->deadline()) {
          result = absl::DeadlineExceededError("the deadline passed before the call was served");
        } else {
          result = work(*shared_call);
        }
        FinishCall(*shared_call, reactor, method, result, response);
      });
  if (!scheduled) {
    FinishCall<T>(*shared_call, reactor, method,
                  absl::ResourceExhaustedError(absl::StrCat(
                      "the server is busy: its work queue is full (", queue_option, ")")),
                  response);
  }
  return reactor;
}

GrpcMethodMetrics* MethodMetrics(ServerMetrics* metrics, const char* service, const char* method,
                                 ServerMetrics::RpcType type = ServerMetrics::RpcType::kUnary) {
  return metrics == nullptr ? nullptr : metrics->Method(service, method, type);
}

absl::Status RequireJobId(const std::string& job_id) {
  if (job_id.empty()) return absl::InvalidArgumentError("job_id: required");
  return absl::OkStatus();
}

absl::Status RequireStep(int64_t checkpoint_step) {
  if (checkpoint_step < 0) return absl::InvalidArgumentError("checkpoint_step: must be >= 0");
  return absl::OkStatus();
}

// A stream refused before it starts.
class FailedStream : public grpc::ServerWriteReactor<gan::v1::MetricEvent> {
 public:
  FailedStream(RpcCall call, const absl::Status& s) {
    grpc::Status status = ToGrpcStatus(s);
    call.Finish(status.error_code());
    Finish(status);
  }
  void OnDone() override { delete this; }
};

// A model of `job_id` at `step` (0: the newest checkpoint), found in the job store when its batch
// runs.
ModelRef JobModel(JobManager* jobs, const std::string& job_id, int64_t step,
                  const std::string& label) {
  return ModelRef{absl::StrCat("job:", job_id, "@", step), label,
                  [jobs, job_id, step] { return jobs->CheckpointPath(job_id, step); }};
}

// A call is abandoned when its client cancels or its deadline passes.
RequestLife LifeOf(grpc::CallbackServerContext* context) {
  RequestLife life;
  if (context->deadline() != std::chrono::system_clock::time_point::max()) {
    life.deadline = absl::FromChrono(context->deadline());
  }
  life.cancelled = [context] { return context->IsCancelled(); };
  return life;
}

constexpr char kControlQueue[] = "--max_control_queue";
constexpr char kInferenceQueue[] = "--max_inference_queue";

}  // namespace

TrainingServiceImpl::TrainingServiceImpl(const ServiceBackends& backends) : backends_(backends) {
  const char* service = gan::v1::TrainingService::service_full_name();
  ServerMetrics* metrics = backends.metrics;
  submit_job_metrics_ = MethodMetrics(metrics, service, "SubmitJob");
  get_job_metrics_ = MethodMetrics(metrics, service, "GetJob");
  list_jobs_metrics_ = MethodMetrics(metrics, service, "ListJobs");
  cancel_job_metrics_ = MethodMetrics(metrics, service, "CancelJob");
  stream_metrics_metrics_ =
      MethodMetrics(metrics, service, "StreamMetrics", ServerMetrics::RpcType::kServerStream);
  sample_images_metrics_ = MethodMetrics(metrics, service, "SampleImages");
}

ScoringServiceImpl::ScoringServiceImpl(const ServiceBackends& backends)
    : backends_(backends),
      score_metrics_(MethodMetrics(backends.metrics,
                                   gan::v1::ScoringService::service_full_name(), "Score")) {}

grpc::ServerUnaryReactor* TrainingServiceImpl::SubmitJob(grpc::CallbackServerContext* context,
                                                         const gan::v1::SubmitJobRequest* request,
                                                         gan::v1::Job* response) {
  JobManager* jobs = backends_.jobs;
  return Offload(backends_.control, kControlQueue, RpcCall(submit_job_metrics_), context,
                 "SubmitJob", response, [jobs, request](RpcCall&) {
                   return jobs->Submit(request->request_id(), request->spec());
                 });
}

grpc::ServerUnaryReactor* TrainingServiceImpl::GetJob(grpc::CallbackServerContext* context,
                                                      const gan::v1::GetJobRequest* request,
                                                      gan::v1::Job* response) {
  RpcCall call(get_job_metrics_);
  if (auto s = RequireJobId(request->job_id()); !s.ok()) {
    return Reply<gan::v1::Job>(std::move(call), context, "GetJob", s, response);
  }
  return Reply(std::move(call), context, "GetJob", backends_.jobs->Get(request->job_id()),
               response);
}

grpc::ServerUnaryReactor* TrainingServiceImpl::ListJobs(grpc::CallbackServerContext* context,
                                                        const gan::v1::ListJobsRequest* request,
                                                        gan::v1::ListJobsResponse* response) {
  RpcCall call(list_jobs_metrics_);
  return Reply(std::move(call), context, "ListJobs", backends_.jobs->List(*request), response);
}

grpc::ServerUnaryReactor* TrainingServiceImpl::CancelJob(grpc::CallbackServerContext* context,
                                                         const gan::v1::CancelJobRequest* request,
                                                         gan::v1::Job* response) {
  RpcCall call(cancel_job_metrics_);
  if (auto s = RequireJobId(request->job_id()); !s.ok()) {
    return Reply<gan::v1::Job>(std::move(call), context, "CancelJob", s, response);
  }
  JobManager* jobs = backends_.jobs;
  return Offload(backends_.control, kControlQueue, std::move(call), context, "CancelJob",
                 response, [jobs, request](RpcCall&) { return jobs->Cancel(request->job_id()); });
}

grpc::ServerWriteReactor<gan::v1::MetricEvent>* TrainingServiceImpl::StreamMetrics(
    grpc::CallbackServerContext* context, const gan::v1::StreamMetricsRequest* request) {
  RpcCall call(stream_metrics_metrics_);
  absl::Status status = RequireJobId(request->job_id());
  if (status.ok() && request->from_step() < 0) {
    status = absl::InvalidArgumentError("from_step: must be >= 0");
  }
  if (status.ok()) status = backends_.jobs->Get(request->job_id()).status();
  if (!status.ok()) return new FailedStream(std::move(call), status);
  return new MetricsStream(std::move(call), backends_.jobs, request->job_id(),
                           request->from_step());
}

grpc::ServerUnaryReactor* TrainingServiceImpl::SampleImages(
    grpc::CallbackServerContext* context, const gan::v1::SampleImagesRequest* request,
    gan::v1::SampleImagesResponse* response) {
  RpcCall call(sample_images_metrics_);
  absl::Status valid = RequireJobId(request->job_id());
  if (valid.ok()) valid = RequireStep(request->checkpoint_step());
  if (!valid.ok()) {
    return Reply<gan::v1::SampleImagesResponse>(std::move(call), context, "SampleImages", valid,
                                                response);
  }
  const ServiceBackends backends = backends_;
  return Offload(backends_.inference, kInferenceQueue, std::move(call), context, "SampleImages",
                 response,
                 [backends, request](RpcCall&) -> absl::StatusOr<gan::v1::SampleImagesResponse> {
                   auto path =
                       backends.jobs->CheckpointPath(request->job_id(), request->checkpoint_step());
                   if (!path.ok()) return path.status();
                   return backends.scoring->Sample(*path, request->count(), request->seed());
                 });
}

grpc::ServerUnaryReactor* ScoringServiceImpl::Score(grpc::CallbackServerContext* context,
                                                    const gan::v1::ScoreRequest* request,
                                                    gan::v1::ScoreResponse* response) {
  RpcCall call(score_metrics_);
  absl::Status valid = RequireJobId(request->job_id());
  if (valid.ok()) valid = RequireStep(request->checkpoint_step());
  if (!valid.ok()) {
    return Reply<gan::v1::ScoreResponse>(std::move(call), context, "Score", valid, response);
  }
  // Queued for the job's dynamic batch (server/batcher.h); the reactor finishes from the batch's
  // completion, on an inference thread, or here when the request is refused before queueing.
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  auto shared_call = std::make_shared<RpcCall>(std::move(call));
  ServerMetrics* metrics = backends_.metrics;
  backends_.scoring->ScoreRequestAsync(
      JobModel(backends_.jobs, request->job_id(), request->checkpoint_step(), request->job_id()),
      *request, LifeOf(context),
      [shared_call, reactor, request, response, metrics](absl::StatusOr<ScoreResult> scored) {
        absl::StatusOr<gan::v1::ScoreResponse> result;
        if (!scored.ok()) {
          result = scored.status();
        } else {
          gan::v1::ScoreResponse answer;
          answer.mutable_logits()->Add(scored->logits.begin(), scored->logits.end());
          answer.mutable_probabilities()->Add(scored->probabilities.begin(),
                                              scored->probabilities.end());
          answer.set_checkpoint_step(scored->checkpoint_step);
          result = std::move(answer);
        }
        if (metrics != nullptr) {
          // N of the validated (N, H, W, C) shape.
          const int64_t images = result.ok() ? request->shape(0) : 0;
          metrics->Scored(images, shared_call->seconds(), result.ok());
        }
        FinishCall(*shared_call, reactor, "Score", result, response);
      });
  return reactor;
}

}  // namespace gan::server
