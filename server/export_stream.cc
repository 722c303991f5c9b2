#include "server/export_stream.h"

#include <algorithm>
#include <chrono>
#include <mutex>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "core/onnx_export.h"
#include "core/safetensors.h"
#include "io/status_macros.h"
#include "server/log.h"
#include "server/status_util.h"

namespace gan::server {

absl::StatusOr<ExportedModel> ExportJobModel(JobManager* jobs, const std::string& job_id,
                                             int64_t checkpoint_step,
                                             gan::v1::ExportModelRequest::Model model,
                                             const GanLimits& limits) {
  OnnxNetwork network;
  switch (model) {
    case gan::v1::ExportModelRequest::MODEL_GENERATOR:
      network = OnnxNetwork::kGenerator;
      break;
    case gan::v1::ExportModelRequest::MODEL_DISCRIMINATOR:
      network = OnnxNetwork::kDiscriminator;
      break;
    default:
      return absl::InvalidArgumentError("model: must be MODEL_GENERATOR or MODEL_DISCRIMINATOR");
  }
  GAN_ASSIGN_OR_RETURN(std::string path, jobs->CheckpointPath(job_id, checkpoint_step));
  GAN_ASSIGN_OR_RETURN(SafeTensors checkpoint, ReadSafeTensorsFile(path));
  int64_t step = 0;
  auto it = checkpoint.metadata.find("step");
  if (it == checkpoint.metadata.end() || !absl::SimpleAtoi(it->second, &step)) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": metadata 'step' is missing or not an integer"));
  }
  GAN_ASSIGN_OR_RETURN(onnx::ModelProto onnx_model,
                       ExportCheckpointToOnnx(checkpoint, network, limits));
  ExportedModel exported;
  if (!onnx_model.SerializeToString(&exported.bytes)) {
    return absl::InternalError(absl::StrCat("job ", job_id, ": the ONNX model of ",
                                            OnnxNetworkName(network), " does not serialize"));
  }
  exported.metadata.set_model(model);
  exported.metadata.set_checkpoint_step(step);
  exported.metadata.set_total_bytes(static_cast<int64_t>(exported.bytes.size()));
  exported.metadata.set_opset_version(kOnnxOpsetVersion);
  return exported;
}

struct ExportStream::Shared {
  // Recursive: gRPC may run a reaction inline from StartWrite or Finish.
  std::recursive_mutex mu;
  ExportStream* reactor = nullptr;  // null once the RPC is done
  ExportedModel model;
  size_t offset = 0;                     // bytes of model.bytes written
  gan::v1::ExportModelResponse message;  // the message in flight
  bool working = true, writing = false, cancelled = false, finished = false;
};

ExportStream::ExportStream(RpcCall call, grpc::CallbackServerContext* context, Executor* executor,
                           const char* queue_option, Work work)
    : call_(std::move(call)), shared_(std::make_shared<Shared>()) {
  shared_->reactor = this;
  std::shared_ptr<Shared> shared = shared_;
  const bool scheduled = executor->TrySchedule([shared, context, work = std::move(work)]() mutable {
    absl::StatusOr<ExportedModel> result;
    if (context->IsCancelled()) {
      result = absl::CancelledError("the client cancelled the call");
    } else if (std::chrono::system_clock::now() > context->deadline()) {
      result = absl::DeadlineExceededError("the deadline passed before the call was served");
    } else {
      result = work();
    }
    std::lock_guard<std::recursive_mutex> lock(shared->mu);
    shared->working = false;
    if (!result.ok()) return Stop(*shared, result.status());
    if (shared->cancelled) return Stop(*shared, absl::CancelledError("cancelled"));
    shared->model = *std::move(result);
    WriteNext(*shared);
  });
  if (!scheduled) {
    std::lock_guard<std::recursive_mutex> lock(shared_->mu);
    shared_->working = false;
    Stop(*shared_, absl::ResourceExhaustedError(absl::StrCat(
                       "the server is busy: its work queue is full (", queue_option, ")")));
  }
}

void ExportStream::OnWriteDone(bool ok) {
  std::lock_guard<std::recursive_mutex> lock(shared_->mu);
  shared_->writing = false;
  if (!ok) return Stop(*shared_, absl::UnavailableError("write failed"));
  if (shared_->cancelled) return Stop(*shared_, absl::CancelledError("cancelled"));
  if (shared_->offset >= shared_->model.bytes.size()) return Stop(*shared_, absl::OkStatus());
  WriteNext(*shared_);
}

void ExportStream::OnCancel() {
  std::lock_guard<std::recursive_mutex> lock(shared_->mu);
  shared_->cancelled = true;
  if (!shared_->working && !shared_->writing) {
    Stop(*shared_, absl::CancelledError("cancelled"));
  }
}

void ExportStream::OnDone() {
  {
    std::lock_guard<std::recursive_mutex> lock(shared_->mu);
    shared_->reactor = nullptr;
  }
  delete this;
}

void ExportStream::Stop(Shared& s, const absl::Status& status) {
  if (s.finished || s.reactor == nullptr) return;
  s.finished = true;
  const absl::StatusCode code = status.code();
  if (code == absl::StatusCode::kInternal || code == absl::StatusCode::kDataLoss ||
      code == absl::StatusCode::kUnknown) {
    log::Error("rpc failed", {{"method", "ExportModel"}, {"status", status}});
  }
  s.model = ExportedModel();
  s.message.Clear();
  const grpc::Status grpc_status = ToGrpcStatus(status);
  s.reactor->call_.Finish(grpc_status.error_code());
  s.reactor->Finish(grpc_status);
}

void ExportStream::WriteNext(Shared& s) {
  s.message.Clear();
  if (s.offset == 0) *s.message.mutable_metadata() = s.model.metadata;
  const size_t n = std::min<size_t>(kExportChunkBytes, s.model.bytes.size() - s.offset);
  s.message.set_data(s.model.bytes.substr(s.offset, n));
  s.offset += n;
  s.writing = true;
  s.reactor->StartWrite(&s.message);
}

}  // namespace gan::server
