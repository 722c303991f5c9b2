#ifndef GAN_SERVER_POSTGRES_JOB_STORE_H_
#define GAN_SERVER_POSTGRES_JOB_STORE_H_

// The shared job store: PostgreSQL through libpq, for several gan-server replicas on one database.
// The server creates and migrates the schema itself (table schema_version; replicas starting at
// once serialize on an advisory lock). One connection behind a mutex serves the calls, one at a
// time; each multi-statement change is one transaction. Claims take the job's row with
// SELECT ... FOR UPDATE SKIP LOCKED, fenced writes take it FOR SHARE, so a takeover and a write of
// the previous holder never interleave. A broken connection is re-opened on the next call; a call
// that finds the server unreachable is UNAVAILABLE ("PostgreSQL job store unavailable: ...").
//
// Appending an event or creating a job sends a NOTIFY; WatchEvents listens on a second
// connection (reconnecting with backoff) and passes them on.

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/job_store.h"
#include "server/postgres.h"

namespace gan::server {

class PostgresJobStore final : public JobStore {
 public:
  // Connects to `url` (a libpq URI or connection string; it may hold a password, so it is never
  // logged or put in a status) and creates or migrates the schema. UNAVAILABLE when the server
  // cannot be reached within `connect_timeout`; FAILED_PRECONDITION for a newer schema.
  static absl::StatusOr<std::unique_ptr<PostgresJobStore>> Open(const std::string& url,
                                                                absl::Duration connect_timeout);

  ~PostgresJobStore() override;
  PostgresJobStore(const PostgresJobStore&) = delete;
  PostgresJobStore& operator=(const PostgresJobStore&) = delete;

  // The schema version this server writes.
  static constexpr int64_t kSchemaVersion = 1;

  using JobStore::CreateJob;
  absl::StatusOr<JobRecord> CreateJob(const NewJob& job, AdmitFn admit, bool* created) override;
  absl::StatusOr<JobRecord> GetJob(const std::string& job_id) override;
  using JobStore::ListJobs;
  absl::StatusOr<std::vector<JobRecord>> ListJobs(gan::v1::JobState state,
                                                  const std::optional<std::string>& principal,
                                                  int page_size, const std::string& page_token,
                                                  std::string* next_page_token) override;
  absl::StatusOr<int64_t> CountJobs(gan::v1::JobState state) override;
  using JobStore::MarkRunning;
  absl::Status MarkRunning(const std::string& job_id, const Lease& lease) override;
  using JobStore::MarkFinished;
  absl::Status MarkFinished(const std::string& job_id, gan::v1::JobState final_state,
                            const std::string& error_message, const Lease& lease) override;
  using JobStore::SetStep;
  absl::Status SetStep(const std::string& job_id, int64_t step, const Lease& lease) override;
  using JobStore::AppendMetric;
  absl::StatusOr<int64_t> AppendMetric(const std::string& job_id, int64_t step,
                                       const gan::v1::MetricEvent& event,
                                       const Lease& lease) override;
  absl::StatusOr<std::vector<MetricRow>> ReadMetrics(const std::string& job_id, int64_t from_step,
                                                     int64_t after_sequence, int limit) override;
  using JobStore::RecordCheckpoint;
  absl::Status RecordCheckpoint(const std::string& job_id, int64_t step, const std::string& path,
                                const Lease& lease) override;
  absl::StatusOr<std::vector<CheckpointRow>> ListCheckpoints(const std::string& job_id) override;
  using JobStore::DeleteCheckpointRow;
  absl::Status DeleteCheckpointRow(const std::string& job_id, int64_t step,
                                   const Lease& lease) override;
  using JobStore::MarkResumed;
  absl::Status MarkResumed(const std::string& job_id, int64_t from_step,
                           const Lease& lease) override;
  absl::StatusOr<std::vector<JobRecord>> JobsInState(gan::v1::JobState state) override;
  // Runs a query over every table (PostgreSQL checks its own pages); DATA_LOSS for rows whose
  // job is missing.
  absl::Status CheckIntegrity() override;
  absl::StatusOr<std::optional<ClaimedJob>> ClaimJob(const std::string& replica,
                                                     absl::Duration lease_duration) override;
  absl::StatusOr<JobRecord> RenewLease(const std::string& job_id, const Lease& lease,
                                       absl::Duration lease_duration) override;
  absl::Status ReleaseLease(const std::string& job_id, const Lease& lease) override;
  absl::Status ReleaseAllLeases() override;
  absl::StatusOr<JobRecord> RequestCancel(const std::string& job_id) override;
  bool shared() const override { return true; }
  void WatchEvents(std::function<void(const std::string& job_id)> on_event) override;

 private:
  PostgresJobStore(std::string url, absl::Duration connect_timeout,
                   std::unique_ptr<postgres::Connection> conn);

  // Re-opens a broken connection; UNAVAILABLE when that fails.
  absl::Status EnsureConnected() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Runs `body` between BEGIN and COMMIT (READ COMMITTED); rolls back when `body` or COMMIT
  // fails. A connection found broken at BEGIN is re-opened and BEGIN tried once more.
  absl::Status InTransaction(absl::FunctionRef<absl::Status(postgres::Connection&)> body)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A single statement outside a transaction, with the same reconnect-once rule.
  absl::StatusOr<postgres::Result> Query(absl::string_view sql, const postgres::Params& params)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  void ListenLoop();

  const std::string url_;  // secret: never logged
  const absl::Duration connect_timeout_;

  absl::Mutex mu_;
  std::unique_ptr<postgres::Connection> conn_ ABSL_GUARDED_BY(mu_);

  // Calls on_event_ (if set) under listener_mu_, so WatchEvents(nullptr) returns only once no
  // call is in progress.
  void Dispatch(const std::string& job_id);

  absl::Mutex listener_mu_;
  std::function<void(const std::string&)> on_event_ ABSL_GUARDED_BY(listener_mu_);
  std::atomic<bool> stopping_{false};
  int wake_fds_[2] = {-1, -1};  // a pipe that ends ListenLoop's poll
  std::thread listener_;
};

}  // namespace gan::server

#endif  // GAN_SERVER_POSTGRES_JOB_STORE_H_
