#include "server/sqlite_job_store.h"

#include <algorithm>
#include <cstdint>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "google/protobuf/util/time_util.h"
#include "io/status_macros.h"
#include "server/job_state.h"

namespace gan::server {
namespace {

using sqlite::Database;
using sqlite::Statement;
using sqlite::Transaction;

constexpr int64_t kSchemaVersion = 3;
constexpr absl::Duration kBusyTimeout = absl::Seconds(10);

// The jobs table of version 2: version 1's plus the submitting principal, with request ids unique
// per principal. Times are microseconds since the Unix epoch, NULL when unset.
#define GAN_JOBS_TABLE_V2(name)                            \
  "CREATE TABLE " name                                     \
  " (\n"                                                   \
  "  job_id TEXT PRIMARY KEY NOT NULL,\n"                  \
  "  principal TEXT NOT NULL DEFAULT '',\n"                \
  "  request_id TEXT,\n"                                   \
  "  spec BLOB NOT NULL,\n"                                \
  "  state INTEGER NOT NULL,\n"                            \
  "  create_time_us INTEGER NOT NULL,\n"                   \
  "  start_time_us INTEGER,\n"                             \
  "  end_time_us INTEGER,\n"                               \
  "  step INTEGER NOT NULL DEFAULT 0,\n"                   \
  "  total_steps INTEGER NOT NULL DEFAULT 0,\n"            \
  "  latest_checkpoint_step INTEGER NOT NULL DEFAULT 0,\n" \
  "  error_message TEXT NOT NULL DEFAULT '',\n"            \
  "  UNIQUE (principal, request_id)\n"                     \
  ");\n"

// Version 2 from scratch. metric_events uses AUTOINCREMENT so a sequence number is never reused
// after MarkResumed deletes the newest events: a reader resuming after sequence N must not miss
// events appended later.
constexpr char kSchemaV2[] = GAN_JOBS_TABLE_V2("jobs") R"sql(
CREATE INDEX jobs_by_create_time ON jobs (create_time_us, job_id);
CREATE INDEX jobs_by_principal ON jobs (principal, state);
CREATE TABLE metric_events (
  sequence INTEGER PRIMARY KEY AUTOINCREMENT,
  job_id TEXT NOT NULL REFERENCES jobs (job_id) ON DELETE CASCADE,
  step INTEGER NOT NULL,
  event BLOB NOT NULL
);
CREATE INDEX metric_events_by_job ON metric_events (job_id, sequence);
CREATE TABLE checkpoints (
  job_id TEXT NOT NULL REFERENCES jobs (job_id) ON DELETE CASCADE,
  step INTEGER NOT NULL,
  path TEXT NOT NULL,
  PRIMARY KEY (job_id, step)
) WITHOUT ROWID;
PRAGMA user_version = 2;
)sql";

// Version 1 -> 2: version 1's jobs had `request_id TEXT UNIQUE` and no principal; SQLite cannot
// drop a constraint, so the table is rebuilt (with foreign keys off, so the rebuild cascades
// nothing). Existing jobs belong to the anonymous principal ''.
constexpr char kMigrateV1ToV2[] = GAN_JOBS_TABLE_V2("jobs_v2") R"sql(
INSERT INTO jobs_v2 (job_id, principal, request_id, spec, state, create_time_us, start_time_us,
                     end_time_us, step, total_steps, latest_checkpoint_step, error_message)
  SELECT job_id, '', request_id, spec, state, create_time_us, start_time_us, end_time_us, step,
         total_steps, latest_checkpoint_step, error_message FROM jobs;
DROP TABLE jobs;
ALTER TABLE jobs_v2 RENAME TO jobs;
CREATE INDEX jobs_by_create_time ON jobs (create_time_us, job_id);
CREATE INDEX jobs_by_principal ON jobs (principal, state);
PRAGMA user_version = 2;
)sql";

// Version 2 -> 3: leases (the replica holding the job, the claim's epoch, when the lease runs
// out) and cancel requests for the lease holder.
constexpr char kMigrateV2ToV3[] = R"sql(
ALTER TABLE jobs ADD COLUMN replica TEXT NOT NULL DEFAULT '';
ALTER TABLE jobs ADD COLUMN lease_epoch INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN lease_expire_us INTEGER;
ALTER TABLE jobs ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0;
PRAGMA user_version = 3;
)sql";

// The columns ReadJob expects, in order.
#define GAN_JOB_COLUMNS                                                                   \
  "job_id, request_id, spec, state, create_time_us, start_time_us, end_time_us, step, "   \
  "total_steps, latest_checkpoint_step, error_message, principal, replica, lease_epoch, " \
  "lease_expire_us, cancel_requested"

