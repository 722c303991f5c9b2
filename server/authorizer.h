#ifndef GAN_SERVER_AUTHORIZER_H_
#define GAN_SERVER_AUTHORIZER_H_

// What every handler asks before it acts: who is calling, may they do this, and may they see this
// job. Without an Authenticator (no --auth_tokens) every caller is the anonymous admin. Health
// checks do not come here. Thread-safe.

#include <string>

#include "absl/status/statusor.h"
#include "grpcpp/grpcpp.h"
#include "server/auth.h"
#include "server/job_store.h"

namespace gan::server {

class Authorizer {
 public:
  // `authenticator` may be null (no identities); both must outlive the authorizer.
  Authorizer(const Authenticator* authenticator, JobStore* store)
      : authenticator_(authenticator), store_(store) {}

  bool enabled() const { return authenticator_ != nullptr; }

  // The caller of `context`, allowed `permission`: UNAUTHENTICATED for a missing or unknown token,
  // PERMISSION_DENIED naming the role and `method` when the role lacks the right.
  absl::StatusOr<Principal> Authorize(const grpc::CallbackServerContext& context,
                                      Permission permission, const char* method) const;

  // OK when `caller` may see job `job_id`; NOT_FOUND in the store's words when it does not exist
  // or belongs to another principal (admins see every job).
  absl::Status CheckJobVisible(const Principal& caller, const std::string& job_id) const;

 private:
  const Authenticator* authenticator_;
  JobStore* store_;
};

}  // namespace gan::server

#endif  // GAN_SERVER_AUTHORIZER_H_
