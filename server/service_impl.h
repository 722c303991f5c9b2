#ifndef GAN_SERVER_SERVICE_IMPL_H_
#define GAN_SERVER_SERVICE_IMPL_H_

// Thin gRPC handlers (callback API): validate what is cheap, hand off to the JobManager or the
// ScoringEngine, and map absl::Status to grpc::Status in one helper. Work that may block (store
// commits, dataset and model loading, inference) runs on an Executor, never on the gRPC thread; a
// full executor answers RESOURCE_EXHAUSTED at once, and a call whose client has gone or whose
// deadline has passed by the time a worker takes it is answered without doing the work.
// StreamMetrics is a MetricsStream (server/metrics_stream.h), holding its principal's StreamQuota
// slot while it is open. With ServerMetrics every call is
// counted and timed (grpc_server_*; Score also feeds gan_score_*).

#include "gan/v1/service.grpc.pb.h"
#include "server/authorizer.h"
#include "server/executor.h"
#include "server/job_manager.h"
#include "server/scoring_engine.h"
#include "server/server_metrics.h"
#include "server/stream_quota.h"

namespace gan::server {

// What the handlers use; everything must outlive the services.
struct ServiceBackends {
  JobManager* jobs = nullptr;
  ScoringEngine* scoring = nullptr;
  Executor* control = nullptr;       // SubmitJob, CancelJob
  Executor* inference = nullptr;     // Score, SampleImages, ExportModel
  ServerMetrics* metrics = nullptr;  // optional
  const Authorizer* auth = nullptr;  // every call asks it first
  StreamQuota* streams = nullptr;    // StreamMetrics per principal
};

// The caller of `context` may call `method` (`permission`) on job `job_id`: UNAUTHENTICATED,
// PERMISSION_DENIED, or NOT_FOUND for a job that does not exist or is another principal's.
absl::Status CheckAuthorizedJob(const Authorizer& auth, const grpc::CallbackServerContext& context,
                                Permission permission, const char* method,
                                const std::string& job_id);

class TrainingServiceImpl final : public gan::v1::TrainingService::CallbackService {
 public:
  explicit TrainingServiceImpl(const ServiceBackends& backends);

  grpc::ServerUnaryReactor* SubmitJob(grpc::CallbackServerContext* context,
                                      const gan::v1::SubmitJobRequest* request,
                                      gan::v1::Job* response) override;
  grpc::ServerUnaryReactor* GetJob(grpc::CallbackServerContext* context,
                                   const gan::v1::GetJobRequest* request,
                                   gan::v1::Job* response) override;
  grpc::ServerUnaryReactor* ListJobs(grpc::CallbackServerContext* context,
                                     const gan::v1::ListJobsRequest* request,
                                     gan::v1::ListJobsResponse* response) override;
  grpc::ServerUnaryReactor* CancelJob(grpc::CallbackServerContext* context,
                                      const gan::v1::CancelJobRequest* request,
                                      gan::v1::Job* response) override;
  grpc::ServerWriteReactor<gan::v1::MetricEvent>* StreamMetrics(
      grpc::CallbackServerContext* context, const gan::v1::StreamMetricsRequest* request) override;
  grpc::ServerUnaryReactor* SampleImages(grpc::CallbackServerContext* context,
                                         const gan::v1::SampleImagesRequest* request,
                                         gan::v1::SampleImagesResponse* response) override;
  grpc::ServerWriteReactor<gan::v1::ExportModelResponse>* ExportModel(
      grpc::CallbackServerContext* context, const gan::v1::ExportModelRequest* request) override;

 private:
  absl::Status CheckJob(const grpc::CallbackServerContext& context, Permission permission,
                        const char* method, const std::string& job_id) const;

  const ServiceBackends backends_;
  // Label handles per method (null without metrics).
  GrpcMethodMetrics* submit_job_metrics_;
  GrpcMethodMetrics* get_job_metrics_;
  GrpcMethodMetrics* list_jobs_metrics_;
  GrpcMethodMetrics* cancel_job_metrics_;
  GrpcMethodMetrics* stream_metrics_metrics_;
  GrpcMethodMetrics* sample_images_metrics_;
  GrpcMethodMetrics* export_model_metrics_;
};

class ScoringServiceImpl final : public gan::v1::ScoringService::CallbackService {
 public:
  explicit ScoringServiceImpl(const ServiceBackends& backends);

  grpc::ServerUnaryReactor* Score(grpc::CallbackServerContext* context,
                                  const gan::v1::ScoreRequest* request,
                                  gan::v1::ScoreResponse* response) override;

 private:
  const ServiceBackends backends_;
  GrpcMethodMetrics* score_metrics_;
};

}  // namespace gan::server

#endif  // GAN_SERVER_SERVICE_IMPL_H_