absl::StatusOr<JobRecord> ReadJob(const Statement& row) {
  JobRecord record;
  record.job_id = row.Text(0);
  record.request_id = row.Text(1);
  if (!record.spec.ParseFromString(row.Blob(2))) {
    return absl::InternalError(
        absl::StrCat("the stored spec of job \"", record.job_id, "\" cannot be parsed"));
  }
  const int64_t state = row.Int64(3);
  if (!gan::v1::JobState_IsValid(static_cast<int>(state))) {
    return absl::InternalError(
        absl::StrCat("job \"", record.job_id, "\" has an unknown stored state ", state));
  }
  record.state = static_cast<gan::v1::JobState>(state);
  record.create_time = row.Time(4);
  record.start_time = row.Time(5);
  record.end_time = row.Time(6);
  record.step = row.Int64(7);
  record.total_steps = row.Int64(8);
  record.latest_checkpoint_step = row.Int64(9);
  record.error_message = row.Text(10);
  record.principal = row.Text(11);
  record.replica = row.Text(12);
  record.lease_epoch = row.Int64(13);
  record.lease_expire_time = row.Time(14);
  record.cancel_requested = row.Int64(15) != 0;
  return record;
}

// Runs a statement selecting GAN_JOB_COLUMNS and reads every row.
absl::StatusOr<std::vector<JobRecord>> ReadJobs(Statement& statement) {
  std::vector<JobRecord> records;
  while (true) {
    GAN_ASSIGN_OR_RETURN(bool row, statement.Step());
    if (!row) return records;
    GAN_ASSIGN_OR_RETURN(JobRecord record, ReadJob(statement));
    records.push_back(std::move(record));
  }
}

absl::StatusOr<JobRecord> LoadJob(Database& db, const std::string& job_id) {
  GAN_ASSIGN_OR_RETURN(Statement select,
                       db.Prepare("SELECT " GAN_JOB_COLUMNS " FROM jobs WHERE job_id = ?"));
  select.BindText(job_id);
  GAN_ASSIGN_OR_RETURN(bool row, select.Step());
  if (!row) return JobNotFoundError(job_id);
  return ReadJob(select);
}

// The job's state; NOT_FOUND for an unknown job.
absl::StatusOr<gan::v1::JobState> LoadState(Database& db, const std::string& job_id) {
  GAN_ASSIGN_OR_RETURN(Statement select, db.Prepare("SELECT state FROM jobs WHERE job_id = ?"));
  select.BindText(job_id);
  GAN_ASSIGN_OR_RETURN(bool row, select.Step());
  if (!row) return JobNotFoundError(job_id);
  return static_cast<gan::v1::JobState>(select.Int64(0));
}

absl::Status RequireJob(Database& db, const std::string& job_id) {
  return LoadState(db, job_id).status();
}

// NOT_FOUND for an unknown job, FAILED_PRECONDITION for one that ended; `action` names the
// refused change ("start", "finish", "resume").
absl::Status RequireNotEnded(Database& db, const std::string& job_id, absl::string_view action) {
  GAN_ASSIGN_OR_RETURN(gan::v1::JobState state, LoadState(db, job_id));
  if (IsTerminal(state)) {
    return absl::FailedPreconditionError(absl::StrCat("cannot ", action, " job \"", job_id,
                                                      "\": it already ended (",
                                                      gan::v1::JobState_Name(state), ")"));
  }
  return absl::OkStatus();
}

// NOT_FOUND for an unknown job; with a lease (non-empty replica), ABORTED unless the job's lease
// is still that one. Inside a BEGIN IMMEDIATE transaction, so nothing can claim the job between
// this check and the caller's writes.
absl::Status RequireLease(Database& db, const std::string& job_id, const Lease& lease) {
  if (lease.replica.empty()) return RequireJob(db, job_id);
  GAN_ASSIGN_OR_RETURN(Statement select,
                       db.Prepare("SELECT replica, lease_epoch FROM jobs WHERE job_id = ?"));
  select.BindText(job_id);
  GAN_ASSIGN_OR_RETURN(bool row, select.Step());
  if (!row) return JobNotFoundError(job_id);
  if (select.Text(0) != lease.replica || select.Int64(1) != lease.epoch) {
    return LeaseLostError(job_id, lease);
  }
  return absl::OkStatus();
}

