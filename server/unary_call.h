#ifndef GAN_SERVER_UNARY_CALL_H_
#define GAN_SERVER_UNARY_CALL_H_

// How every unary handler of every service ends a call: the result goes into the response, the
// status through the one conversion (status_util.h), the call's metrics are recorded, and errors
// that are the server's fault are logged. Offload runs blocking work on an Executor.

#include <chrono>
#include <memory>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "grpcpp/grpcpp.h"
#include "server/executor.h"
#include "server/log.h"
#include "server/scoring_engine.h"
#include "server/server_metrics.h"
#include "server/status_util.h"

namespace gan::server {

// Finishes a unary call (and its metrics) with `result`, moved into `response` when OK. Errors
// that are the server's fault (INTERNAL, DATA_LOSS, UNKNOWN) are logged.
template <typename T>
void FinishCall(RpcCall& call, grpc::ServerUnaryReactor* reactor, const char* method,
                absl::StatusOr<T> result, T* response) {
  if (result.ok()) *response = *std::move(result);
  const absl::StatusCode code = result.status().code();
  if (code == absl::StatusCode::kInternal || code == absl::StatusCode::kDataLoss ||
      code == absl::StatusCode::kUnknown) {
    log::Error("rpc failed", {{"method", method}, {"status", result.status()}});
  }
  grpc::Status status = ToGrpcStatus(result.status());
  call.Finish(status.error_code());
  reactor->Finish(status);
}

// Answers a call at once, on the calling thread.
template <typename T>
grpc::ServerUnaryReactor* Reply(RpcCall call, grpc::CallbackServerContext* context,
                                const char* method, absl::StatusOr<T> result, T* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  FinishCall(call, reactor, method, std::move(result), response);
  return reactor;
}

// Runs `work(RpcCall&)` (returning absl::StatusOr<T>) on `executor` and finishes the call with
// its result. A full executor answers RESOURCE_EXHAUSTED at once naming `queue_option`; a call
// cancelled by its client, or past its deadline, when a worker takes it is answered without
// running `work`.
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
        FinishCall(*shared_call, reactor, method, std::move(result), response);
      });
  if (!scheduled) {
    FinishCall<T>(*shared_call, reactor, method,
                  absl::ResourceExhaustedError(absl::StrCat(
                      "the server is busy: its work queue is full (", queue_option, ")")),
                  response);
  }
  return reactor;
}

// A call is abandoned when its client cancels or its deadline passes.
inline RequestLife LifeOf(grpc::CallbackServerContext* context) {
  RequestLife life;
  if (context->deadline() != std::chrono::system_clock::time_point::max()) {
    life.deadline = absl::FromChrono(context->deadline());
  }
  life.cancelled = [context] { return context->IsCancelled(); };
  return life;
}

}  // namespace gan::server

#endif  // GAN_SERVER_UNARY_CALL_H_
