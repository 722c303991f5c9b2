#ifndef GAN_SERVER_INFERENCE_SERVICE_H_
#define GAN_SERVER_INFERENCE_SERVICE_H_

// The Open Inference Protocol (KServe v2 / Triton gRPC, proto/inference/grpc_service.proto)
// served beside gan.v1, over the same ScoringEngine, dynamic batcher and inference executor.
//
// Models, two per training job:
//   <job_id>            the discriminator. Input "images": UINT8 (0..255) or FP32 (in [-1, 1]),
//                       shape [-1, H, W, C] (NHWC). Outputs "probability" and "logit": FP32,
//                       [-1, 1]. Requests share dynamic batches with gan.v1 Score.
//   <job_id>-generator  the generator. Input "noise": FP32, [-1, noise_dim]. Output "images":
//                       FP32 in [-1, 1], [-1, H, W, C] (NHWC).
// model_version is a checkpoint step as a decimal string; empty means the newest checkpoint, and
// ModelMetadata lists the steps available. ModelInfer accepts raw_input_contents or typed
// contents, answers with raw_output_contents and echoes the request id. Limits: --max_score_batch
// images, --max_sample_count noise rows.
//
// Like the gan.v1 handlers (server/service_impl.h) these validate what is cheap on the gRPC
// thread and hand off: ModelInfer to the batcher, ModelReady and ModelMetadata (job store reads,
// model loading) to the inference executor. ServerLive and ServerReady answer at once; ready turns
// false when shutdown starts. Errors: INVALID_ARGUMENT naming the tensor or field, NOT_FOUND for
// an unknown model or version, FAILED_PRECONDITION for a job without a checkpoint yet,
// RESOURCE_EXHAUSTED when the queue is full.

#include <string>

#include "inference/grpc_service.grpc.pb.h"
#include "server/authorizer.h"
#include "server/executor.h"
#include "server/job_manager.h"
#include "server/job_store.h"
#include "server/scoring_engine.h"
#include "server/server_metrics.h"

namespace gan::server {

// What the handlers use; everything must outlive the service.
struct InferenceBackends {
  JobManager* jobs = nullptr;        // readiness (shutting_down)
  JobStore* store = nullptr;         // checkpoints of a job (model versions)
  ScoringEngine* scoring = nullptr;  // inference, batched
  Executor* inference = nullptr;     // ModelReady, ModelMetadata
  ServerMetrics* metrics = nullptr;  // optional
  const Authorizer* auth = nullptr;  // ModelReady, ModelMetadata and ModelInfer ask it first
};

// The generator model's name suffix: "<job_id>-generator".
inline constexpr char kGeneratorSuffix[] = "-generator";

class InferenceServiceImpl final : public inference::GRPCInferenceService::CallbackService {
 public:
  explicit InferenceServiceImpl(const InferenceBackends& backends);

  grpc::ServerUnaryReactor* ServerLive(grpc::CallbackServerContext* context,
                                       const inference::ServerLiveRequest* request,
                                       inference::ServerLiveResponse* response) override;
  grpc::ServerUnaryReactor* ServerReady(grpc::CallbackServerContext* context,
                                        const inference::ServerReadyRequest* request,
                                        inference::ServerReadyResponse* response) override;
  grpc::ServerUnaryReactor* ModelReady(grpc::CallbackServerContext* context,
                                       const inference::ModelReadyRequest* request,
                                       inference::ModelReadyResponse* response) override;
  grpc::ServerUnaryReactor* ServerMetadata(grpc::CallbackServerContext* context,
                                           const inference::ServerMetadataRequest* request,
                                           inference::ServerMetadataResponse* response) override;
  grpc::ServerUnaryReactor* ModelMetadata(grpc::CallbackServerContext* context,
                                          const inference::ModelMetadataRequest* request,
                                          inference::ModelMetadataResponse* response) override;
  grpc::ServerUnaryReactor* ModelInfer(grpc::CallbackServerContext* context,
                                       const inference::ModelInferRequest* request,
                                       inference::ModelInferResponse* response) override;

 private:
  const InferenceBackends backends_;
  GrpcMethodMetrics* server_live_metrics_;
  GrpcMethodMetrics* server_ready_metrics_;
  GrpcMethodMetrics* model_ready_metrics_;
  GrpcMethodMetrics* server_metadata_metrics_;
  GrpcMethodMetrics* model_metadata_metrics_;
  GrpcMethodMetrics* model_infer_metrics_;
};

}  // namespace gan::server

#endif  // GAN_SERVER_INFERENCE_SERVICE_H_