absl::StatusOr<int64_t> InsertMetric(Database& db, const std::string& job_id, int64_t step,
                                     const gan::v1::MetricEvent& event) {
  GAN_ASSIGN_OR_RETURN(
      Statement insert,
      db.Prepare("INSERT INTO metric_events (job_id, step, event) VALUES (?, ?, ?)"));
  insert.BindText(job_id).Bind(step).BindBlob(SerializeDeterministically(event));
  GAN_RETURN_IF_ERROR(insert.Run());
  return db.LastInsertRowid();
}

}  // namespace

absl::StatusOr<std::unique_ptr<SqliteJobStore>> SqliteJobStore::Open(const std::string& path) {
  GAN_ASSIGN_OR_RETURN(std::unique_ptr<Database> db, Database::Open(path));
  db->SetBusyTimeout(kBusyTimeout);

  // WAL: readers never block the writer. synchronous=FULL fsyncs the WAL on every commit, so a
  // committed transaction survives power loss, not only a crash of this process; a step's
  // progress and metrics are the exception (WithoutSync, see JobStore).
  {
    GAN_ASSIGN_OR_RETURN(Statement journal, db->Prepare("PRAGMA journal_mode = WAL"));
    GAN_ASSIGN_OR_RETURN(bool row, journal.Step());
    if (!row || journal.Text(0) != "wal") {
      return absl::FailedPreconditionError(absl::StrCat("cannot put the job database ", path,
                                                        " in WAL mode (journal mode is \"",
                                                        row ? journal.Text(0) : "", "\")"));
    }
  }
  // Foreign keys go on after the schema is created or migrated (a migration rebuilds tables).
  GAN_RETURN_IF_ERROR(db->Exec("PRAGMA synchronous = FULL; PRAGMA foreign_keys = OFF;"));

  std::unique_ptr<SqliteJobStore> store(new SqliteJobStore(std::move(db)));
  {
    absl::MutexLock lock(&store->mu_);
    Database& conn = *store->db_;
    // The version check and the schema creation are one write transaction, so two processes
    // opening a new file at once cannot both create it. (Migrations from older versions go here.)
    GAN_RETURN_IF_ERROR(store->InTransaction([&]() -> absl::Status {
      int64_t user_version = 0;
      {  // finalized before any schema change (DROP TABLE refuses while a statement is open)
        GAN_ASSIGN_OR_RETURN(Statement version, conn.Prepare("PRAGMA user_version"));
        GAN_ASSIGN_OR_RETURN(bool row, version.Step());
        user_version = row ? version.Int64(0) : 0;
      }
      if (user_version == 0) {
        GAN_RETURN_IF_ERROR(conn.Exec(kSchemaV2));
        return conn.Exec(kMigrateV2ToV3);
      }
      if (user_version > kSchemaVersion) {
        return absl::FailedPreconditionError(
            absl::StrCat("the job database ", path, " has schema version ", user_version,
                         ", newer than this server's ", kSchemaVersion, "; run a newer server"));
      }
      if (user_version == 1) {
        GAN_RETURN_IF_ERROR(conn.Exec(kMigrateV1ToV2));
        GAN_ASSIGN_OR_RETURN(Statement check, conn.Prepare("PRAGMA foreign_key_check"));
        GAN_ASSIGN_OR_RETURN(bool violation, check.Step());
        if (violation) {
          return absl::DataLossError(absl::StrCat("the job database ", path,
                                                  " fails its foreign-key check after migration"));
        }
      }
      if (user_version <= 2) GAN_RETURN_IF_ERROR(conn.Exec(kMigrateV2ToV3));
      return absl::OkStatus();
    }));
    GAN_RETURN_IF_ERROR(conn.Exec("PRAGMA foreign_keys = ON;"));
  }
  return store;
}

SqliteJobStore::SqliteJobStore(std::unique_ptr<Database> db) : db_(std::move(db)) {}

SqliteJobStore::~SqliteJobStore() = default;

absl::Status SqliteJobStore::WithoutSync(absl::FunctionRef<absl::Status()> body) {
  GAN_RETURN_IF_ERROR(db_->Exec("PRAGMA synchronous = NORMAL;"));
  absl::Status status = body();
  // Every other write must stay durable: a failure to restore FULL is this call's failure too.
  absl::Status restored = db_->Exec("PRAGMA synchronous = FULL;");
  return status.ok() ? restored : status;
}

absl::Status SqliteJobStore::InTransaction(absl::FunctionRef<absl::Status()> body) {
  Transaction transaction(*db_);
  GAN_RETURN_IF_ERROR(transaction.status());
  GAN_RETURN_IF_ERROR(body());
  return transaction.Commit();
}

