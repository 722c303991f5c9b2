#include "server/job_store.h"

#include <algorithm>
#include <cstdint>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "google/protobuf/util/time_util.h"
#include "io/status_macros.h"

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
  job.set_replica(record.replica);
  return job;
}

absl::Status LeaseLostError(const std::string& job_id, const Lease& lease) {
  return absl::AbortedError(absl::StrCat("lease lost: job \"", job_id,
                                         "\" is no longer held by replica \"", lease.replica,
                                         "\" (epoch ", lease.epoch, ")"));
}

std::string SerializeDeterministically(const google::protobuf::MessageLite& message) {
  std::string bytes;
  {
    google::protobuf::io::StringOutputStream output(&bytes);
    google::protobuf::io::CodedOutputStream coded(&output);
    coded.SetSerializationDeterministic(true);
    message.SerializeToCodedStream(&coded);
  }
  return bytes;
}

std::string NewJobId() {
  std::random_device entropy;  // /dev/urandom (getrandom) on Linux
  const uint64_t bits = (static_cast<uint64_t>(entropy()) << 32) | entropy();
  return absl::StrFormat("job-%016x", bits);
}

std::string EncodePageToken(gan::v1::JobState state, const JobRecord& last) {
  return absl::WebSafeBase64Escape(absl::StrCat(
      "1:", static_cast<int>(state), ":", absl::ToUnixMicros(last.create_time), ":", last.job_id));
}

absl::StatusOr<PageCursor> DecodePageToken(const std::string& token, gan::v1::JobState state) {
  const absl::Status invalid = absl::InvalidArgumentError(
      absl::StrCat("invalid page_token \"", token, "\": pass a next_page_token unchanged"));
  std::string decoded;
  if (!absl::WebSafeBase64Unescape(token, &decoded)) return invalid;
  std::vector<std::string> parts = absl::StrSplit(decoded, absl::MaxSplits(':', 3));
  int token_state = 0;
  PageCursor cursor;
  if (parts.size() != 4 || parts[0] != "1" || !absl::SimpleAtoi(parts[1], &token_state) ||
      !absl::SimpleAtoi(parts[2], &cursor.create_time_us) || parts[3].empty()) {
    return invalid;
  }
  if (token_state != static_cast<int>(state)) {
    return absl::InvalidArgumentError(absl::StrCat("page_token was issued for state filter ",
                                                   gan::v1::JobState_IsValid(token_state)
                                                       ? gan::v1::JobState_Name(token_state)
                                                       : std::to_string(token_state),
                                                   ", not ", gan::v1::JobState_Name(state)));
  }
  cursor.job_id = std::move(parts[3]);
  return cursor;
}

absl::StatusOr<JobPage> ParseJobPage(gan::v1::JobState state, int page_size,
                                     const std::string& page_token) {
  if (page_size < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("page_size must not be negative, got ", page_size));
  }
  JobPage page;
  page.limit =
      page_size == 0 ? JobStore::kDefaultPageSize : std::min(page_size, JobStore::kMaxPageSize);
  if (!page_token.empty()) {
    GAN_ASSIGN_OR_RETURN(page.cursor, DecodePageToken(page_token, state));
    page.has_cursor = true;
  }
  return page;
}

void EndJobPage(gan::v1::JobState state, const JobPage& page, std::vector<JobRecord>* jobs,
                std::string* next_page_token) {
  std::string next;
  if (static_cast<int64_t>(jobs->size()) > page.limit) {
    jobs->resize(static_cast<size_t>(page.limit));
    next = EncodePageToken(state, jobs->back());
  }
  if (next_page_token != nullptr) *next_page_token = std::move(next);
}

absl::Status CheckReadMetricsLimit(int limit) {
  if (limit > 0) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat("limit must be positive, got ", limit));
}

}  // namespace gan::server
