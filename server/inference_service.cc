#include "server/inference_service.h"

#include <chrono>
#include <filesystem>
#include <memory>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "server/inference_tensors.h"
#include "server/log.h"
#include "server/service_impl.h"
#include "server/status_util.h"
#include "server/unary_call.h"

namespace gan::server {
namespace {

constexpr char kService[] = "inference.GRPCInferenceService";
constexpr char kInferenceQueue[] = "--max_inference_queue";
constexpr char kServerName[] = "gan-server";
// The generation of the service's APIs (gan.v1 beside this protocol).
constexpr char kServerVersion[] = "1";
constexpr char kPlatform[] = "onednn";

GrpcMethodMetrics* MethodMetrics(ServerMetrics* metrics, const char* method) {
  return metrics == nullptr ? nullptr
                            : metrics->Method(kService, method, ServerMetrics::RpcType::kUnary);
}

// A model name resolved: "<job_id>" or "<job_id>-generator", and its version (0: newest).
struct ModelId {
  std::string name;
  std::string job_id;
  bool generator = false;
  int64_t step = 0;
};

absl::StatusOr<ModelId> ParseModel(const char* name_field, const std::string& name,
                                   const char* version_field, const std::string& version) {
  ModelId id;
  id.name = name;
  if (name.empty()) return absl::InvalidArgumentError(absl::StrCat(name_field, ": required"));
  id.job_id = name;
  if (absl::EndsWith(name, kGeneratorSuffix)) {
    id.generator = true;
    id.job_id = name.substr(0, name.size() - (sizeof(kGeneratorSuffix) - 1));
    if (id.job_id.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(name_field, ": '", name, "' names no job (expected <job_id>-generator)"));
    }
  }
  if (!version.empty() && (!absl::SimpleAtoi(version, &id.step) || id.step <= 0 ||
                           version.find_first_not_of("0123456789") != std::string::npos)) {
    return absl::InvalidArgumentError(absl::StrCat(
        version_field, ": '", version, "' is not a checkpoint step (a positive decimal integer)"));
  }
  return id;
}

absl::Status ModelNotFound(const ModelId& id) {
  return absl::NotFoundError(
      absl::StrCat("model '", id.name, "' not found (no job ", id.job_id, ")"));
}

// The caller may use model `id`: its job exists and is theirs (or they are an admin). Another
// principal's model is NOT_FOUND in the same words as a model that does not exist.
absl::Status CheckModelVisible(const Authorizer& auth, const grpc::CallbackServerContext& context,
                               const char* method, const ModelId& id) {
  absl::Status status = CheckAuthorizedJob(auth, context, Permission::kInfer, method, id.job_id);
  if (status.code() == absl::StatusCode::kNotFound) return ModelNotFound(id);
  return status;
}

// The checkpoint file of `id` (its version, or the newest), with messages in this protocol's
// terms.
absl::StatusOr<std::string> CheckpointFile(JobStore* store, const ModelId& id) {
  absl::StatusOr<std::vector<CheckpointRow>> rows = store->ListCheckpoints(id.job_id);
  if (!rows.ok()) {
    if (rows.status().code() == absl::StatusCode::kNotFound) {
      return absl::NotFoundError(
          absl::StrCat("model '", id.name, "' not found (no job ", id.job_id, ")"));
    }
    return rows.status();
  }
  if (rows->empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("model '", id.name, "' has no version yet (its job has no checkpoint)"));
  }
  if (id.step == 0) return rows->back().path;
  for (const CheckpointRow& row : *rows) {
    if (row.step == id.step) return row.path;
  }
  return absl::NotFoundError(
      absl::StrCat("model_version: model '", id.name, "' has no version ", id.step));
}

ModelRef JobModel(JobStore* store, const ModelId& id) {
  // The key matches gan.v1 Score's for the same job and step, so both protocols share batches.
  return ModelRef{absl::StrCat("job:", id.job_id, "@", id.step),
                  id.generator ? absl::StrCat(id.job_id, kGeneratorSuffix) : id.job_id,
                  [store, id] { return CheckpointFile(store, id); }};
}

void AddTensor(
    const std::string& name, const std::string& datatype, const std::vector<int64_t>& shape,
    google::protobuf::RepeatedPtrField<inference::ModelMetadataResponse::TensorMetadata>* tensors) {
  auto* tensor = tensors->Add();
  tensor->set_name(name);
  tensor->set_datatype(datatype);
  for (int64_t d : shape) tensor->add_shape(d);
}

// (n, C, H, W) -> (n, H, W, C).
std::vector<float> ToNhwc(const std::vector<float>& nchw, int64_t n, int c, int h, int w) {
  std::vector<float> nhwc(nchw.size());
  const int64_t plane = int64_t{h} * w;
  for (int64_t i = 0; i < n; ++i) {
    for (int ch = 0; ch < c; ++ch) {
      for (int64_t p = 0; p < plane; ++p) {
        nhwc[(i * plane + p) * c + ch] = nchw[(i * c + ch) * plane + p];
      }
    }
  }
  return nhwc;
}

}  // namespace