absl::StatusOr<JobRecord> SqliteJobStore::CreateJob(const NewJob& job, AdmitFn admit,
                                                    bool* created) {
  const std::string& request_id = job.request_id;
  const gan::v1::JobSpec& spec = job.spec;
  absl::MutexLock lock(&mu_);
  Database& db = *db_;
  JobRecord record;
  bool inserted = false;
  GAN_RETURN_IF_ERROR(InTransaction([&]() -> absl::Status {
    if (!request_id.empty()) {
      GAN_ASSIGN_OR_RETURN(Statement select,
                           db.Prepare("SELECT " GAN_JOB_COLUMNS
                                      " FROM jobs WHERE principal = ? AND request_id = ?"));
      select.BindText(job.principal).BindText(request_id);
      GAN_ASSIGN_OR_RETURN(bool row, select.Step());
      if (row) {
        GAN_ASSIGN_OR_RETURN(record, ReadJob(select));
        if (SerializeDeterministically(record.spec) != SerializeDeterministically(spec)) {
          return absl::AlreadyExistsError(absl::StrCat("request_id: '", request_id,
                                                       "' was used for job ", record.job_id,
                                                       " with a different spec"));
        }
        return absl::OkStatus();
      }
    }
    GAN_ASSIGN_OR_RETURN(Statement active,
                         db.Prepare("SELECT COUNT(*) FROM jobs WHERE principal = ? AND state IN "
                                    "(?, ?)"));
    active.BindText(job.principal).Bind(gan::v1::JOB_STATE_QUEUED).Bind(gan::v1::JOB_STATE_RUNNING);
    GAN_ASSIGN_OR_RETURN(bool counted, active.Step());
    const int64_t principal_active = counted ? active.Int64(0) : 0;
    GAN_ASSIGN_OR_RETURN(Statement queued, db.Prepare("SELECT COUNT(*) FROM jobs WHERE state = ?"));
    queued.Bind(gan::v1::JOB_STATE_QUEUED);
    GAN_ASSIGN_OR_RETURN(bool queued_counted, queued.Step());
    GAN_RETURN_IF_ERROR(admit(principal_active, queued_counted ? queued.Int64(0) : 0));
    // create_time strictly increases, even if the clock steps back or two jobs share a
    // microsecond, so newest-first is creation order.
    GAN_ASSIGN_OR_RETURN(Statement newest,
                         db.Prepare("SELECT COALESCE(MAX(create_time_us), 0) FROM jobs"));
    GAN_ASSIGN_OR_RETURN(bool has_row, newest.Step());
    const int64_t newest_micros = has_row ? newest.Int64(0) : 0;
    const int64_t create_micros = std::max(absl::ToUnixMicros(absl::Now()), newest_micros + 1);

    record.job_id = NewJobId();
    while (RequireJob(db, record.job_id).ok()) record.job_id = NewJobId();  // 2^-64 odds
    record.principal = job.principal;
    record.request_id = request_id;
    record.spec = spec;
    record.state = gan::v1::JOB_STATE_QUEUED;
    record.create_time = absl::FromUnixMicros(create_micros);
    record.total_steps = job.total_steps;
    GAN_ASSIGN_OR_RETURN(
        Statement insert,
        db.Prepare("INSERT INTO jobs (job_id, principal, request_id, spec, state, create_time_us, "
                   "total_steps) VALUES (?, ?, ?, ?, ?, ?, ?)"));
    insert.BindText(record.job_id)
        .BindText(job.principal)
        .BindTextOrNull(request_id)
        .BindBlob(SerializeDeterministically(spec))
        .Bind(record.state)
        .Bind(create_micros)
        .Bind(job.total_steps);
    GAN_RETURN_IF_ERROR(insert.Run());
    inserted = true;
    return absl::OkStatus();
  }));
  if (created != nullptr) *created = inserted;
  return record;
}

absl::StatusOr<JobRecord> SqliteJobStore::GetJob(const std::string& job_id) {
  absl::MutexLock lock(&mu_);
  return LoadJob(*db_, job_id);
}

