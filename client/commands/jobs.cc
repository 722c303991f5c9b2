// The job commands that make a single call: get, cancel and list.

#include <cstdio>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "client/commands/commands.h"
#include "client/output.h"
#include "gan/v1/service.grpc.pb.h"

namespace gan::ganctl {

int GetJob(Connection& connection, const std::string& job_id) {
  gan::v1::GetJobRequest request;
  request.set_job_id(job_id);
  gan::v1::Job job;
  grpc::ClientContext context;
  connection.PrepareCall(&context);
  const grpc::Status status = connection.training().GetJob(&context, request, &job);
  if (!status.ok()) return ReportRpcError(status);
  PrintMessage(connection.options().json, job);
  return kExitOk;
}

int CancelJob(Connection& connection, const std::string& job_id) {
  gan::v1::CancelJobRequest request;
  request.set_job_id(job_id);
  gan::v1::Job job;
  grpc::ClientContext context;
  connection.PrepareCall(&context);
  const grpc::Status status = connection.training().CancelJob(&context, request, &job);
  if (!status.ok()) return ReportRpcError(status);
  PrintMessage(connection.options().json, job);
  return kExitOk;
}

int ListJobs(Connection& connection, const ListOptions& options) {
  gan::v1::ListJobsRequest request;
  request.set_page_size(options.page_size);
  request.set_page_token(options.page_token);
  if (!options.state.empty()) {
    gan::v1::JobState state;
    if (!gan::v1::JobState_Parse("JOB_STATE_" + absl::AsciiStrToUpper(options.state), &state)) {
      ReportError(absl::StrCat("unknown --state ", options.state));
      return kExitUsage;
    }
    request.set_state(state);
  }
  gan::v1::ListJobsResponse response;
  grpc::ClientContext context;
  connection.PrepareCall(&context);
  const grpc::Status status = connection.training().ListJobs(&context, request, &response);
  if (!status.ok()) return ReportRpcError(status);
  if (connection.options().json) {
    PrintMessage(/*json=*/true, response);
    return kExitOk;
  }
  for (const gan::v1::Job& job : response.jobs()) {
    std::printf("%s  %-9s  %lld/%lld\n", job.job_id().c_str(), JobStateName(job.state()).c_str(),
                static_cast<long long>(job.step()), static_cast<long long>(job.total_steps()));
  }
  if (!response.next_page_token().empty()) {
    std::printf("next page: --page_token %s\n", response.next_page_token().c_str());
  }
  return kExitOk;
}

}  // namespace gan::ganctl
