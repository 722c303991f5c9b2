#ifndef GAN_CLIENT_CONNECTION_H_
#define GAN_CLIENT_CONNECTION_H_

// ganctl's global options and its one channel to gan-server.

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "gan/v1/service.grpc.pb.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/grpcpp.h"

namespace gan::ganctl {

// The options every command takes.
struct GlobalOptions {
  std::string server = "127.0.0.1:50051";  // gan-server's address, a gRPC target
  double deadline_seconds = 30;            // deadline of every unary call
  bool json = false;                       // print protobuf JSON instead of text
  // Sent as `authorization: Bearer <token>` with every call; --token, else $GAN_TOKEN.
  std::string token;
  // TLS: the CA that signed the server's certificate (PEM); with tls_cert and tls_key, a client
  // certificate for mutual TLS.
  std::string tls_ca;
  std::string tls_cert;
  std::string tls_key;
};

// TLS credentials from the options' files, or insecure ones without --tls_ca/--tls_cert. A file
// that cannot be read is FAILED_PRECONDITION naming the option.
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> ChannelCredentialsFor(
    const GlobalOptions& options);

// A channel to `options.server` and a stub per service on it. Constructing it does not
// connect: the channel connects on the first call, so an unreachable server shows up as that
// call's UNAVAILABLE or DEADLINE_EXCEEDED status.
class Connection {
 public:
  Connection(const GlobalOptions& options, std::shared_ptr<grpc::ChannelCredentials> credentials);

  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  const GlobalOptions& options() const { return options_; }

  // Gives a unary call `options().deadline_seconds` from now and the token.
  void PrepareCall(grpc::ClientContext* context) const;
  // Gives a stream the token and no deadline: a stream lasts as long as its job.
  void PrepareStream(grpc::ClientContext* context) const;

  const std::shared_ptr<grpc::ChannelCredentials>& credentials() const { return credentials_; }

  gan::v1::TrainingService::Stub& training() { return *training_; }
  gan::v1::ScoringService::Stub& scoring() { return *scoring_; }
  grpc::health::v1::Health::Stub& health() { return *health_; }

 private:
  const GlobalOptions options_;
  std::shared_ptr<grpc::ChannelCredentials> credentials_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<gan::v1::TrainingService::Stub> training_;
  std::unique_ptr<gan::v1::ScoringService::Stub> scoring_;
  std::unique_ptr<grpc::health::v1::Health::Stub> health_;
};

}  // namespace gan::ganctl

#endif  // GAN_CLIENT_CONNECTION_H_