absl::StatusOr<std::vector<JobRecord>> SqliteJobStore::ListJobs(
    gan::v1::JobState state, const std::optional<std::string>& principal, int page_size,
    const std::string& page_token, std::string* next_page_token) {
  GAN_ASSIGN_OR_RETURN(const JobPage page, ParseJobPage(state, page_size, page_token));

  absl::MutexLock lock(&mu_);
  // ?1 state filter (0: all); ?2 whether a cursor is set; (?3, ?4) the last job already returned;
  // ?6 whether to filter by the principal ?7.
  GAN_ASSIGN_OR_RETURN(Statement select,
                       db_->Prepare("SELECT " GAN_JOB_COLUMNS " FROM jobs"
                                    " WHERE (?1 = 0 OR state = ?1)"
                                    " AND (?2 = 0 OR (create_time_us, job_id) < (?3, ?4))"
                                    " AND (?6 = 0 OR principal = ?7)"
                                    " ORDER BY create_time_us DESC, job_id DESC LIMIT ?5"));
  select.Bind(state)
      .Bind(page.has_cursor ? 1 : 0)
      .Bind(page.cursor.create_time_us)
      .BindText(page.cursor.job_id)
      .Bind(page.limit + 1)  // one more than the page tells whether another page follows
      .Bind(principal.has_value() ? 1 : 0)
      .BindText(principal.value_or(""));
  GAN_ASSIGN_OR_RETURN(std::vector<JobRecord> jobs, ReadJobs(select));
  EndJobPage(state, page, &jobs, next_page_token);
  return jobs;
}

absl::StatusOr<int64_t> SqliteJobStore::CountJobs(gan::v1::JobState state) {
  absl::MutexLock lock(&mu_);
  GAN_ASSIGN_OR_RETURN(Statement select,
                       db_->Prepare("SELECT COUNT(*) FROM jobs WHERE (?1 = 0 OR state = ?1)"));
  select.Bind(state);
  GAN_ASSIGN_OR_RETURN(bool row, select.Step());
  if (!row) return absl::InternalError("SQLite: COUNT(*) returned no row");
  return select.Int64(0);
}

absl::Status SqliteJobStore::MarkRunning(const std::string& job_id, const Lease& lease) {
  absl::MutexLock lock(&mu_);
  Database& db = *db_;
  return InTransaction([&]() -> absl::Status {
    GAN_RETURN_IF_ERROR(RequireLease(db, job_id, lease));
    GAN_RETURN_IF_ERROR(RequireNotEnded(db, job_id, "start"));
    GAN_ASSIGN_OR_RETURN(Statement update,
                         db.Prepare("UPDATE jobs SET state = ?, start_time_us = "
                                    "COALESCE(start_time_us, ?) WHERE job_id = ?"));
    update.Bind(gan::v1::JOB_STATE_RUNNING).BindTime(absl::Now()).BindText(job_id);
    return update.Run();
  });
}

absl::Status SqliteJobStore::MarkFinished(const std::string& job_id, gan::v1::JobState final_state,
                                          const std::string& error_message, const Lease& lease) {
  if (!IsTerminal(final_state)) {
    return absl::InvalidArgumentError(
        absl::StrCat("a job cannot finish in state ", gan::v1::JobState_Name(final_state)));
  }
  absl::MutexLock lock(&mu_);
  Database& db = *db_;
  return InTransaction([&]() -> absl::Status {
    GAN_RETURN_IF_ERROR(RequireLease(db, job_id, lease));
    GAN_RETURN_IF_ERROR(RequireNotEnded(db, job_id, "finish"));
    GAN_ASSIGN_OR_RETURN(
        Statement update,
        db.Prepare("UPDATE jobs SET state = ?, end_time_us = ?, error_message = ?, "
                   "lease_expire_us = NULL WHERE job_id = ?"));
    update.Bind(final_state).BindTime(absl::Now()).BindText(error_message).BindText(job_id);
    return update.Run();
  });
}

absl::Status SqliteJobStore::SetStep(const std::string& job_id, int64_t step, const Lease& lease) {
  absl::MutexLock lock(&mu_);
  return WithoutSync([&]() -> absl::Status {
    GAN_ASSIGN_OR_RETURN(Statement update,
                         db_->Prepare("UPDATE jobs SET step = ?1 WHERE job_id = ?2"
                                      " AND (?3 = '' OR (replica = ?3 AND lease_epoch = ?4))"));
    update.Bind(step).BindText(job_id).BindText(lease.replica).Bind(lease.epoch);
    GAN_RETURN_IF_ERROR(update.Run());
    if (db_->Changes() == 0) {
      GAN_RETURN_IF_ERROR(RequireJob(*db_, job_id));
      return LeaseLostError(job_id, lease);
    }
    return absl::OkStatus();
  });
}

absl::StatusOr<int64_t> SqliteJobStore::AppendMetric(const std::string& job_id, int64_t step,
                                                     const gan::v1::MetricEvent& event,
                                                     const Lease& lease) {
  absl::MutexLock lock(&mu_);
  Database& db = *db_;
  int64_t sequence = 0;
  auto append = [&]() -> absl::Status {
    return InTransaction([&]() -> absl::Status {
      GAN_RETURN_IF_ERROR(RequireLease(db, job_id, lease));
      GAN_ASSIGN_OR_RETURN(sequence, InsertMetric(db, job_id, step, event));
      return absl::OkStatus();
    });
  };
  GAN_RETURN_IF_ERROR(event.has_step() ? WithoutSync(append) : append());
  return sequence;
}