InferenceServiceImpl::InferenceServiceImpl(const InferenceBackends& backends)
    : backends_(backends),
      server_live_metrics_(MethodMetrics(backends.metrics, "ServerLive")),
      server_ready_metrics_(MethodMetrics(backends.metrics, "ServerReady")),
      model_ready_metrics_(MethodMetrics(backends.metrics, "ModelReady")),
      server_metadata_metrics_(MethodMetrics(backends.metrics, "ServerMetadata")),
      model_metadata_metrics_(MethodMetrics(backends.metrics, "ModelMetadata")),
      model_infer_metrics_(MethodMetrics(backends.metrics, "ModelInfer")) {}

grpc::ServerUnaryReactor* InferenceServiceImpl::ServerLive(
    grpc::CallbackServerContext* context, const inference::ServerLiveRequest*,
    inference::ServerLiveResponse* response) {
  inference::ServerLiveResponse live;
  live.set_live(true);
  return Reply(RpcCall(server_live_metrics_), context, "ServerLive",
               absl::StatusOr<inference::ServerLiveResponse>(live), response);
}

grpc::ServerUnaryReactor* InferenceServiceImpl::ServerReady(
    grpc::CallbackServerContext* context, const inference::ServerReadyRequest*,
    inference::ServerReadyResponse* response) {
  inference::ServerReadyResponse ready;
  ready.set_ready(!backends_.jobs->shutting_down());
  return Reply(RpcCall(server_ready_metrics_), context, "ServerReady",
               absl::StatusOr<inference::ServerReadyResponse>(ready), response);
}

grpc::ServerUnaryReactor* InferenceServiceImpl::ServerMetadata(
    grpc::CallbackServerContext* context, const inference::ServerMetadataRequest*,
    inference::ServerMetadataResponse* response) {
  inference::ServerMetadataResponse metadata;
  metadata.set_name(kServerName);
  metadata.set_version(kServerVersion);
  return Reply(RpcCall(server_metadata_metrics_), context, "ServerMetadata",
               absl::StatusOr<inference::ServerMetadataResponse>(metadata), response);
}

grpc::ServerUnaryReactor* InferenceServiceImpl::ModelReady(
    grpc::CallbackServerContext* context, const inference::ModelReadyRequest* request,
    inference::ModelReadyResponse* response) {
  RpcCall call(model_ready_metrics_);
  absl::StatusOr<ModelId> id = ParseModel("name", request->name(), "version", request->version());
  absl::Status valid = id.status();
  if (valid.ok()) valid = CheckModelVisible(*backends_.auth, *context, "ModelReady", *id);
  if (!valid.ok()) {
    return Reply<inference::ModelReadyResponse>(std::move(call), context, "ModelReady", valid,
                                                response);
  }
  JobStore* store = backends_.store;
  return Offload(
      backends_.inference, kInferenceQueue, std::move(call), context, "ModelReady", response,
      [store, id = *id](RpcCall&) -> absl::StatusOr<inference::ModelReadyResponse> {
        inference::ModelReadyResponse ready;
        absl::StatusOr<std::string> path = CheckpointFile(store, id);
        if (!path.ok() && path.status().code() == absl::StatusCode::kNotFound && id.step == 0) {
          return path.status();  // no such model (an absent version is not ready)
        }
        std::error_code error;
        ready.set_ready(path.ok() && std::filesystem::is_regular_file(*path, error));
        return ready;
      });
}

grpc::ServerUnaryReactor* InferenceServiceImpl::ModelMetadata(
    grpc::CallbackServerContext* context, const inference::ModelMetadataRequest* request,
    inference::ModelMetadataResponse* response) {
  RpcCall call(model_metadata_metrics_);
  absl::StatusOr<ModelId> id = ParseModel("name", request->name(), "version", request->version());
  absl::Status valid = id.status();
  if (valid.ok()) valid = CheckModelVisible(*backends_.auth, *context, "ModelMetadata", *id);
  if (!valid.ok()) {
    return Reply<inference::ModelMetadataResponse>(std::move(call), context, "ModelMetadata", valid,
                                                   response);
  }
  JobStore* store = backends_.store;
  ScoringEngine* scoring = backends_.scoring;
  return Offload(
      backends_.inference, kInferenceQueue, std::move(call), context, "ModelMetadata", response,
      [store, scoring, id = *id](RpcCall&) -> absl::StatusOr<inference::ModelMetadataResponse> {
        absl::StatusOr<std::string> path = CheckpointFile(store, id);
        if (!path.ok()) return path.status();
        absl::StatusOr<std::vector<CheckpointRow>> rows = store->ListCheckpoints(id.job_id);
        if (!rows.ok()) return rows.status();
        absl::StatusOr<ModelInfo> info = scoring->Info(*path);
        if (!info.ok()) return info.status();
        inference::ModelMetadataResponse metadata;
        metadata.set_name(id.name);
        for (const CheckpointRow& row : *rows) metadata.add_versions(absl::StrCat(row.step));
        metadata.set_platform(kPlatform);
        const std::vector<int64_t> images = {-1, info->height, info->width, info->channels};
        if (id.generator) {
          AddTensor(kNoiseTensor, "FP32", {-1, info->noise_dim}, metadata.mutable_inputs());
          AddTensor(kImagesTensor, "FP32", images, metadata.mutable_outputs());
        } else {
          // Both UINT8 (0..255) and FP32 ([-1, 1]) are accepted; FP32 is the one listed.
          AddTensor(kImagesTensor, "FP32", images, metadata.mutable_inputs());
          AddTensor(kProbabilityTensor, "FP32", {-1, 1}, metadata.mutable_outputs());
          AddTensor(kLogitTensor, "FP32", {-1, 1}, metadata.mutable_outputs());
        }
        (*metadata.mutable_properties())["image_layout"] = "NHWC";
        (*metadata.mutable_properties())["accepted_image_datatypes"] = "UINT8,FP32";
        return metadata;
      });
}

