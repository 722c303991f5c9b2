#ifndef GAN_SERVER_SERVICE_IMPL_H_
#define GAN_SERVER_SERVICE_IMPL_H_

// Thin gRPC handlers (callback API): validate, hand off to the JobManager or the ScoringEngine,
// and map absl::Status to grpc::Status in one helper. StreamMetrics is a write reactor fed from
// the stored history and the manager's per-job notifications; it writes one message at a time
// and never blocks. With a Metrics, every call is counted and timed (grpc_server_*; Score also
// feeds gan_score_*); without one (nullptr), nothing is recorded.

#include "gan/v1/service.grpc.pb.h"
#include "server/job_manager.h"
#include "server/metrics.h"
#include "server/scoring_engine.h"

namespace gan::server {

class TrainingServiceImpl final : public gan::v1::TrainingService::CallbackService {
 public:
  TrainingServiceImpl(JobManager* jobs, ScoringEngine* scoring, Metrics* metrics = nullptr);

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
      grpc::CallbackServerContext* context,
      const gan::v1::StreamMetricsRequest* request) override;
  grpc::ServerUnaryReactor* SampleImages(grpc::CallbackServerContext* context,
                                         const gan::v1::SampleImagesRequest* request,
                                         gan::v1::SampleImagesResponse* response) override;

 private:
  JobManager* jobs_;
  ScoringEngine* scoring_;
  Metrics* metrics_;
  // Label handles per method (null without metrics).
  GrpcMethodMetrics* submit_job_metrics_;
  GrpcMethodMetrics* get_job_metrics_;
  GrpcMethodMetrics* list_jobs_metrics_;
  GrpcMethodMetrics* cancel_job_metrics_;
  GrpcMethodMetrics* stream_metrics_metrics_;
  GrpcMethodMetrics* sample_images_metrics_;
};

class ScoringServiceImpl final : public gan::v1::ScoringService::CallbackService {
 public:
  ScoringServiceImpl(JobManager* jobs, ScoringEngine* scoring, Metrics* metrics = nullptr);

  grpc::ServerUnaryReactor* Score(grpc::CallbackServerContext* context,
                                  const gan::v1::ScoreRequest* request,
                                  gan::v1::ScoreResponse* response) override;

 private:
  JobManager* jobs_;
  ScoringEngine* scoring_;
  Metrics* metrics_;
  GrpcMethodMetrics* score_metrics_;
};

}  // namespace gan::server

#endif  // GAN_SERVER_SERVICE_IMPL_H_