absl::StatusOr<std::vector<MetricRow>> SqliteJobStore::ReadMetrics(const std::string& job_id,
                                                                   int64_t from_step,
                                                                   int64_t after_sequence,
                                                                   int limit) {
  GAN_RETURN_IF_ERROR(CheckReadMetricsLimit(limit));
  absl::MutexLock lock(&mu_);
  GAN_RETURN_IF_ERROR(RequireJob(*db_, job_id));
  GAN_ASSIGN_OR_RETURN(
      Statement select,
      db_->Prepare("SELECT sequence, step, event FROM metric_events"
                   " WHERE job_id = ? AND sequence > ? AND step >= ? ORDER BY sequence LIMIT ?"));
  select.BindText(job_id).Bind(after_sequence).Bind(from_step).Bind(limit);
  std::vector<MetricRow> rows;
  while (true) {
    GAN_ASSIGN_OR_RETURN(bool row, select.Step());
    if (!row) return rows;
    MetricRow& metric = rows.emplace_back();
    metric.sequence = select.Int64(0);
    metric.step = select.Int64(1);
    if (!metric.event.ParseFromString(select.Blob(2))) {
      return absl::InternalError(absl::StrCat("metric event ", metric.sequence, " of job \"",
                                              job_id, "\" cannot be parsed"));
    }
  }
}

absl::Status SqliteJobStore::RecordCheckpoint(const std::string& job_id, int64_t step,
                                              const std::string& path, const Lease& lease) {
  if (step <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("checkpoint step must be positive, got ", step));
  }
  absl::MutexLock lock(&mu_);
  Database& db = *db_;
  return InTransaction([&]() -> absl::Status {
    GAN_RETURN_IF_ERROR(RequireLease(db, job_id, lease));
    GAN_ASSIGN_OR_RETURN(
        Statement insert,
        db.Prepare("INSERT INTO checkpoints (job_id, step, path) VALUES (?, ?, ?)"
                   " ON CONFLICT (job_id, step) DO UPDATE SET path = excluded.path"));
    insert.BindText(job_id).Bind(step).BindText(path);
    GAN_RETURN_IF_ERROR(insert.Run());
    GAN_ASSIGN_OR_RETURN(
        Statement update,
        db.Prepare("UPDATE jobs SET latest_checkpoint_step = ?1, step = ?1 WHERE job_id = ?2"));
    update.Bind(step).BindText(job_id);
    return update.Run();
  });
}

absl::StatusOr<std::vector<CheckpointRow>> SqliteJobStore::ListCheckpoints(
    const std::string& job_id) {
  absl::MutexLock lock(&mu_);
  GAN_RETURN_IF_ERROR(RequireJob(*db_, job_id));
  GAN_ASSIGN_OR_RETURN(
      Statement select,
      db_->Prepare("SELECT step, path FROM checkpoints WHERE job_id = ? ORDER BY step"));
  select.BindText(job_id);
  std::vector<CheckpointRow> rows;
  while (true) {
    GAN_ASSIGN_OR_RETURN(bool row, select.Step());
    if (!row) return rows;
    rows.push_back(CheckpointRow{select.Int64(0), select.Text(1)});
  }
}

absl::Status SqliteJobStore::DeleteCheckpointRow(const std::string& job_id, int64_t step,
                                                 const Lease& lease) {
  absl::MutexLock lock(&mu_);
  Database& db = *db_;
  return InTransaction([&]() -> absl::Status {
    GAN_RETURN_IF_ERROR(RequireLease(db, job_id, lease));
    GAN_ASSIGN_OR_RETURN(Statement remove,
                         db.Prepare("DELETE FROM checkpoints WHERE job_id = ? AND step = ?"));
    remove.BindText(job_id).Bind(step);
    GAN_RETURN_IF_ERROR(remove.Run());
    if (db.Changes() == 0) {
      return absl::NotFoundError(
          absl::StrCat("job \"", job_id, "\" has no checkpoint at step ", step));
    }
    GAN_ASSIGN_OR_RETURN(
        Statement update,
        db.Prepare("UPDATE jobs SET latest_checkpoint_step = (SELECT COALESCE(MAX(step), 0)"
                   " FROM checkpoints WHERE job_id = ?1) WHERE job_id = ?1"));
    update.BindText(job_id);
    return update.Run();
  });
}

