#include "server/service_impl.h"

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "io/status_macros.h"
#include "server/export_stream.h"
#include "server/log.h"
#include "server/metrics_stream.h"
#include "server/status_util.h"
#include "server/unary_call.h"

namespace gan::server {
namespace {

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

absl::Status RequireModel(gan::v1::ExportModelRequest::Model model) {
  if (model != gan::v1::ExportModelRequest::MODEL_GENERATOR &&
      model != gan::v1::ExportModelRequest::MODEL_DISCRIMINATOR) {
    return absl::InvalidArgumentError("model: must be MODEL_GENERATOR or MODEL_DISCRIMINATOR");
  }
  return absl::OkStatus();
}

// A stream refused before it starts.
template <typename Message>
class FailedStream : public grpc::ServerWriteReactor<Message> {
 public:
  FailedStream(RpcCall call, const absl::Status& s) {
    grpc::Status status = ToGrpcStatus(s);
    call.Finish(status.error_code());
    this->Finish(status);
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

// One audit line per state-changing call: who, what, which job, and how it ended.
void Audit(const Principal& caller, const char* method, const std::string& job_id,
           const absl::Status& result) {
  log::Info("audit", {{"principal", caller.name},
                      {"role", RoleName(caller.role)},
                      {"method", method},
                      {"job_id", job_id},
                      {"result", result}});
}

// OK when the spec has no init_from (or its job_id is empty, which ResolveJobSpec refuses) or the
// caller may see its job; the Authorizer's status prefixed with "init_from: " otherwise.
absl::Status InitFromVisible(const Authorizer& auth, const Principal& caller,
                             const gan::v1::JobSpec& spec) {
  if (!spec.has_init_from() || spec.init_from().job_id().empty()) return absl::OkStatus();
  absl::Status visible = auth.CheckJobVisible(caller, spec.init_from().job_id());
  if (visible.ok()) return visible;
  return absl::Status(visible.code(), absl::StrCat("init_from: ", visible.message()));
}

// Whether a StreamMetrics call may start: a valid request from an authorized caller who sees
// the job, with a free place among the caller's --max_streams_per_principal streams (held by the
// returned slot until the stream ends).
absl::StatusOr<StreamQuota::Slot> AdmitStream(const ServiceBackends& backends,
                                              const grpc::CallbackServerContext& context,
                                              const gan::v1::StreamMetricsRequest& request) {
  GAN_RETURN_IF_ERROR(RequireJobId(request.job_id()));
  if (request.from_step() < 0) return absl::InvalidArgumentError("from_step: must be >= 0");
  GAN_ASSIGN_OR_RETURN(const Principal caller,
                       backends.auth->Authorize(context, Permission::kRead, "StreamMetrics"));
  GAN_RETURN_IF_ERROR(backends.auth->CheckJobVisible(caller, request.job_id()));
  return backends.streams->Acquire(caller.name);
}

constexpr char kControlQueue[] = "--max_control_queue";
constexpr char kInferenceQueue[] = "--max_inference_queue";

}  // namespace

absl::Status CheckAuthorizedJob(const Authorizer& auth, const grpc::CallbackServerContext& context,
                                Permission permission, const char* method,
                                const std::string& job_id) {
  absl::StatusOr<Principal> caller = auth.Authorize(context, permission, method);
  if (!caller.ok()) return caller.status();
  return auth.CheckJobVisible(*caller, job_id);
}

absl::Status TrainingServiceImpl::CheckJob(const grpc::CallbackServerContext& context,
                                           Permission permission, const char* method,
                                           const std::string& job_id) const {
  return CheckAuthorizedJob(*backends_.auth, context, permission, method, job_id);
}

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
  export_model_metrics_ =
      MethodMetrics(metrics, service, "ExportModel", ServerMetrics::RpcType::kServerStream);
}

ScoringServiceImpl::ScoringServiceImpl(const ServiceBackends& backends)
    : backends_(backends),
      score_metrics_(
          MethodMetrics(backends.metrics, gan::v1::ScoringService::service_full_name(), "Score")) {}

grpc::ServerUnaryReactor* TrainingServiceImpl::SubmitJob(grpc::CallbackServerContext* context,
                                                         const gan::v1::SubmitJobRequest* request,
                                                         gan::v1::Job* response) {
  RpcCall call(submit_job_metrics_);
  absl::StatusOr<Principal> caller =
      backends_.auth->Authorize(*context, Permission::kSubmit, "SubmitJob");
  if (!caller.ok()) {
    return Reply<gan::v1::Job>(std::move(call), context, "SubmitJob", caller.status(), response);
  }
  JobManager* jobs = backends_.jobs;
  const Authorizer* auth = backends_.auth;
  return Offload(backends_.control, kControlQueue, std::move(call), context, "SubmitJob", response,
                 [jobs, auth, request, caller = *caller](RpcCall&) {
                   // A warm start may only name a job the caller sees; another principal's job is
                   // NOT_FOUND in an unknown job's words.
                   absl::Status source = InitFromVisible(*auth, caller, request->spec());
                   absl::StatusOr<gan::v1::Job> job =
                       source.ok()
                           ? jobs->Submit(caller.name, request->request_id(), request->spec())
                           : absl::StatusOr<gan::v1::Job>(source);
                   Audit(caller, "SubmitJob", job.ok() ? job->job_id() : "", job.status());
                   return job;
                 });
}

grpc::ServerUnaryReactor* TrainingServiceImpl::GetJob(grpc::CallbackServerContext* context,
                                                      const gan::v1::GetJobRequest* request,
                                                      gan::v1::Job* response) {
  RpcCall call(get_job_metrics_);
  absl::Status allowed = RequireJobId(request->job_id());
  if (allowed.ok()) allowed = CheckJob(*context, Permission::kRead, "GetJob", request->job_id());
  if (!allowed.ok()) {
    return Reply<gan::v1::Job>(std::move(call), context, "GetJob", allowed, response);
  }
  return Reply(std::move(call), context, "GetJob", backends_.jobs->Get(request->job_id()),
               response);
}

grpc::ServerUnaryReactor* TrainingServiceImpl::ListJobs(grpc::CallbackServerContext* context,
                                                        const gan::v1::ListJobsRequest* request,
                                                        gan::v1::ListJobsResponse* response) {
  RpcCall call(list_jobs_metrics_);
  absl::StatusOr<Principal> caller =
      backends_.auth->Authorize(*context, Permission::kRead, "ListJobs");
  if (!caller.ok()) {
    return Reply<gan::v1::ListJobsResponse>(std::move(call), context, "ListJobs", caller.status(),
                                            response);
  }
  // Admins list everyone's jobs (or one principal's, on request); everyone else their own.
  std::optional<std::string> principal;
  if (caller->role != Role::kAdmin) {
    principal = caller->name;
  } else if (!request->principal().empty()) {
    principal = request->principal();
  }
  return Reply(std::move(call), context, "ListJobs", backends_.jobs->List(*request, principal),
               response);
}

grpc::ServerUnaryReactor* TrainingServiceImpl::CancelJob(grpc::CallbackServerContext* context,
                                                         const gan::v1::CancelJobRequest* request,
                                                         gan::v1::Job* response) {
  RpcCall call(cancel_job_metrics_);
  if (auto s = RequireJobId(request->job_id()); !s.ok()) {
    return Reply<gan::v1::Job>(std::move(call), context, "CancelJob", s, response);
  }
  absl::StatusOr<Principal> caller =
      backends_.auth->Authorize(*context, Permission::kCancel, "CancelJob");
  if (!caller.ok()) {
    return Reply<gan::v1::Job>(std::move(call), context, "CancelJob", caller.status(), response);
  }
  JobManager* jobs = backends_.jobs;
  const Authorizer* auth = backends_.auth;
  return Offload(backends_.control, kControlQueue, std::move(call), context, "CancelJob", response,
                 [jobs, auth, request, caller = *caller](RpcCall&) -> absl::StatusOr<gan::v1::Job> {
                   // Another principal's job is NOT_FOUND, and stays untouched.
                   absl::Status visible = auth->CheckJobVisible(caller, request->job_id());
                   absl::StatusOr<gan::v1::Job> job = visible.ok()
                                                          ? jobs->Cancel(request->job_id())
                                                          : absl::StatusOr<gan::v1::Job>(visible);
                   Audit(caller, "CancelJob", request->job_id(), job.status());
                   return job;
                 });
}

grpc::ServerWriteReactor<gan::v1::MetricEvent>* TrainingServiceImpl::StreamMetrics(
    grpc::CallbackServerContext* context, const gan::v1::StreamMetricsRequest* request) {
  RpcCall call(stream_metrics_metrics_);
  absl::StatusOr<StreamQuota::Slot> slot = AdmitStream(backends_, *context, *request);
  if (!slot.ok()) return new FailedStream<gan::v1::MetricEvent>(std::move(call), slot.status());
  return new MetricsStream(std::move(call), *std::move(slot), backends_.jobs, request->job_id(),
                           request->from_step());
}

grpc::ServerUnaryReactor* TrainingServiceImpl::SampleImages(
    grpc::CallbackServerContext* context, const gan::v1::SampleImagesRequest* request,
    gan::v1::SampleImagesResponse* response) {
  RpcCall call(sample_images_metrics_);
  absl::Status valid = RequireJobId(request->job_id());
  if (valid.ok()) valid = RequireStep(request->checkpoint_step());
  if (valid.ok()) {
    valid = CheckJob(*context, Permission::kInfer, "SampleImages", request->job_id());
  }
  if (!valid.ok()) {
    return Reply<gan::v1::SampleImagesResponse>(std::move(call), context, "SampleImages", valid,
                                                response);
  }
  const ServiceBackends backends = backends_;
  return Offload(
      backends_.inference, kInferenceQueue, std::move(call), context, "SampleImages", response,
      [backends, request](RpcCall&) -> absl::StatusOr<gan::v1::SampleImagesResponse> {
        auto path = backends.jobs->CheckpointPath(request->job_id(), request->checkpoint_step());
        if (!path.ok()) return path.status();
        return backends.scoring->Sample(*path, request->count(), request->seed());
      });
}

grpc::ServerWriteReactor<gan::v1::ExportModelResponse>* TrainingServiceImpl::ExportModel(
    grpc::CallbackServerContext* context, const gan::v1::ExportModelRequest* request) {
  RpcCall call(export_model_metrics_);
  absl::Status valid = RequireJobId(request->job_id());
  if (valid.ok()) valid = RequireModel(request->model());
  if (valid.ok()) valid = RequireStep(request->checkpoint_step());
  if (valid.ok()) {
    valid = CheckJob(*context, Permission::kInfer, "ExportModel", request->job_id());
  }
  if (!valid.ok()) {
    return new FailedStream<gan::v1::ExportModelResponse>(std::move(call), valid);
  }
  JobManager* jobs = backends_.jobs;
  return new ExportStream(
      std::move(call), context, backends_.inference, kInferenceQueue,
      [jobs, job_id = request->job_id(), step = request->checkpoint_step(),
       model = request->model()] { return ExportJobModel(jobs, job_id, step, model); });
}

grpc::ServerUnaryReactor* ScoringServiceImpl::Score(grpc::CallbackServerContext* context,
                                                    const gan::v1::ScoreRequest* request,
                                                    gan::v1::ScoreResponse* response) {
  RpcCall call(score_metrics_);
  absl::Status valid = RequireJobId(request->job_id());
  if (valid.ok()) valid = RequireStep(request->checkpoint_step());
  if (valid.ok()) {
    valid = CheckAuthorizedJob(*backends_.auth, *context, Permission::kInfer, "Score",
                               request->job_id());
  }
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
