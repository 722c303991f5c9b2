#ifndef GAN_SERVER_JOB_STORE_H_
#define GAN_SERVER_JOB_STORE_H_

// The durable record of every job: its spec and state, the metric history StreamMetrics replays,
// and the checkpoints on disk. A call that returned OK has committed durably.
//
// Several gan-server replicas may share one store (PostgreSQL): a replica claims a job and holds
// a lease on it, which it renews; every write a trainer makes carries its Lease and commits only
// while the job's lease is still that one (fencing), so a replica that lost its lease (it paused
// past the lease, or another replica took the job over) changes nothing.
//
// Errors: NOT_FOUND for an unknown job (naming it), FAILED_PRECONDITION for a state change of a
// job that already ended, ABORTED ("lease lost") for a fenced write whose lease is no longer the
// job's, INVALID_ARGUMENT for bad arguments (page tokens, page sizes), ALREADY_EXISTS for a
// request_id reused with another spec, UNAVAILABLE when the database cannot be reached, INTERNAL
// with the database's message for other database failures.

#include <cstdint>
#include <functional>
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
  // The replica that holds (or last held) the job's lease; empty before the first claim.
  std::string replica;
  int64_t lease_epoch = 0;  // incremented by every claim
  // When the lease runs out; InfinitePast when nobody holds it (never claimed, released, ended).
  absl::Time lease_expire_time = absl::InfinitePast();
  bool cancel_requested = false;  // CancelJob asked the lease holder to stop
};

// A replica's hold on one job, from ClaimJob. Fenced writes commit only while the job's replica
// and lease_epoch still equal these. An empty replica is "no lease": the write is not fenced
// (single-process callers and tests).
struct Lease {
  std::string replica;
  int64_t epoch = 0;
};

struct ClaimedJob {
  JobRecord record;  // after the claim
  Lease lease;
  // True when the job was RUNNING (its previous holder died, paused or shut down): the claimant
  // resumes it from its newest checkpoint. False for a QUEUED job, which starts from scratch.
  bool resume = false;
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

// The interface every backend implements (server/sqlite_job_store.h, server/postgres_job_store.h).
// Every method may be called from any thread; each multi-statement change is atomic, so readers
// never see half of it and a failure leaves nothing.
class JobStore {
 public:
  // ListJobs' page size for page_size 0, and the largest page it returns.
  static constexpr int kDefaultPageSize = 20;
  static constexpr int kMaxPageSize = 100;

  // Decides, inside CreateJob's transaction, whether a new job may be inserted (e.g. the queue has
  // room, the principal is within its quota), given the principal's QUEUED + RUNNING jobs and the
  // store's QUEUED jobs; a non-OK status is returned by CreateJob and nothing is inserted.
  using AdmitFn =
      absl::FunctionRef<absl::Status(int64_t principal_active_jobs, int64_t queued_jobs)>;

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
        NewJob{"", request_id, spec, total_steps},
        [](int64_t, int64_t) { return absl::OkStatus(); }, created);
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
  virtual absl::Status MarkRunning(const std::string& job_id, const Lease& lease) = 0;
  absl::Status MarkRunning(const std::string& job_id) { return MarkRunning(job_id, Lease()); }

  // QUEUED or RUNNING -> `final_state` (SUCCEEDED, FAILED or CANCELLED, else INVALID_ARGUMENT),
  // setting end_time and error_message. FAILED_PRECONDITION if the job already ended: the check
  // and the update are one transaction, so of a cancel racing a finish the first to commit wins.
  // The lease ends with the job (lease_expire_time unset; replica kept).
  virtual absl::Status MarkFinished(const std::string& job_id, gan::v1::JobState final_state,
                                    const std::string& error_message, const Lease& lease) = 0;
  absl::Status MarkFinished(const std::string& job_id, gan::v1::JobState final_state,
                            const std::string& error_message) {
    return MarkFinished(job_id, final_state, error_message, Lease());
  }

  // Durability: SetStep and AppendMetric of a step's metrics (MetricEvent.step) are committed
  // without waiting for the disk (SQLite synchronous=NORMAL in WAL mode, PostgreSQL
  // synchronous_commit off): a crash or kill -9 of the server loses none of them, a power loss or
  // database crash may lose the last ones, which a resume drops anyway (it restarts from the
  // newest checkpoint, before them). Every other write waits for the disk, and so makes every
  // earlier commit durable with it: the store is always at a consistent prefix of its writes.