absl::Status SqliteJobStore::MarkResumed(const std::string& job_id, int64_t from_step,
                                         const Lease& lease) {
  if (from_step < 0) {
    return absl::InvalidArgumentError(absl::StrCat("cannot resume from negative step ", from_step));
  }
  absl::MutexLock lock(&mu_);
  Database& db = *db_;
  return InTransaction([&]() -> absl::Status {
    GAN_RETURN_IF_ERROR(RequireLease(db, job_id, lease));
    GAN_RETURN_IF_ERROR(RequireNotEnded(db, job_id, "resume"));
    GAN_ASSIGN_OR_RETURN(Statement drop_events,
                         db.Prepare("DELETE FROM metric_events WHERE job_id = ? AND step >= ?"));
    drop_events.BindText(job_id).Bind(from_step);
    GAN_RETURN_IF_ERROR(drop_events.Run());
    GAN_ASSIGN_OR_RETURN(Statement drop_checkpoints,
                         db.Prepare("DELETE FROM checkpoints WHERE job_id = ? AND step > ?"));
    drop_checkpoints.BindText(job_id).Bind(from_step);
    GAN_RETURN_IF_ERROR(drop_checkpoints.Run());

    gan::v1::MetricEvent resumed;
    resumed.set_resumed_from_step(from_step);
    GAN_RETURN_IF_ERROR(InsertMetric(db, job_id, from_step, resumed).status());

    GAN_ASSIGN_OR_RETURN(
        Statement update,
        db.Prepare("UPDATE jobs SET state = ?1, step = ?2, start_time_us ="
                   " COALESCE(start_time_us, ?3), latest_checkpoint_step ="
                   " (SELECT COALESCE(MAX(step), 0) FROM checkpoints WHERE job_id = ?4)"
                   " WHERE job_id = ?4"));
    update.Bind(gan::v1::JOB_STATE_RUNNING).Bind(from_step).BindTime(absl::Now()).BindText(job_id);
    return update.Run();
  });
}

absl::StatusOr<std::vector<JobRecord>> SqliteJobStore::JobsInState(gan::v1::JobState state) {
  absl::MutexLock lock(&mu_);
  GAN_ASSIGN_OR_RETURN(Statement select, db_->Prepare("SELECT " GAN_JOB_COLUMNS " FROM jobs"
                                                      " WHERE (?1 = 0 OR state = ?1)"
                                                      " ORDER BY create_time_us, job_id"));
  select.Bind(state);
  return ReadJobs(select);
}

absl::StatusOr<std::optional<ClaimedJob>> SqliteJobStore::ClaimJob(const std::string& replica,
                                                                   absl::Duration lease_duration) {
  if (replica.empty()) return absl::InvalidArgumentError("replica: must not be empty");
  absl::MutexLock lock(&mu_);
  Database& db = *db_;
  std::optional<ClaimedJob> claimed;
  GAN_RETURN_IF_ERROR(InTransaction([&]() -> absl::Status {
    const int64_t now = absl::ToUnixMicros(absl::Now());
    // BEGIN IMMEDIATE holds the write lock: no other claim can interleave.
    GAN_ASSIGN_OR_RETURN(Statement select,
                         db.Prepare("SELECT " GAN_JOB_COLUMNS " FROM jobs WHERE state IN (?1, ?2)"
                                    " AND (lease_expire_us IS NULL OR lease_expire_us < ?3)"
                                    " ORDER BY create_time_us, job_id LIMIT 1"));
    select.Bind(gan::v1::JOB_STATE_QUEUED).Bind(gan::v1::JOB_STATE_RUNNING).Bind(now);
    GAN_ASSIGN_OR_RETURN(bool row, select.Step());
    if (!row) return absl::OkStatus();
    GAN_ASSIGN_OR_RETURN(JobRecord record, ReadJob(select));
    const int64_t expire = now + absl::ToInt64Microseconds(lease_duration);
    GAN_ASSIGN_OR_RETURN(Statement update,
                         db.Prepare("UPDATE jobs SET replica = ?, lease_epoch = lease_epoch + 1,"
                                    " lease_expire_us = ? WHERE job_id = ?"));
    update.BindText(replica).Bind(expire).BindText(record.job_id);
    GAN_RETURN_IF_ERROR(update.Run());
    ClaimedJob& claim = claimed.emplace();
    claim.resume = record.state == gan::v1::JOB_STATE_RUNNING;
    record.replica = replica;
    record.lease_epoch += 1;
    record.lease_expire_time = absl::FromUnixMicros(expire);
    claim.lease = Lease{replica, record.lease_epoch};
    claim.record = std::move(record);
    return absl::OkStatus();
  }));
  return claimed;
}

