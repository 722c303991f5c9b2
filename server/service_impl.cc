#include "server/service_impl.h"

#include <deque>
#include <memory>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "server/status_util.h"

namespace gan::server {
namespace {

// Finishes a unary call (and its metrics) with the value of `result` copied into `response`.
template <typename T>
grpc::ServerUnaryReactor* Reply(RpcCall call, grpc::CallbackServerContext* context,
                                const absl::StatusOr<T>& result, T* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (result.ok()) *response = *result;
  grpc::Status status = ToGrpcStatus(result.status());
  call.Finish(status.error_code());
  reactor->Finish(status);
  return reactor;
}

GrpcMethodMetrics* MethodMetrics(Metrics* metrics, const char* service, const char* method,
                                 Metrics::RpcType type = Metrics::RpcType::kUnary) {
  return metrics == nullptr ? nullptr : metrics->Method(service, method, type);
}

absl::Status RequireJobId(const std::string& job_id) {
  if (job_id.empty()) return absl::InvalidArgumentError("job_id: required");
  return absl::OkStatus();
}

// Streams a job's metric events: the stored history from from_step, then live events, ending
// with the `finished` event and OK. State shared with the manager's wake-up callbacks lives in
// `Shared`, which outlives the reactor; the callbacks hold it weakly.
class MetricsStream : public grpc::ServerWriteReactor<gan::v1::MetricEvent> {
 public:
  MetricsStream(RpcCall call, JobManager* jobs, std::string job_id, int64_t from_step)
      : call_(std::move(call)), shared_(std::make_shared<Shared>()) {
    shared_->reactor = this;
    shared_->jobs = jobs;
    shared_->job_id = std::move(job_id);
    shared_->from_step = from_step;
    std::lock_guard<std::recursive_mutex> lock(shared_->mu);
    Continue(*shared_);
  }

  void OnWriteDone(bool ok) override {
    std::lock_guard<std::recursive_mutex> lock(shared_->mu);
    shared_->writing = false;
    if (!ok) return Stop(*shared_, grpc::Status(grpc::StatusCode::UNAVAILABLE, "write failed"));
    if (shared_->current.has_finished()) return Stop(*shared_, grpc::Status::OK);
    Continue(*shared_);
  }

  void OnCancel() override {
    std::lock_guard<std::recursive_mutex> lock(shared_->mu);
    if (!shared_->writing) Stop(*shared_, grpc::Status::CANCELLED);
    shared_->cancelled = true;
  }

  void OnDone() override {
    {
      std::lock_guard<std::recursive_mutex> lock(shared_->mu);
      shared_->reactor = nullptr;
    }
    delete this;
  }

 private:
  struct Shared {
    std::recursive_mutex mu;
    MetricsStream* reactor = nullptr;  // null once the RPC is done
    JobManager* jobs = nullptr;
    std::string job_id;
    int64_t from_step = 0;
    int64_t after_sequence = 0;
    std::deque<gan::v1::MetricEvent> pending;
    gan::v1::MetricEvent current;
    bool writing = false, waiting = false, finished = false, cancelled = false;
  };

  static void Stop(Shared& s, const grpc::Status& status) {
    if (s.finished || s.reactor == nullptr) return;
    s.finished = true;
    s.reactor->call_.Finish(status.error_code());
    s.reactor->Finish(status);
  }

  // Reads the next page of stored events into `pending` (bounded: one page per stream).
  static absl::Status Refill(Shared& s) {
    auto rows = s.jobs->store()->ReadMetrics(s.job_id, s.from_step, s.after_sequence, 32);
    if (!rows.ok()) return rows.status();
    for (MetricRow& row : *rows) {
      s.after_sequence = row.sequence;
      s.pending.push_back(std::move(row.event));
    }
    return absl::OkStatus();
  }

  static void WriteNext(Shared& s) {
    s.current = std::move(s.pending.front());
    s.pending.pop_front();
    s.writing = true;
    s.reactor->StartWrite(&s.current);
  }

