#ifndef GAN_SERVER_JOB_STORE_H_
#define GAN_SERVER_JOB_STORE_H_

// The durable record of every job: its spec and state, the metric history StreamMetrics replays,
// and the checkpoints on disk. A call that returned OK has committed durably.
//
// Errors: NOT_FOUND for an unknown job (naming it), FAILED_PRECONDITION for a state change of a
// job that already ended, INVALID_ARGUMENT for bad arguments (page tokens, page sizes),
// ALREADY_EXISTS for a request_id reused with another spec, INTERNAL with the database's message
// for database failures.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "gan/v1/service.pb.h"

namespace gan::server {

struct JobRecord {
  std::string job_id;      // "job-" + 16 lowercase hex digits, chosen by the store
  std::string principal;   // who submitted it; empty on a server without identities
  std::string request_id;  // the client's idempotency key; empty when none was given
  gan::v1::JobSpec spec;
  gan::v1::JobState state = gan::v1::JOB_STATE_QUEUED;
  // absl::InfinitePast() when unset (start_time before the job first ran, end_time until it
  // ended). Stored with microsecond precision.
  absl::Time create_time = absl::InfinitePast();
  absl::Time start_time = absl::InfinitePast();
  absl::Time end_time = absl::InfinitePast();
  int64_t step = 0;                    // iterations completed
  int64_t total_steps = 0;             // iterations planned
  int64_t latest_checkpoint_step = 0;  // newest recorded checkpoint; 0 when none
  std::string error_message;
};

struct MetricRow {
  int64_t sequence = 0;  // unique and increasing per store, never reused (even after deletes)
  int64_t step = 0;
  gan::v1::MetricEvent event;
};

struct CheckpointRow {
  int64_t step = 0;
  std::string path;
};

// The interface every backend implements (today SQLite: server/sqlite_job_store.h). Every method
// may be called from any thread; each multi-statement change is atomic, so readers never see half
// of it and a failure leaves nothing.
class JobStore {
 public:
  // ListJobs' page size for page_size 0, and the largest page it returns.
  static constexpr int kDefaultPageSize = 20;
  static constexpr int kMaxPageSize = 100;

  // Decides, inside CreateJob's transaction, whether a new job may be inserted (e.g. the queue has
  // room, the principal is within its quota), given the principal's QUEUED + RUNNING jobs; a
  // non-OK status is returned by CreateJob and nothing is inserted.
  using AdmitFn = absl::FunctionRef<absl::Status(int64_t principal_active_jobs)>;

  struct NewJob {
    std::string principal;
    std::string request_id;  // empty: none
    gan::v1::JobSpec spec;
    int64_t total_steps = 0;
  };

  virtual ~JobStore() = default;

  // Inserts a QUEUED job created now (create_time strictly increases within a store, so "newest
  // first" is the order of creation) if `admit` allows it. With a non-empty request_id that a job
  // of the same principal already has, inserts nothing and, when that job's spec equals the new
  // one, returns it with *created = false (whatever its state, and without asking `admit`: a
  // retry of an accepted submission gets its job back); a different spec is ALREADY_EXISTS naming
  // the job. Request ids are scoped by principal. The lookup, the comparison and the insert are
  // one transaction. `created` may be null.
  virtual absl::StatusOr<JobRecord> CreateJob(const NewJob& job, AdmitFn admit, bool* created) = 0;
  // Without a principal, always admitting.
  absl::StatusOr<JobRecord> CreateJob(const std::string& request_id, const gan::v1::JobSpec& spec,
                                      int64_t total_steps, bool* created) {
    return CreateJob(
        NewJob{"", request_id, spec, total_steps}, [](int64_t) { return absl::OkStatus(); },
        created);
  }

  virtual absl::StatusOr<JobRecord> GetJob(const std::string& job_id) = 0;

  // One page of jobs, newest first (create_time desc, job_id desc), in `state` (UNSPECIFIED: all).
  // page_size 0 means kDefaultPageSize, larger than kMaxPageSize means kMaxPageSize, negative is
  // INVALID_ARGUMENT. `page_token` is empty for the first page, else a next_page_token from a
  // call with the same `state`; anything else is INVALID_ARGUMENT. Keyset pagination: jobs created
  // between calls never shift a page. *next_page_token is empty after the last page.
  // With a `principal`, only that principal's jobs.
  virtual absl::StatusOr<std::vector<JobRecord>> ListJobs(
      gan::v1::JobState state, const std::optional<std::string>& principal, int page_size,
      const std::string& page_token, std::string* next_page_token) = 0;
  absl::StatusOr<std::vector<JobRecord>> ListJobs(gan::v1::JobState state, int page_size,
                                                  const std::string& page_token,
                                                  std::string* next_page_token) {
    return ListJobs(state, std::nullopt, page_size, page_token, next_page_token);
  }

