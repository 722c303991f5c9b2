#include "server/authorizer.h"

#include "absl/strings/str_cat.h"

namespace gan::server {

absl::StatusOr<Principal> Authorizer::Authorize(const grpc::CallbackServerContext& context,
                                                Permission permission, const char* method) const {
  if (authenticator_ == nullptr) return Principal{"", Role::kAdmin};
  absl::string_view authorization;
  const auto& metadata = context.client_metadata();
  if (auto it = metadata.find("authorization"); it != metadata.end()) {
    authorization = absl::string_view(it->second.data(), it->second.size());
  }
  absl::StatusOr<Principal> caller = authenticator_->Authenticate(authorization);
  if (!caller.ok()) return caller.status();
  if (!Allows(caller->role, permission)) {
    return absl::PermissionDeniedError(
        absl::StrCat("role ", RoleName(caller->role), " may not call ", method));
  }
  return caller;
}

absl::Status Authorizer::CheckJobVisible(const Principal& caller, const std::string& job_id) const {
  if (caller.role == Role::kAdmin) return absl::OkStatus();
  absl::StatusOr<JobRecord> job = store_->GetJob(job_id);
  if (!job.ok()) return job.status();
  if (!caller.SeesJobsOf(job->principal)) return JobNotFoundError(job_id);
  return absl::OkStatus();
}

}  // namespace gan::server
