#ifndef GAN_SERVER_STATUS_UTIL_H_
#define GAN_SERVER_STATUS_UTIL_H_

// The one place absl::Status becomes grpc::Status.

#include "absl/status/status.h"
#include "grpcpp/support/status.h"

namespace gan::server {

grpc::Status ToGrpcStatus(const absl::Status& status);

}  // namespace gan::server

#endif  // GAN_SERVER_STATUS_UTIL_H_