  // Called with s.mu held and no write in flight: writes the next event, or waits for one.
  static void Continue(Shared& s) {
    if (s.finished || s.writing || s.reactor == nullptr) return;
    if (s.cancelled) return Stop(s, grpc::Status::CANCELLED);
    if (s.pending.empty()) {
      if (auto status = Refill(s); !status.ok()) return Stop(s, ToGrpcStatus(status));
    }
    if (!s.pending.empty()) return WriteNext(s);
    // Nothing stored from from_step on. An ended job's final state still closes the stream
    // (its `finished` event lies before a from_step past the end).
    auto job = s.jobs->Get(s.job_id);
    if (!job.ok()) return Stop(s, ToGrpcStatus(job.status()));
    if (job->state() == gan::v1::JOB_STATE_SUCCEEDED ||
        job->state() == gan::v1::JOB_STATE_FAILED ||
        job->state() == gan::v1::JOB_STATE_CANCELLED) {
      *s.pending.emplace_back().mutable_finished() = *job;
      return WriteNext(s);
    }
    if (s.jobs->shutting_down()) {
      return Stop(s, grpc::Status(grpc::StatusCode::UNAVAILABLE,
                                  "the server is shutting down; reconnect with from_step to "
                                  "resume"));
    }
    if (s.waiting) return;
    s.waiting = true;
    std::weak_ptr<Shared> weak = s.reactor->shared_;
    s.jobs->NotifyOnNextEvent(s.job_id, [weak] {
      std::shared_ptr<Shared> shared = weak.lock();
      if (!shared) return;
      std::lock_guard<std::recursive_mutex> lock(shared->mu);
      shared->waiting = false;
      Continue(*shared);
    });
    // An event stored between the read above and the registration is not missed.
    if (auto status = Refill(s); !status.ok()) return Stop(s, ToGrpcStatus(status));
    if (!s.pending.empty()) WriteNext(s);
  }

