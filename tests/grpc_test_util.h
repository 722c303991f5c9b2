#ifndef GAN_TESTS_GRPC_TEST_UTIL_H_
#define GAN_TESTS_GRPC_TEST_UTIL_H_

// Client-side helpers of the tests that call a gan-server over gRPC.

#include <memory>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"

namespace gan {

// grpc::StatusCode and absl::StatusCode share their numbering (google.rpc.Code).
absl::Status ToAbsl(const grpc::Status& status);

// grpc.health.v1.HealthCheckResponse.ServingStatus values.
inline constexpr int kServing = 1;
inline constexpr int kNotServing = 2;

// The server's overall grpc.health.v1 status (1 SERVING, 2 NOT_SERVING, 0 when absent), through a
// generic stub (the health proto's stubs are not generated for the tests):
// HealthCheckRequest{service: ""} is empty on the wire, and the response's field 1 is the enum.
absl::StatusOr<int> CheckServerHealth(const std::shared_ptr<grpc::Channel>& channel,
                                      absl::Time deadline);

}  // namespace gan

#endif  // GAN_TESTS_GRPC_TEST_UTIL_H_
