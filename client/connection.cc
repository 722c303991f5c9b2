#include "client/connection.h"

#include <chrono>
#include <cstdint>

namespace gan::ganctl {

Connection::Connection(const GlobalOptions& options)
    : options_(options),
      channel_(grpc::CreateChannel(options.server, grpc::InsecureChannelCredentials())),
      training_(gan::v1::TrainingService::NewStub(channel_)),
      scoring_(gan::v1::ScoringService::NewStub(channel_)),
      health_(grpc::health::v1::Health::NewStub(channel_)) {}

void Connection::SetDeadline(grpc::ClientContext* context) const {
  context->set_deadline(
      std::chrono::system_clock::now() +
      std::chrono::milliseconds(static_cast<int64_t>(options_.deadline_seconds * 1000)));
}

}  // namespace gan::ganctl
