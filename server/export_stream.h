#ifndef GAN_SERVER_EXPORT_STREAM_H_
#define GAN_SERVER_EXPORT_STREAM_H_

// The ExportModel reactor: a job checkpoint's generator or discriminator as an ONNX model
// (core/onnx_export.h). The export (reading the checkpoint, building, checking and serializing
// the model) runs on an Executor, never on a gRPC thread; then the serialized model is written
// in messages of at most kExportChunkBytes of data, one message in flight at a time, the first
// carrying the ExportModelMetadata. A full executor answers RESOURCE_EXHAUSTED at once; a call
// whose client has gone or whose deadline has passed when a worker takes it is answered without
// exporting; a cancelled call stops between messages. Deletes itself when done.

#include <cstdint>
#include <memory>
#include <string>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "core/gan_spec.h"
#include "gan/v1/service.grpc.pb.h"
#include "server/executor.h"
#include "server/job_manager.h"
#include "server/server_metrics.h"

namespace gan::server {

// Data bytes per ExportModelResponse.
inline constexpr int64_t kExportChunkBytes = int64_t{1} << 20;

// A serialized ONNX model and what its first message says about it.
struct ExportedModel {
  std::string bytes;
  gan::v1::ExportModelMetadata metadata;
};

// The `model` of `job_id`'s checkpoint at `checkpoint_step` (0: the newest) as a serialized ONNX
// model: NOT_FOUND for an unknown job or step, FAILED_PRECONDITION for a job without a
// checkpoint yet (JobManager::CheckpointPath), the loader's status for an unreadable checkpoint.
// Blocks: run it on an executor.
absl::StatusOr<ExportedModel> ExportJobModel(JobManager* jobs, const std::string& job_id,
                                             int64_t checkpoint_step,
                                             gan::v1::ExportModelRequest::Model model,
                                             const GanLimits& limits = {});

class ExportStream : public grpc::ServerWriteReactor<gan::v1::ExportModelResponse> {
 public:
  using Work = absl::AnyInvocable<absl::StatusOr<ExportedModel>()>;

  // Queues `work` on `executor` (`queue_option` names its limit in the RESOURCE_EXHAUSTED
  // message) and streams its result. `context` is the call's.
  ExportStream(RpcCall call, grpc::CallbackServerContext* context, Executor* executor,
               const char* queue_option, Work work);

  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;

 private:
  struct Shared;

  static void Stop(Shared& s, const absl::Status& status);
  static void WriteNext(Shared& s);

  RpcCall call_;  // counted as CANCELLED if the stream is torn down before Stop
  std::shared_ptr<Shared> shared_;
};

}  // namespace gan::server

#endif  // GAN_SERVER_EXPORT_STREAM_H_
