#include "client/connection.h"

#include <chrono>
#include <cstdint>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"

namespace gan::ganctl {
namespace {

absl::StatusOr<std::string> ReadPem(const char* option, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream contents;
  contents << in.rdbuf();
  if (!in || contents.str().empty()) {
    return absl::FailedPreconditionError(absl::StrCat(option, " ", path, ": cannot read it"));
  }
  return contents.str();
}

}  // namespace

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> ChannelCredentialsFor(
    const GlobalOptions& options) {
  if (options.tls_cert.empty() != options.tls_key.empty()) {
    return absl::InvalidArgumentError("--tls_cert and --tls_key: give both or neither");
  }
  if (options.tls_ca.empty() && options.tls_cert.empty()) {
    return grpc::InsecureChannelCredentials();
  }
  grpc::SslCredentialsOptions ssl;
  if (!options.tls_ca.empty()) {
    absl::StatusOr<std::string> ca = ReadPem("--tls_ca", options.tls_ca);
    if (!ca.ok()) return ca.status();
    ssl.pem_root_certs = *ca;
  }
  if (!options.tls_cert.empty()) {
    absl::StatusOr<std::string> cert = ReadPem("--tls_cert", options.tls_cert);
    if (!cert.ok()) return cert.status();
    absl::StatusOr<std::string> key = ReadPem("--tls_key", options.tls_key);
    if (!key.ok()) return key.status();
    ssl.pem_cert_chain = *cert;
    ssl.pem_private_key = *key;
  }
  return grpc::SslCredentials(ssl);
}

Connection::Connection(const GlobalOptions& options,
                       std::shared_ptr<grpc::ChannelCredentials> credentials)
    : options_(options),
      credentials_(std::move(credentials)),
      channel_(grpc::CreateChannel(options.server, credentials_)),
      training_(gan::v1::TrainingService::NewStub(channel_)),
      scoring_(gan::v1::ScoringService::NewStub(channel_)),
      health_(grpc::health::v1::Health::NewStub(channel_)) {}

void Connection::PrepareCall(grpc::ClientContext* context) const {
  context->set_deadline(
      std::chrono::system_clock::now() +
      std::chrono::milliseconds(static_cast<int64_t>(options_.deadline_seconds * 1000)));
  PrepareStream(context);
}

void Connection::PrepareStream(grpc::ClientContext* context) const {
  // Metadata, not call credentials: gRPC refuses call credentials on a plaintext channel, and a
  // token on loopback without TLS is a supported set-up.
  if (!options_.token.empty()) context->AddMetadata("authorization", "Bearer " + options_.token);
}

}  // namespace gan::ganctl