  // Number of jobs in `state` (UNSPECIFIED: all).
  virtual absl::StatusOr<int64_t> CountJobs(gan::v1::JobState state) = 0;

  // QUEUED or RUNNING -> RUNNING; start_time is set the first time only. FAILED_PRECONDITION if
  // the job already ended.
  virtual absl::Status MarkRunning(const std::string& job_id) = 0;

  // QUEUED or RUNNING -> `final_state` (SUCCEEDED, FAILED or CANCELLED, else INVALID_ARGUMENT),
  // setting end_time and error_message. FAILED_PRECONDITION if the job already ended: the check
  // and the update are one transaction, so of a cancel racing a finish the first to commit wins.
  virtual absl::Status MarkFinished(const std::string& job_id, gan::v1::JobState final_state,
                                    const std::string& error_message) = 0;

  // Records progress (iterations completed) without an event. Allowed in any state: a trainer
  // finishing the step it was in when the job was cancelled still reports it.
  virtual absl::Status SetStep(const std::string& job_id, int64_t step) = 0;

  // Appends `event` to the job's history under `step` (the StepMetrics step; for other events
  // the step they belong to, e.g. the job's current step for `finished`, since ReadMetrics'
  // from_step filter applies to every event) and returns its sequence number. Allowed in any
  // state, so the `finished` event can follow MarkFinished.
  virtual absl::StatusOr<int64_t> AppendMetric(const std::string& job_id, int64_t step,
                                               const gan::v1::MetricEvent& event) = 0;

  // At most `limit` (> 0) of the job's events with sequence > after_sequence and
  // step >= from_step, in sequence order. A reader pages with after_sequence = last sequence seen.
  virtual absl::StatusOr<std::vector<MetricRow>> ReadMetrics(const std::string& job_id,
                                                             int64_t from_step,
                                                             int64_t after_sequence, int limit) = 0;

  // In one transaction: records the checkpoint at `step` (replacing the path of an earlier row at
  // the same step) and sets the job's latest_checkpoint_step and step to `step`.
  virtual absl::Status RecordCheckpoint(const std::string& job_id, int64_t step,
                                        const std::string& path) = 0;

  // The job's checkpoint rows, ascending step.
  virtual absl::StatusOr<std::vector<CheckpointRow>> ListCheckpoints(const std::string& job_id) = 0;

  // Removes one checkpoint row (the caller removes the file); NOT_FOUND if there is none. When it
  // was the newest, latest_checkpoint_step falls back to the newest remaining row (0 if none).
  virtual absl::Status DeleteCheckpointRow(const std::string& job_id, int64_t step) = 0;

  // Restart recovery from the checkpoint at `from_step` (0: from scratch), in one transaction:
  // the checkpoint at step S is taken after S steps completed and step events count from 0, so
  // the history after it is the events with step >= S; deletes those, deletes checkpoint rows with
  // step > S (a newer checkpoint the caller could not load; it removes their files first), appends
  // MetricEvent{resumed_from_step: S} under step S, sets step = S, latest_checkpoint_step = the
  // newest remaining checkpoint row (S when the caller resumes from a recorded one), and state
  // RUNNING (start_time kept). FAILED_PRECONDITION if the job already ended.
  virtual absl::Status MarkResumed(const std::string& job_id, int64_t from_step) = 0;

  // Every job in `state` (UNSPECIFIED: all), oldest first: after a restart, RUNNING jobs resume
  // and QUEUED ones queue again in their original order.
  virtual absl::StatusOr<std::vector<JobRecord>> JobsInState(gan::v1::JobState state) = 0;

  // OK when the backend's own consistency check passes; DATA_LOSS with its report otherwise.
  virtual absl::Status CheckIntegrity() = 0;
};

// NOT_FOUND for a job that does not exist, and for one the caller may not see: the same words, so
// an answer never reveals that another principal's job exists.
absl::Status JobNotFoundError(const std::string& job_id);

// The API view of a record; unset times stay unset in the proto.
gan::v1::Job ToProto(const JobRecord& record);

}  // namespace gan::server

#endif  // GAN_SERVER_JOB_STORE_H_
