#ifndef GAN_SERVER_SQLITE_JOB_STORE_H_
#define GAN_SERVER_SQLITE_JOB_STORE_H_

// The embedded job store: one SQLite file in WAL mode with synchronous=FULL, so a call that
// returned OK has committed, and the commit survives kill -9 and power loss. The store holds one
// connection behind a mutex, so calls run one at a time; each multi-statement change is one
// transaction (BEGIN IMMEDIATE ... COMMIT).

#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "server/job_store.h"
#include "server/sqlite.h"

namespace gan::server {

class SqliteJobStore final : public JobStore {
 public:
  // Opens (creating if needed) the database file at `path` and creates or checks the schema.
  // The directory must exist. FAILED_PRECONDITION if the file was written by a newer schema.
  static absl::StatusOr<std::unique_ptr<SqliteJobStore>> Open(const std::string& path);

  ~SqliteJobStore() override;
  SqliteJobStore(const SqliteJobStore&) = delete;
  SqliteJobStore& operator=(const SqliteJobStore&) = delete;

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
  // SQLite's `PRAGMA integrity_check`.
  absl::Status CheckIntegrity() override;
  absl::StatusOr<std::optional<ClaimedJob>> ClaimJob(const std::string& replica,
                                                     absl::Duration lease_duration) override;
  absl::StatusOr<JobRecord> RenewLease(const std::string& job_id, const Lease& lease,
                                       absl::Duration lease_duration) override;
  absl::Status ReleaseLease(const std::string& job_id, const Lease& lease) override;
  absl::Status ReleaseAllLeases() override;
  absl::StatusOr<JobRecord> RequestCancel(const std::string& job_id) override;
  // One process per file: leases are trivially held by it.
  bool shared() const override { return false; }

 private:
  explicit SqliteJobStore(std::unique_ptr<sqlite::Database> db);

  // Runs `body` between BEGIN IMMEDIATE and COMMIT; rolls back when `body` or COMMIT fails.
  absl::Status InTransaction(absl::FunctionRef<absl::Status()> body)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Runs `body` (its commits) with synchronous=NORMAL: written to the WAL, not fsynced; the next
  // FULL commit fsyncs them with it. For a training step's writes (see JobStore).
  absl::Status WithoutSync(absl::FunctionRef<absl::Status()> body)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  absl::Mutex mu_;
  std::unique_ptr<sqlite::Database> db_ ABSL_GUARDED_BY(mu_);
};

}  // namespace gan::server

#endif  // GAN_SERVER_SQLITE_JOB_STORE_H_
