#include <cstdio>

#include "client/commands/commands.h"
#include "client/output.h"
#include "grpc/health/v1/health.grpc.pb.h"

namespace gan::ganctl {

int Health(Connection& connection) {
  grpc::health::v1::HealthCheckRequest request;  // no service name: the server as a whole
  grpc::health::v1::HealthCheckResponse response;
  grpc::ClientContext context;
  connection.PrepareCall(&context);
  const grpc::Status status = connection.health().Check(&context, request, &response);
  if (!status.ok()) return ReportRpcError(status);
  std::printf("%s\n",
              grpc::health::v1::HealthCheckResponse::ServingStatus_Name(response.status()).c_str());
  return response.status() == grpc::health::v1::HealthCheckResponse::SERVING ? kExitOk
                                                                             : kExitRpcError;
}

}  // namespace gan::ganctl