grpc::ServerUnaryReactor* InferenceServiceImpl::ModelInfer(
    grpc::CallbackServerContext* context, const inference::ModelInferRequest* request,
    inference::ModelInferResponse* response) {
  RpcCall call(model_infer_metrics_);
  ScoringEngine* scoring = backends_.scoring;
  // Everything that needs no model is checked here, before queueing: names, datatypes, shapes
  // against the limits, payloads against the shapes.
  absl::StatusOr<ModelId> id =
      ParseModel("model_name", request->model_name(), "model_version", request->model_version());
  absl::StatusOr<std::vector<std::string>> outputs;
  if (!id.ok()) {
    outputs = id.status();
  } else if (absl::Status visible = CheckModelVisible(*backends_.auth, *context, "ModelInfer", *id);
             !visible.ok()) {
    outputs = visible;
  } else {
    outputs = id->generator ? RequestedOutputs(*request, {kImagesTensor})
                            : RequestedOutputs(*request, {kProbabilityTensor, kLogitTensor});
  }
  std::unique_ptr<ImageTensor> images;
  std::unique_ptr<NoiseTensor> noise;
  absl::Status valid = outputs.status();
  if (valid.ok() && id->generator) {
    absl::StatusOr<std::unique_ptr<NoiseTensor>> tensor =
        InferNoise(*request, scoring->max_sample_count(), "--max_sample_count");
    valid = tensor.status();
    if (tensor.ok()) noise = *std::move(tensor);
  } else if (valid.ok()) {
    absl::StatusOr<std::unique_ptr<ImageTensor>> tensor =
        InferImages(*request, scoring->max_score_batch(), "--max_score_batch");
    valid = tensor.status();
    if (tensor.ok()) images = *std::move(tensor);
  }
  if (!valid.ok()) {
    return Reply<inference::ModelInferResponse>(std::move(call), context, "ModelInfer", valid,
                                                response);
  }

  // The reactor finishes from the batch's completion (an inference thread).
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  auto shared_call = std::make_shared<RpcCall>(std::move(call));
  auto answer = [request, model_name = id->name](int64_t step) {
    inference::ModelInferResponse r;
    r.set_model_name(model_name);
    r.set_model_version(absl::StrCat(step));
    r.set_id(request->id());
    return r;
  };
  if (id->generator) {
    scoring->GenerateAsync(
        JobModel(backends_.store, *id), std::move(noise), LifeOf(context),
        [shared_call, reactor, response, answer](absl::StatusOr<GenerateResult> generated) {
          absl::StatusOr<inference::ModelInferResponse> result;
          if (!generated.ok()) {
            result = generated.status();
          } else {
            const int64_t n = static_cast<int64_t>(generated->images.size()) /
                              (int64_t{generated->height} * generated->width * generated->channels);
            inference::ModelInferResponse r = answer(generated->checkpoint_step);
            AddFp32Output(kImagesTensor,
                          {n, generated->height, generated->width, generated->channels},
                          ToNhwc(generated->images, n, generated->channels, generated->height,
                                 generated->width),
                          &r);
            result = std::move(r);
          }
          FinishCall(*shared_call, reactor, "ModelInfer", std::move(result), response);
        });
    return reactor;
  }
  scoring->ScoreAsync(
      JobModel(backends_.store, *id), std::move(images), LifeOf(context),
      [shared_call, reactor, response, answer,
       names = *outputs](absl::StatusOr<ScoreResult> scored) {
        absl::StatusOr<inference::ModelInferResponse> result;
        if (!scored.ok()) {
          result = scored.status();
        } else {
          const int64_t n = static_cast<int64_t>(scored->logits.size());
          inference::ModelInferResponse r = answer(scored->checkpoint_step);
          for (const std::string& name : names) {
            AddFp32Output(name, {n, 1},
                          name == kLogitTensor ? scored->logits : scored->probabilities, &r);
          }
          result = std::move(r);
        }
        FinishCall(*shared_call, reactor, "ModelInfer", std::move(result), response);
      });
  return reactor;
}

}  // namespace gan::server