  RpcCall call_;  // counted as CANCELLED if the stream is torn down before Stop
  std::shared_ptr<Shared> shared_;
};

}  // namespace

TrainingServiceImpl::TrainingServiceImpl(JobManager* jobs, ScoringEngine* scoring,
                                         Metrics* metrics)
    : jobs_(jobs), scoring_(scoring), metrics_(metrics) {
  const char* service = gan::v1::TrainingService::service_full_name();
  submit_job_metrics_ = MethodMetrics(metrics, service, "SubmitJob");
  get_job_metrics_ = MethodMetrics(metrics, service, "GetJob");
  list_jobs_metrics_ = MethodMetrics(metrics, service, "ListJobs");
  cancel_job_metrics_ = MethodMetrics(metrics, service, "CancelJob");
  stream_metrics_metrics_ =
      MethodMetrics(metrics, service, "StreamMetrics", Metrics::RpcType::kServerStream);
  sample_images_metrics_ = MethodMetrics(metrics, service, "SampleImages");
}

ScoringServiceImpl::ScoringServiceImpl(JobManager* jobs, ScoringEngine* scoring, Metrics* metrics)
    : jobs_(jobs),
      scoring_(scoring),
      metrics_(metrics),
      score_metrics_(MethodMetrics(metrics, gan::v1::ScoringService::service_full_name(),
                                   "Score")) {}

grpc::ServerUnaryReactor* TrainingServiceImpl::SubmitJob(grpc::CallbackServerContext* context,
                                                         const gan::v1::SubmitJobRequest* request,
                                                         gan::v1::Job* response) {
  RpcCall call(submit_job_metrics_);
  return Reply(std::move(call), context, jobs_->Submit(request->request_id(), request->spec()),
               response);
}

grpc::ServerUnaryReactor* TrainingServiceImpl::GetJob(grpc::CallbackServerContext* context,
                                                      const gan::v1::GetJobRequest* request,
                                                      gan::v1::Job* response) {
  RpcCall call(get_job_metrics_);
  if (auto s = RequireJobId(request->job_id()); !s.ok()) {
    return Reply<gan::v1::Job>(std::move(call), context, s, response);
  }
  return Reply(std::move(call), context, jobs_->Get(request->job_id()), response);
}

grpc::ServerUnaryReactor* TrainingServiceImpl::ListJobs(grpc::CallbackServerContext* context,
                                                        const gan::v1::ListJobsRequest* request,
                                                        gan::v1::ListJobsResponse* response) {
  RpcCall call(list_jobs_metrics_);
  return Reply(std::move(call), context, jobs_->List(*request), response);
}

grpc::ServerUnaryReactor* TrainingServiceImpl::CancelJob(grpc::CallbackServerContext* context,
                                                         const gan::v1::CancelJobRequest* request,
                                                         gan::v1::Job* response) {
  RpcCall call(cancel_job_metrics_);
  if (auto s = RequireJobId(request->job_id()); !s.ok()) {
    return Reply<gan::v1::Job>(std::move(call), context, s, response);
  }
  return Reply(std::move(call), context, jobs_->Cancel(request->job_id()), response);
}

grpc::ServerWriteReactor<gan::v1::MetricEvent>* TrainingServiceImpl::StreamMetrics(
    grpc::CallbackServerContext* context, const gan::v1::StreamMetricsRequest* request) {
  RpcCall call(stream_metrics_metrics_);
  absl::Status status = RequireJobId(request->job_id());
  if (status.ok() && request->from_step() < 0) {
    status = absl::InvalidArgumentError("from_step: must be >= 0");
  }
  if (status.ok()) status = jobs_->Get(request->job_id()).status();
  if (!status.ok()) {
    class Failed : public grpc::ServerWriteReactor<gan::v1::MetricEvent> {
     public:
      Failed(RpcCall call, const absl::Status& s) {
        grpc::Status status = ToGrpcStatus(s);
        call.Finish(status.error_code());
        Finish(status);
      }
      void OnDone() override { delete this; }
    };
    return new Failed(std::move(call), status);
  }
  return new MetricsStream(std::move(call), jobs_, request->job_id(), request->from_step());
}

grpc::ServerUnaryReactor* TrainingServiceImpl::SampleImages(
    grpc::CallbackServerContext* context, const gan::v1::SampleImagesRequest* request,
    gan::v1::SampleImagesResponse* response) {
  RpcCall call(sample_images_metrics_);
  if (auto s = RequireJobId(request->job_id()); !s.ok()) {
    return Reply<gan::v1::SampleImagesResponse>(std::move(call), context, s, response);
  }
  if (request->checkpoint_step() < 0) {
    return Reply<gan::v1::SampleImagesResponse>(
        std::move(call), context, absl::InvalidArgumentError("checkpoint_step: must be >= 0"),
        response);
  }
  auto path = jobs_->CheckpointPath(request->job_id(), request->checkpoint_step());
  if (!path.ok()) {
    return Reply<gan::v1::SampleImagesResponse>(std::move(call), context, path.status(), response);
  }
  return Reply(std::move(call), context, scoring_->Sample(*path, request->count(), request->seed()),
               response);
}

grpc::ServerUnaryReactor* ScoringServiceImpl::Score(grpc::CallbackServerContext* context,
                                                    const gan::v1::ScoreRequest* request,
                                                    gan::v1::ScoreResponse* response) {
  RpcCall call(score_metrics_);
  if (auto s = RequireJobId(request->job_id()); !s.ok()) {
    return Reply<gan::v1::ScoreResponse>(std::move(call), context, s, response);
  }
  if (request->checkpoint_step() < 0) {
    return Reply<gan::v1::ScoreResponse>(
        std::move(call), context, absl::InvalidArgumentError("checkpoint_step: must be >= 0"),
        response);
  }
  auto path = jobs_->CheckpointPath(request->job_id(), request->checkpoint_step());
  if (!path.ok()) {
    return Reply<gan::v1::ScoreResponse>(std::move(call), context, path.status(), response);
  }
  absl::StatusOr<gan::v1::ScoreResponse> scored = scoring_->Score(*path, *request);
  if (metrics_ != nullptr) {
    // N of the validated (N, H, W, C) shape.
    const int64_t images = scored.ok() ? request->shape(0) : 0;
    metrics_->Scored(images, call.seconds(), scored.ok());
  }
  return Reply(std::move(call), context, scored, response);
}

}  // namespace gan::server