  // Records progress (iterations completed) without an event. Allowed in any state: a trainer
  // finishing the step it was in when the job was cancelled still reports it.
  virtual absl::Status SetStep(const std::string& job_id, int64_t step, const Lease& lease) = 0;
  absl::Status SetStep(const std::string& job_id, int64_t step) {
    return SetStep(job_id, step, Lease());
  }

  // Appends `event` to the job's history under `step` (the StepMetrics step; for other events
  // the step they belong to, e.g. the job's current step for `finished`, since ReadMetrics'
  // from_step filter applies to every event) and returns its sequence number. Allowed in any
  // state, so the `finished` event can follow MarkFinished.
  // Within one job, sequence order is commit order as long as one replica (the lease holder)
  // appends at a time.
  virtual absl::StatusOr<int64_t> AppendMetric(const std::string& job_id, int64_t step,
                                               const gan::v1::MetricEvent& event,
                                               const Lease& lease) = 0;
  absl::StatusOr<int64_t> AppendMetric(const std::string& job_id, int64_t step,
                                       const gan::v1::MetricEvent& event) {
    return AppendMetric(job_id, step, event, Lease());
  }

  // At most `limit` (> 0) of the job's events with sequence > after_sequence and
  // step >= from_step, in sequence order. A reader pages with after_sequence = last sequence seen.
  virtual absl::StatusOr<std::vector<MetricRow>> ReadMetrics(const std::string& job_id,
                                                             int64_t from_step,
                                                             int64_t after_sequence, int limit) = 0;

  // In one transaction: records the checkpoint at `step` (replacing the path of an earlier row at
  // the same step) and sets the job's latest_checkpoint_step and step to `step`.
  virtual absl::Status RecordCheckpoint(const std::string& job_id, int64_t step,
                                        const std::string& path, const Lease& lease) = 0;
  absl::Status RecordCheckpoint(const std::string& job_id, int64_t step, const std::string& path) {
    return RecordCheckpoint(job_id, step, path, Lease());
  }

  // The job's checkpoint rows, ascending step.
  virtual absl::StatusOr<std::vector<CheckpointRow>> ListCheckpoints(const std::string& job_id) = 0;

  // Removes one checkpoint row (the caller removes the file); NOT_FOUND if there is none. When it
  // was the newest, latest_checkpoint_step falls back to the newest remaining row (0 if none).
  virtual absl::Status DeleteCheckpointRow(const std::string& job_id, int64_t step,
                                           const Lease& lease) = 0;
  absl::Status DeleteCheckpointRow(const std::string& job_id, int64_t step) {
    return DeleteCheckpointRow(job_id, step, Lease());
  }

  // Restart recovery from the checkpoint at `from_step` (0: from scratch), in one transaction:
  // the checkpoint at step S is taken after S steps completed and step events count from 0, so
  // the history after it is the events with step >= S; deletes those, deletes checkpoint rows with
  // step > S (newer checkpoints the caller could not load; it removes or sets aside their files
  // first), appends MetricEvent{resumed_from_step: S} under step S, sets step = S,
  // latest_checkpoint_step = the newest remaining checkpoint row (S when the caller resumes from a
  // recorded one), and state RUNNING (start_time kept). FAILED_PRECONDITION if the job already
  // ended.
  virtual absl::Status MarkResumed(const std::string& job_id, int64_t from_step,
                                   const Lease& lease) = 0;
  absl::Status MarkResumed(const std::string& job_id, int64_t from_step) {
    return MarkResumed(job_id, from_step, Lease());
  }

  // Every job in `state` (UNSPECIFIED: all), oldest first: after a restart, RUNNING jobs resume
  // and QUEUED ones queue again in their original order.
  virtual absl::StatusOr<std::vector<JobRecord>> JobsInState(gan::v1::JobState state) = 0;

  // OK when the backend's own consistency check passes; DATA_LOSS with its report otherwise.
  virtual absl::Status CheckIntegrity() = 0;

  // --- Leases (server/job_manager.h drives them) ---

  // In one transaction, takes the oldest job that is QUEUED or RUNNING and whose lease is unset
  // or ran out, skipping jobs another replica is claiming at the same moment: sets its replica,
  // increments lease_epoch, sets lease_expire_time = now + lease_duration. nullopt when there is
  // none.
  virtual absl::StatusOr<std::optional<ClaimedJob>> ClaimJob(const std::string& replica,
                                                             absl::Duration lease_duration) = 0;