absl::StatusOr<JobRecord> SqliteJobStore::RenewLease(const std::string& job_id, const Lease& lease,
                                                     absl::Duration lease_duration) {
  absl::MutexLock lock(&mu_);
  Database& db = *db_;
  JobRecord record;
  GAN_RETURN_IF_ERROR(InTransaction([&]() -> absl::Status {
    GAN_ASSIGN_OR_RETURN(
        Statement update,
        db.Prepare("UPDATE jobs SET lease_expire_us = ? WHERE job_id = ? AND replica = ?"
                   " AND lease_epoch = ? AND state IN (?, ?)"));
    update.Bind(absl::ToUnixMicros(absl::Now() + lease_duration))
        .BindText(job_id)
        .BindText(lease.replica)
        .Bind(lease.epoch)
        .Bind(gan::v1::JOB_STATE_QUEUED)
        .Bind(gan::v1::JOB_STATE_RUNNING);
    GAN_RETURN_IF_ERROR(update.Run());
    if (db.Changes() == 0) {
      GAN_RETURN_IF_ERROR(RequireJob(db, job_id));
      return LeaseLostError(job_id, lease);
    }
    GAN_ASSIGN_OR_RETURN(record, LoadJob(db, job_id));
    return absl::OkStatus();
  }));
  return record;
}

absl::Status SqliteJobStore::ReleaseLease(const std::string& job_id, const Lease& lease) {
  absl::MutexLock lock(&mu_);
  GAN_ASSIGN_OR_RETURN(Statement update,
                       db_->Prepare("UPDATE jobs SET lease_expire_us = NULL WHERE job_id = ?"
                                    " AND replica = ? AND lease_epoch = ?"));
  update.BindText(job_id).BindText(lease.replica).Bind(lease.epoch);
  GAN_RETURN_IF_ERROR(update.Run());
  if (db_->Changes() == 0) {
    GAN_RETURN_IF_ERROR(RequireJob(*db_, job_id));
    return LeaseLostError(job_id, lease);
  }
  return absl::OkStatus();
}

absl::Status SqliteJobStore::ReleaseAllLeases() {
  absl::MutexLock lock(&mu_);
  return db_->Exec("UPDATE jobs SET lease_expire_us = NULL WHERE lease_expire_us IS NOT NULL");
}

absl::StatusOr<JobRecord> SqliteJobStore::RequestCancel(const std::string& job_id) {
  absl::MutexLock lock(&mu_);
  Database& db = *db_;
  JobRecord record;
  GAN_RETURN_IF_ERROR(InTransaction([&]() -> absl::Status {
    GAN_ASSIGN_OR_RETURN(record, LoadJob(db, job_id));
    if (IsTerminal(record.state)) {
      return absl::FailedPreconditionError(absl::StrCat("job ", job_id, " already ended (",
                                                        gan::v1::JobState_Name(record.state), ")"));
    }
    const bool held =
        record.lease_expire_time != absl::InfinitePast() && record.lease_expire_time >= absl::Now();
    if (record.state == gan::v1::JOB_STATE_QUEUED && !held) {
      GAN_ASSIGN_OR_RETURN(Statement update,
                           db.Prepare("UPDATE jobs SET state = ?, end_time_us = ?,"
                                      " lease_expire_us = NULL WHERE job_id = ?"));
      update.Bind(gan::v1::JOB_STATE_CANCELLED).BindTime(absl::Now()).BindText(job_id);
      GAN_RETURN_IF_ERROR(update.Run());
    } else {
      GAN_ASSIGN_OR_RETURN(Statement update,
                           db.Prepare("UPDATE jobs SET cancel_requested = 1 WHERE job_id = ?"));
      update.BindText(job_id);
      GAN_RETURN_IF_ERROR(update.Run());
    }
    GAN_ASSIGN_OR_RETURN(record, LoadJob(db, job_id));
    return absl::OkStatus();
  }));
  return record;
}

absl::Status SqliteJobStore::CheckIntegrity() {
  absl::MutexLock lock(&mu_);
  GAN_ASSIGN_OR_RETURN(Statement check, db_->Prepare("PRAGMA integrity_check"));
  std::vector<std::string> report;
  while (true) {
    GAN_ASSIGN_OR_RETURN(bool row, check.Step());
    if (!row) break;
    report.push_back(check.Text(0));
  }
  if (report.size() == 1 && report[0] == "ok") return absl::OkStatus();
  return absl::DataLossError(
      absl::StrCat("job database integrity check failed: ", absl::StrJoin(report, "; ")));
}

}  // namespace gan::server
