#include "server/job_store.h"

#include "absl/strings/str_cat.h"
#include "google/protobuf/util/time_util.h"

namespace gan::server {

absl::Status JobNotFoundError(const std::string& job_id) {
  return absl::NotFoundError(absl::StrCat("job \"", job_id, "\" not found"));
}

gan::v1::Job ToProto(const JobRecord& record) {
  using google::protobuf::util::TimeUtil;
  gan::v1::Job job;
  job.set_job_id(record.job_id);
  *job.mutable_spec() = record.spec;
  job.set_state(record.state);
  if (record.create_time != absl::InfinitePast()) {
    *job.mutable_create_time() =
        TimeUtil::MicrosecondsToTimestamp(absl::ToUnixMicros(record.create_time));
  }
  if (record.start_time != absl::InfinitePast()) {
    *job.mutable_start_time() =
        TimeUtil::MicrosecondsToTimestamp(absl::ToUnixMicros(record.start_time));
  }
  if (record.end_time != absl::InfinitePast()) {
    *job.mutable_end_time() =
        TimeUtil::MicrosecondsToTimestamp(absl::ToUnixMicros(record.end_time));
  }
  job.set_step(record.step);
  job.set_total_steps(record.total_steps);
  job.set_latest_checkpoint_step(record.latest_checkpoint_step);
  job.set_error_message(record.error_message);
  job.set_request_id(record.request_id);
  job.set_principal(record.principal);
  return job;
}

}  // namespace gan::server