  // Extends `lease` to now + lease_duration and returns the job's record (its cancel_requested
  // tells the holder to stop). ABORTED "lease lost" when the job's lease is no longer `lease`
  // (even if the job ended meanwhile).
  virtual absl::StatusOr<JobRecord> RenewLease(const std::string& job_id, const Lease& lease,
                                               absl::Duration lease_duration) = 0;

  // Gives the lease up (lease_expire_time unset), so another replica may claim the job at once:
  // a replica shutting down releases the jobs it paused. ABORTED when it was not held.
  virtual absl::Status ReleaseLease(const std::string& job_id, const Lease& lease) = 0;

  // Unsets every lease: a store only one process uses (SQLite) calls this at start, since
  // whatever held a lease before is gone. Never on a shared store.
  virtual absl::Status ReleaseAllLeases() = 0;

  // CancelJob, wherever the job runs: a QUEUED job nobody holds becomes CANCELLED at once (as
  // MarkFinished); otherwise cancel_requested is set for the lease holder. Returns the record
  // after the change; FAILED_PRECONDITION if the job already ended.
  virtual absl::StatusOr<JobRecord> RequestCancel(const std::string& job_id) = 0;

  // True when several processes may use the store at once (PostgreSQL): leases then matter, and
  // events appended by other processes arrive through WatchEvents or polling.
  virtual bool shared() const = 0;

  // Calls `on_event(job_id)` (on a thread of the store's) when another process may have appended
  // events to that job, and `on_event("")` when new jobs may be waiting to be claimed or
  // notifications were lost (reconnected): listeners then re-read everything. A backend without
  // notifications never calls it. One listener at a time: a new call replaces it, and
  // WatchEvents(nullptr) returns once no call of the old one is in progress.
  virtual void WatchEvents(std::function<void(const std::string& job_id)> on_event) {
    (void)on_event;
  }
};

// NOT_FOUND for a job that does not exist, and for one the caller may not see: the same words, so
// an answer never reveals that another principal's job exists.
absl::Status JobNotFoundError(const std::string& job_id);

// The API view of a record; unset times stay unset in the proto.
gan::v1::Job ToProto(const JobRecord& record);

// --- What every backend shares (one home for each rule) ---

// ABORTED "lease lost" for a fenced write or renewal of `job_id` whose lease is not `lease`.
absl::Status LeaseLostError(const std::string& job_id, const Lease& lease);

// Equal messages give equal bytes (map order is fixed), so stored specs compare bytewise.
std::string SerializeDeterministically(const google::protobuf::MessageLite& message);

// "job-" + 16 random lowercase hex digits.
std::string NewJobId();

// ListJobs page tokens: web-safe base64 of "1:<state>:<create_time_us>:<job_id>", the position of
// the last job returned and the filter it was returned under.
struct PageCursor {
  int64_t create_time_us = 0;
  std::string job_id;
};
std::string EncodePageToken(gan::v1::JobState state, const JobRecord& last);
// INVALID_ARGUMENT naming page_token for a token that is not one, or was issued for another
// state filter.
absl::StatusOr<PageCursor> DecodePageToken(const std::string& token, gan::v1::JobState state);

// ListJobs' arguments as every backend checks them (the rules are JobStore::ListJobs'): the rows a
// page holds and where it starts. A backend queries limit + 1 rows; the extra one says whether
// another page follows.
struct JobPage {
  int64_t limit = 0;
  bool has_cursor = false;  // false: the first page
  PageCursor cursor;
};
absl::StatusOr<JobPage> ParseJobPage(gan::v1::JobState state, int page_size,
                                     const std::string& page_token);
// Cuts the rows a backend fetched for `page` to the page and sets *next_page_token (may be null)
// to the token of the next page, or empty after the last.
void EndJobPage(gan::v1::JobState state, const JobPage& page, std::vector<JobRecord>* jobs,
                std::string* next_page_token);
// ReadMetrics' `limit`: INVALID_ARGUMENT unless positive.
absl::Status CheckReadMetricsLimit(int limit);

}  // namespace gan::server

#endif  // GAN_SERVER_JOB_STORE_H_
