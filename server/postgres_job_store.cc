#include "server/postgres_job_store.h"

#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "io/status_macros.h"
#include "server/job_state.h"
#include "server/log.h"

namespace gan::server {
namespace {

using postgres::Connection;
using postgres::Params;
using postgres::Result;

// Advisory lock keys ("gan" and a number): schema creation and migration, and CreateJob (the
// request-id lookup, the admission counts and the strictly increasing create_time).
constexpr int64_t kSchemaLock = 0x67616e0001;
constexpr int64_t kCreateLock = 0x67616e0002;

// Notification channels: an event of the job named in the payload was stored; a job may be
// waiting to be claimed (submitted, or a lease released).
constexpr char kEventsChannel[] = "gan_events";
constexpr char kJobsChannel[] = "gan_jobs";

// Lease times come from the database's clock, so replicas with skewed clocks agree on them.
#define GAN_PG_NOW_US "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000000)::BIGINT"

// Version 1, the whole schema. Times are microseconds since the Unix epoch, NULL when unset.
// metric_events' sequence never reuses a number, so a reader resuming after sequence N misses
// nothing appended later.
constexpr char kSchemaV1[] = R"sql(
CREATE TABLE jobs (
  job_id TEXT PRIMARY KEY,
  principal TEXT NOT NULL DEFAULT '',
  request_id TEXT,
  spec BYTEA NOT NULL,
  state INTEGER NOT NULL,
  create_time_us BIGINT NOT NULL,
  start_time_us BIGINT,
  end_time_us BIGINT,
  step BIGINT NOT NULL DEFAULT 0,
  total_steps BIGINT NOT NULL DEFAULT 0,
  latest_checkpoint_step BIGINT NOT NULL DEFAULT 0,
  error_message TEXT NOT NULL DEFAULT '',
  replica TEXT NOT NULL DEFAULT '',
  lease_epoch BIGINT NOT NULL DEFAULT 0,
  lease_expire_us BIGINT,
  cancel_requested BOOLEAN NOT NULL DEFAULT FALSE,
  UNIQUE (principal, request_id)
);
CREATE INDEX jobs_by_create_time ON jobs (create_time_us, job_id);
CREATE INDEX jobs_by_principal ON jobs (principal, state);
CREATE INDEX jobs_by_state ON jobs (state, create_time_us);
CREATE TABLE metric_events (
  sequence BIGSERIAL PRIMARY KEY,
  job_id TEXT NOT NULL REFERENCES jobs (job_id) ON DELETE CASCADE,
  step BIGINT NOT NULL,
  event BYTEA NOT NULL
);
CREATE INDEX metric_events_by_job ON metric_events (job_id, sequence);
CREATE TABLE checkpoints (
  job_id TEXT NOT NULL REFERENCES jobs (job_id) ON DELETE CASCADE,
  step BIGINT NOT NULL,
  path TEXT NOT NULL,
  PRIMARY KEY (job_id, step)
);
)sql";

// The columns ReadJob expects, in order.
#define GAN_JOB_COLUMNS                                                                   \
  "job_id, request_id, spec, state, create_time_us, start_time_us, end_time_us, step, "   \
  "total_steps, latest_checkpoint_step, error_message, principal, replica, lease_epoch, " \
  "lease_expire_us, cancel_requested"

absl::StatusOr<JobRecord> ReadJob(const Result& result, int row) {
  JobRecord record;
  record.job_id = result.Text(row, 0);
  record.request_id = result.Text(row, 1);
  if (!record.spec.ParseFromString(result.Bytes(row, 2))) {
    return absl::InternalError(
        absl::StrCat("the stored spec of job \"", record.job_id, "\" cannot be parsed"));
  }
  const int64_t state = result.Int64(row, 3);
  if (!gan::v1::JobState_IsValid(static_cast<int>(state))) {
    return absl::InternalError(
        absl::StrCat("job \"", record.job_id, "\" has an unknown stored state ", state));
  }
  record.state = static_cast<gan::v1::JobState>(state);
  record.create_time = result.Time(row, 4);
  record.start_time = result.Time(row, 5);
  record.end_time = result.Time(row, 6);
  record.step = result.Int64(row, 7);
  record.total_steps = result.Int64(row, 8);
  record.latest_checkpoint_step = result.Int64(row, 9);
  record.error_message = result.Text(row, 10);
  record.principal = result.Text(row, 11);
  record.replica = result.Text(row, 12);
  record.lease_epoch = result.Int64(row, 13);
  record.lease_expire_time = result.Time(row, 14);
  record.cancel_requested = result.Bool(row, 15);
  return record;
}

absl::StatusOr<std::vector<JobRecord>> ReadJobs(const Result& result) {
  std::vector<JobRecord> records;
  for (int row = 0; row < result.rows(); ++row) {
    GAN_ASSIGN_OR_RETURN(JobRecord record, ReadJob(result, row));
    records.push_back(std::move(record));
  }
  return records;
}

absl::StatusOr<JobRecord> LoadJob(Connection& db, const std::string& job_id, bool for_update) {
  GAN_ASSIGN_OR_RETURN(
      Result result, db.Exec(for_update ? "SELECT " GAN_JOB_COLUMNS " FROM jobs WHERE job_id = $1"
                                          " FOR UPDATE"
                                        : "SELECT " GAN_JOB_COLUMNS " FROM jobs WHERE job_id = $1",
                             Params().AddText(job_id)));
  if (result.rows() == 0) return JobNotFoundError(job_id);
  return ReadJob(result, 0);
}

absl::Status RequireJob(Connection& db, const std::string& job_id) {
  GAN_ASSIGN_OR_RETURN(Result result,
                       db.Exec("SELECT 1 FROM jobs WHERE job_id = $1", Params().AddText(job_id)));
  if (result.rows() == 0) return JobNotFoundError(job_id);
  return absl::OkStatus();
}

// Locks the job's row for this transaction (so no claim interleaves with the caller's writes)
// and checks it: NOT_FOUND for an unknown job; with a lease (non-empty replica), ABORTED unless
// the job's lease is still that one; with an `action`, FAILED_PRECONDITION for a job that ended.
absl::Status LockJob(Connection& db, const std::string& job_id, const Lease& lease,
                     const char* action) {
  GAN_ASSIGN_OR_RETURN(
      Result result,
      db.Exec("SELECT replica, lease_epoch, state FROM jobs WHERE job_id = $1 FOR UPDATE",
              Params().AddText(job_id)));
  if (result.rows() == 0) return JobNotFoundError(job_id);
  if (!lease.replica.empty() &&
      (result.Text(0, 0) != lease.replica || result.Int64(0, 1) != lease.epoch)) {
    return LeaseLostError(job_id, lease);
  }
  const auto state = static_cast<gan::v1::JobState>(result.Int64(0, 2));
  if (action != nullptr && IsTerminal(state)) {
    return absl::FailedPreconditionError(absl::StrCat("cannot ", action, " job \"", job_id,
                                                      "\": it already ended (",
                                                      gan::v1::JobState_Name(state), ")"));
  }
  return absl::OkStatus();
}

absl::StatusOr<int64_t> InsertMetric(Connection& db, const std::string& job_id, int64_t step,
                                     const gan::v1::MetricEvent& event) {
  GAN_ASSIGN_OR_RETURN(
      Result result,
      db.Exec("INSERT INTO metric_events (job_id, step, event)"
              " VALUES ($1, $2, $3) RETURNING sequence",
              Params().AddText(job_id).Add(step).AddBytes(SerializeDeterministically(event))));
  GAN_RETURN_IF_ERROR(
      db.Exec("SELECT pg_notify($1, $2)", Params().AddText(kEventsChannel).AddText(job_id))
          .status());
  return result.Int64(0, 0);
}

absl::Status NotifyJobs(Connection& db) {
  return db.Exec("SELECT pg_notify($1, '')", Params().AddText(kJobsChannel)).status();
}

}  // namespace

absl::StatusOr<std::unique_ptr<PostgresJobStore>> PostgresJobStore::Open(
    const std::string& url, absl::Duration connect_timeout) {
  GAN_ASSIGN_OR_RETURN(std::unique_ptr<Connection> conn, Connection::Open(url, connect_timeout));
  std::unique_ptr<PostgresJobStore> store(
      new PostgresJobStore(url, connect_timeout, std::move(conn)));
  absl::MutexLock lock(&store->mu_);
  GAN_RETURN_IF_ERROR(store->InTransaction([&](Connection& db) -> absl::Status {
    // Replicas starting together wait here for the first to create or migrate the schema.
    GAN_RETURN_IF_ERROR(
        db.Exec("SELECT pg_advisory_xact_lock($1)", Params().Add(kSchemaLock)).status());
    GAN_RETURN_IF_ERROR(
        db.ExecScript("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)"));
    GAN_ASSIGN_OR_RETURN(Result version, db.Exec("SELECT MAX(version) FROM schema_version"));
    const int64_t current = version.IsNull(0, 0) ? 0 : version.Int64(0, 0);
    if (current > kSchemaVersion) {
      return absl::FailedPreconditionError(
          absl::StrCat("the PostgreSQL job store has schema version ", current,
                       ", newer than this server's ", kSchemaVersion, "; run a newer server"));
    }
    if (current == kSchemaVersion) return absl::OkStatus();
    // Migrations from version N to N + 1 go here, after version 1's creation.
    if (current == 0) GAN_RETURN_IF_ERROR(db.ExecScript(kSchemaV1));
    GAN_RETURN_IF_ERROR(db.ExecScript("DELETE FROM schema_version"));
    return db.Exec("INSERT INTO schema_version (version) VALUES ($1)", Params().Add(kSchemaVersion))
        .status();
  }));
  return store;
}

PostgresJobStore::PostgresJobStore(std::string url, absl::Duration connect_timeout,
                                   std::unique_ptr<Connection> conn)
    : url_(std::move(url)), connect_timeout_(connect_timeout), conn_(std::move(conn)) {}

PostgresJobStore::~PostgresJobStore() {
  if (listener_.joinable()) {
    stopping_ = true;
    const char byte = 0;
    if (::write(wake_fds_[1], &byte, 1) < 0) {
      // The pipe is ours and empty; the loop also checks stopping_ at least once a second.
    }
    listener_.join();
  }
  for (int fd : wake_fds_) {
    if (fd >= 0) ::close(fd);
  }
}

absl::Status PostgresJobStore::EnsureConnected() {
  if (conn_->healthy()) return absl::OkStatus();
  return conn_->Reconnect();
}

absl::Status PostgresJobStore::InTransaction(absl::FunctionRef<absl::Status(Connection&)> body) {
  GAN_RETURN_IF_ERROR(EnsureConnected());
  absl::Status begin = conn_->ExecScript("BEGIN");
  if (!begin.ok() && !conn_->healthy()) {
    // The server restarted since the last call: nothing was done yet, so try once more.
    GAN_RETURN_IF_ERROR(conn_->Reconnect());
    begin = conn_->ExecScript("BEGIN");
  }
  GAN_RETURN_IF_ERROR(begin);
  absl::Status status = body(*conn_);
  if (status.ok()) status = conn_->ExecScript("COMMIT");
  if (!status.ok() && conn_->healthy()) conn_->ExecScript("ROLLBACK").IgnoreError();
  return status;
}

absl::StatusOr<Result> PostgresJobStore::Query(absl::string_view sql, const Params& params) {
  GAN_RETURN_IF_ERROR(EnsureConnected());
  absl::StatusOr<Result> result = conn_->Exec(sql, params);
  if (!result.ok() && !conn_->healthy()) {
    // A read is safe to repeat on a fresh connection; a write here is one statement, which the
    // broken connection either committed or not: callers of Query repeat idempotent ones only.
    GAN_RETURN_IF_ERROR(conn_->Reconnect());
    result = conn_->Exec(sql, params);
  }
  return result;
}

absl::StatusOr<JobRecord> PostgresJobStore::CreateJob(const NewJob& job, AdmitFn admit,
                                                      bool* created) {
  const std::string& request_id = job.request_id;
  const gan::v1::JobSpec& spec = job.spec;
  absl::MutexLock lock(&mu_);
  JobRecord record;
  bool inserted = false;
  GAN_RETURN_IF_ERROR(InTransaction([&](Connection& db) -> absl::Status {
    GAN_RETURN_IF_ERROR(
        db.Exec("SELECT pg_advisory_xact_lock($1)", Params().Add(kCreateLock)).status());
    if (!request_id.empty()) {
      GAN_ASSIGN_OR_RETURN(
          Result existing,
          db.Exec("SELECT " GAN_JOB_COLUMNS " FROM jobs WHERE principal = $1 AND request_id = $2",
                  Params().AddText(job.principal).AddText(request_id)));
      if (existing.rows() > 0) {
        GAN_ASSIGN_OR_RETURN(record, ReadJob(existing, 0));
        if (SerializeDeterministically(record.spec) != SerializeDeterministically(spec)) {
          return absl::AlreadyExistsError(absl::StrCat("request_id: '", request_id,
                                                       "' was used for job ", record.job_id,
                                                       " with a different spec"));
        }
        return absl::OkStatus();
      }
    }
    GAN_ASSIGN_OR_RETURN(
        Result counts,
        db.Exec("SELECT COUNT(*) FILTER (WHERE principal = $1 AND state IN ($2, $3)),"
                " COUNT(*) FILTER (WHERE state = $2), COALESCE(MAX(create_time_us), 0)"
                " FROM jobs",
                Params()
                    .AddText(job.principal)
                    .Add(gan::v1::JOB_STATE_QUEUED)
                    .Add(gan::v1::JOB_STATE_RUNNING)));
    GAN_RETURN_IF_ERROR(admit(counts.Int64(0, 0), counts.Int64(0, 1)));
    // create_time strictly increases, even if the clock steps back or two jobs share a
    // microsecond, so newest-first is creation order.
    const int64_t create_micros = std::max(absl::ToUnixMicros(absl::Now()), counts.Int64(0, 2) + 1);
    record.job_id = NewJobId();
    while (RequireJob(db, record.job_id).ok()) record.job_id = NewJobId();  // 2^-64 odds
    record.principal = job.principal;
    record.request_id = request_id;
    record.spec = spec;
    record.state = gan::v1::JOB_STATE_QUEUED;
    record.create_time = absl::FromUnixMicros(create_micros);
    record.total_steps = job.total_steps;
    GAN_RETURN_IF_ERROR(db.Exec("INSERT INTO jobs (job_id, principal, request_id, spec, state,"
                                " create_time_us, total_steps) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                                Params()
                                    .AddText(record.job_id)
                                    .AddText(job.principal)
                                    .AddTextOrNull(request_id)
                                    .AddBytes(SerializeDeterministically(spec))
                                    .Add(record.state)
                                    .Add(create_micros)
                                    .Add(job.total_steps))
                            .status());
    inserted = true;
    return NotifyJobs(db);
  }));
  if (created != nullptr) *created = inserted;
  return record;
}

absl::StatusOr<JobRecord> PostgresJobStore::GetJob(const std::string& job_id) {
  absl::MutexLock lock(&mu_);
  GAN_ASSIGN_OR_RETURN(
      Result result,
      Query("SELECT " GAN_JOB_COLUMNS " FROM jobs WHERE job_id = $1", Params().AddText(job_id)));
  if (result.rows() == 0) return JobNotFoundError(job_id);
  return ReadJob(result, 0);
}

absl::StatusOr<std::vector<JobRecord>> PostgresJobStore::ListJobs(
    gan::v1::JobState state, const std::optional<std::string>& principal, int page_size,
    const std::string& page_token, std::string* next_page_token) {
  GAN_ASSIGN_OR_RETURN(const JobPage page, ParseJobPage(state, page_size, page_token));
  absl::MutexLock lock(&mu_);
  GAN_ASSIGN_OR_RETURN(
      Result result,
      Query("SELECT " GAN_JOB_COLUMNS " FROM jobs"
            " WHERE ($1::INTEGER = 0 OR state = $1::INTEGER)"
            " AND ($2::INTEGER = 0 OR (create_time_us, job_id) < ($3::BIGINT, $4::TEXT))"
            " AND ($6::INTEGER = 0 OR principal = $7::TEXT)"
            " ORDER BY create_time_us DESC, job_id DESC LIMIT $5::BIGINT",
            Params()
                .Add(state)
                .Add(page.has_cursor ? 1 : 0)
                .Add(page.cursor.create_time_us)
                .AddText(page.cursor.job_id)
                .Add(page.limit + 1)  // one more than the page tells whether another page follows
                .Add(principal.has_value() ? 1 : 0)
                .AddText(principal.value_or(""))));
  GAN_ASSIGN_OR_RETURN(std::vector<JobRecord> jobs, ReadJobs(result));
  EndJobPage(state, page, &jobs, next_page_token);
  return jobs;
}

absl::StatusOr<int64_t> PostgresJobStore::CountJobs(gan::v1::JobState state) {
  absl::MutexLock lock(&mu_);
  GAN_ASSIGN_OR_RETURN(
      Result result,
      Query("SELECT COUNT(*) FROM jobs WHERE ($1::INTEGER = 0 OR state = $1::INTEGER)",
            Params().Add(state)));
  return result.Int64(0, 0);
}

absl::Status PostgresJobStore::MarkRunning(const std::string& job_id, const Lease& lease) {
  absl::MutexLock lock(&mu_);
  return InTransaction([&](Connection& db) -> absl::Status {
    GAN_RETURN_IF_ERROR(LockJob(db, job_id, lease, "start"));
    return db
        .Exec(
            "UPDATE jobs SET state = $1, start_time_us = COALESCE(start_time_us, $2)"
            " WHERE job_id = $3",
            Params().Add(gan::v1::JOB_STATE_RUNNING).AddTime(absl::Now()).AddText(job_id))
        .status();
  });
}

absl::Status PostgresJobStore::MarkFinished(const std::string& job_id,
                                            gan::v1::JobState final_state,
                                            const std::string& error_message, const Lease& lease) {
  if (!IsTerminal(final_state)) {
    return absl::InvalidArgumentError(
        absl::StrCat("a job cannot finish in state ", gan::v1::JobState_Name(final_state)));
  }
  absl::MutexLock lock(&mu_);
  return InTransaction([&](Connection& db) -> absl::Status {
    GAN_RETURN_IF_ERROR(LockJob(db, job_id, lease, "finish"));
    return db
        .Exec(
            "UPDATE jobs SET state = $1, end_time_us = $2, error_message = $3,"
            " lease_expire_us = NULL WHERE job_id = $4",
            Params().Add(final_state).AddTime(absl::Now()).AddText(error_message).AddText(job_id))
        .status();
  });
}

absl::Status PostgresJobStore::SetStep(const std::string& job_id, int64_t step,
                                       const Lease& lease) {
  absl::MutexLock lock(&mu_);
  // One UPDATE (repeating it is harmless): the row lock of the UPDATE is the fence. Not waiting
  // for the disk (see JobStore).
  return InTransaction([&](Connection& db) -> absl::Status {
    GAN_RETURN_IF_ERROR(db.ExecScript("SET LOCAL synchronous_commit = off"));
    GAN_ASSIGN_OR_RETURN(
        Result result,
        db.Exec("UPDATE jobs SET step = $1 WHERE job_id = $2"
                " AND ($3::TEXT = '' OR (replica = $3::TEXT AND lease_epoch = $4::BIGINT))",
                Params().Add(step).AddText(job_id).AddText(lease.replica).Add(lease.epoch)));
    if (result.affected() == 0) {
      GAN_RETURN_IF_ERROR(RequireJob(db, job_id));
      return LeaseLostError(job_id, lease);
    }
    return absl::OkStatus();
  });
}

absl::StatusOr<int64_t> PostgresJobStore::AppendMetric(const std::string& job_id, int64_t step,
                                                       const gan::v1::MetricEvent& event,
                                                       const Lease& lease) {
  absl::MutexLock lock(&mu_);
  int64_t sequence = 0;
  GAN_RETURN_IF_ERROR(InTransaction([&](Connection& db) -> absl::Status {
    if (event.has_step()) {  // a step's metrics: not waiting for the disk (see JobStore)
      GAN_RETURN_IF_ERROR(db.ExecScript("SET LOCAL synchronous_commit = off"));
    }
    GAN_RETURN_IF_ERROR(LockJob(db, job_id, lease, nullptr));
    GAN_ASSIGN_OR_RETURN(sequence, InsertMetric(db, job_id, step, event));
    return absl::OkStatus();
  }));
  return sequence;
}

absl::StatusOr<std::vector<MetricRow>> PostgresJobStore::ReadMetrics(const std::string& job_id,
                                                                     int64_t from_step,
                                                                     int64_t after_sequence,
                                                                     int limit) {
  GAN_RETURN_IF_ERROR(CheckReadMetricsLimit(limit));
  absl::MutexLock lock(&mu_);
  // One statement: the job's existence and its events from the same snapshot.
  GAN_ASSIGN_OR_RETURN(
      Result result,
      Query("SELECT e.sequence, e.step, e.event FROM jobs j LEFT JOIN LATERAL"
            " (SELECT sequence, step, event FROM metric_events m WHERE m.job_id = j.job_id"
            " AND m.sequence > $2 AND m.step >= $3 ORDER BY m.sequence LIMIT $4) e ON TRUE"
            " WHERE j.job_id = $1 ORDER BY e.sequence",
            Params().AddText(job_id).Add(after_sequence).Add(from_step).Add(limit)));
  if (result.rows() == 0) return JobNotFoundError(job_id);
  std::vector<MetricRow> rows;
  for (int row = 0; row < result.rows(); ++row) {
    if (result.IsNull(row, 0)) continue;  // the job has no such events
    MetricRow& metric = rows.emplace_back();
    metric.sequence = result.Int64(row, 0);
    metric.step = result.Int64(row, 1);
    if (!metric.event.ParseFromString(result.Bytes(row, 2))) {
      return absl::InternalError(absl::StrCat("metric event ", metric.sequence, " of job \"",
                                              job_id, "\" cannot be parsed"));
    }
  }
  return rows;
}

absl::Status PostgresJobStore::RecordCheckpoint(const std::string& job_id, int64_t step,
                                                const std::string& path, const Lease& lease) {
  if (step <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("checkpoint step must be positive, got ", step));
  }
  absl::MutexLock lock(&mu_);
  return InTransaction([&](Connection& db) -> absl::Status {
    GAN_RETURN_IF_ERROR(LockJob(db, job_id, lease, nullptr));
    GAN_RETURN_IF_ERROR(db.Exec("INSERT INTO checkpoints (job_id, step, path) VALUES ($1, $2, $3)"
                                " ON CONFLICT (job_id, step) DO UPDATE SET path = EXCLUDED.path",
                                Params().AddText(job_id).Add(step).AddText(path))
                            .status());
    return db
        .Exec("UPDATE jobs SET latest_checkpoint_step = $1, step = $1 WHERE job_id = $2",
              Params().Add(step).AddText(job_id))
        .status();
  });
}

absl::StatusOr<std::vector<CheckpointRow>> PostgresJobStore::ListCheckpoints(
    const std::string& job_id) {
  absl::MutexLock lock(&mu_);
  GAN_ASSIGN_OR_RETURN(
      Result result,
      Query("SELECT c.step, c.path FROM jobs j LEFT JOIN checkpoints c ON c.job_id = j.job_id"
            " WHERE j.job_id = $1 ORDER BY c.step",
            Params().AddText(job_id)));
  if (result.rows() == 0) return JobNotFoundError(job_id);
  std::vector<CheckpointRow> rows;
  for (int row = 0; row < result.rows(); ++row) {
    if (result.IsNull(row, 0)) continue;
    rows.push_back(CheckpointRow{result.Int64(row, 0), result.Text(row, 1)});
  }
  return rows;
}

absl::Status PostgresJobStore::DeleteCheckpointRow(const std::string& job_id, int64_t step,
                                                   const Lease& lease) {
  absl::MutexLock lock(&mu_);
  return InTransaction([&](Connection& db) -> absl::Status {
    GAN_RETURN_IF_ERROR(LockJob(db, job_id, lease, nullptr));
    GAN_ASSIGN_OR_RETURN(Result removed,
                         db.Exec("DELETE FROM checkpoints WHERE job_id = $1 AND step = $2",
                                 Params().AddText(job_id).Add(step)));
    if (removed.affected() == 0) {
      return absl::NotFoundError(
          absl::StrCat("job \"", job_id, "\" has no checkpoint at step ", step));
    }
    return db
        .Exec(
            "UPDATE jobs SET latest_checkpoint_step = (SELECT COALESCE(MAX(step), 0)"
            " FROM checkpoints WHERE job_id = $1) WHERE job_id = $1",
            Params().AddText(job_id))
        .status();
  });
}

absl::Status PostgresJobStore::MarkResumed(const std::string& job_id, int64_t from_step,
                                           const Lease& lease) {
  if (from_step < 0) {
    return absl::InvalidArgumentError(absl::StrCat("cannot resume from negative step ", from_step));
  }
  absl::MutexLock lock(&mu_);
  return InTransaction([&](Connection& db) -> absl::Status {
    GAN_RETURN_IF_ERROR(LockJob(db, job_id, lease, "resume"));
    GAN_RETURN_IF_ERROR(db.Exec("DELETE FROM metric_events WHERE job_id = $1 AND step >= $2",
                                Params().AddText(job_id).Add(from_step))
                            .status());
    GAN_RETURN_IF_ERROR(db.Exec("DELETE FROM checkpoints WHERE job_id = $1 AND step > $2",
                                Params().AddText(job_id).Add(from_step))
                            .status());
    gan::v1::MetricEvent resumed;
    resumed.set_resumed_from_step(from_step);
    GAN_RETURN_IF_ERROR(InsertMetric(db, job_id, from_step, resumed).status());
    return db
        .Exec(
            "UPDATE jobs SET state = $1, step = $2, start_time_us ="
            " COALESCE(start_time_us, $3), latest_checkpoint_step ="
            " (SELECT COALESCE(MAX(step), 0) FROM checkpoints WHERE job_id = $4)"
            " WHERE job_id = $4",
            Params()
                .Add(gan::v1::JOB_STATE_RUNNING)
                .Add(from_step)
                .AddTime(absl::Now())
                .AddText(job_id))
        .status();
  });
}

absl::StatusOr<std::vector<JobRecord>> PostgresJobStore::JobsInState(gan::v1::JobState state) {
  absl::MutexLock lock(&mu_);
  GAN_ASSIGN_OR_RETURN(Result result, Query("SELECT " GAN_JOB_COLUMNS " FROM jobs"
                                            " WHERE ($1::INTEGER = 0 OR state = $1::INTEGER)"
                                            " ORDER BY create_time_us, job_id",
                                            Params().Add(state)));
  return ReadJobs(result);
}

absl::Status PostgresJobStore::CheckIntegrity() {
  absl::MutexLock lock(&mu_);
  GAN_ASSIGN_OR_RETURN(Result result,
                       Query("SELECT (SELECT COUNT(*) FROM metric_events m WHERE NOT EXISTS"
                             " (SELECT 1 FROM jobs j WHERE j.job_id = m.job_id)),"
                             " (SELECT COUNT(*) FROM checkpoints c WHERE NOT EXISTS"
                             " (SELECT 1 FROM jobs j WHERE j.job_id = c.job_id)),"
                             " (SELECT COUNT(*) FROM jobs WHERE state NOT IN (1, 2, 3, 4, 5))",
                             Params()));
  if (result.Int64(0, 0) == 0 && result.Int64(0, 1) == 0 && result.Int64(0, 2) == 0) {
    return absl::OkStatus();
  }
  return absl::DataLossError(absl::StrCat(
      "job database integrity check failed: ", result.Int64(0, 0), " orphaned events, ",
      result.Int64(0, 1), " orphaned checkpoints, ", result.Int64(0, 2), " unknown states"));
}

absl::StatusOr<std::optional<ClaimedJob>> PostgresJobStore::ClaimJob(
    const std::string& replica, absl::Duration lease_duration) {
  if (replica.empty()) return absl::InvalidArgumentError("replica: must not be empty");
  absl::MutexLock lock(&mu_);
  std::optional<ClaimedJob> claimed;
  GAN_RETURN_IF_ERROR(InTransaction([&](Connection& db) -> absl::Status {
    GAN_ASSIGN_OR_RETURN(
        Result candidate,
        db.Exec("SELECT job_id, state FROM jobs WHERE state IN ($1, $2)"
                " AND (lease_expire_us IS NULL OR lease_expire_us < " GAN_PG_NOW_US ")"
                " ORDER BY create_time_us, job_id LIMIT 1 FOR UPDATE SKIP LOCKED",
                Params().Add(gan::v1::JOB_STATE_QUEUED).Add(gan::v1::JOB_STATE_RUNNING)));
    if (candidate.rows() == 0) return absl::OkStatus();
    GAN_ASSIGN_OR_RETURN(Result updated,
                         db.Exec("UPDATE jobs SET replica = $1, lease_epoch = lease_epoch + 1,"
                                 " lease_expire_us = " GAN_PG_NOW_US " + $2 WHERE job_id = $3"
                                 " RETURNING " GAN_JOB_COLUMNS,
                                 Params()
                                     .AddText(replica)
                                     .Add(absl::ToInt64Microseconds(lease_duration))
                                     .AddText(candidate.Text(0, 0))));
    GAN_ASSIGN_OR_RETURN(JobRecord record, ReadJob(updated, 0));
    ClaimedJob& claim = claimed.emplace();
    claim.resume = record.state == gan::v1::JOB_STATE_RUNNING;
    claim.lease = Lease{replica, record.lease_epoch};
    claim.record = std::move(record);
    return absl::OkStatus();
  }));
  return claimed;
}

absl::StatusOr<JobRecord> PostgresJobStore::RenewLease(const std::string& job_id,
                                                       const Lease& lease,
                                                       absl::Duration lease_duration) {
  absl::MutexLock lock(&mu_);
  GAN_ASSIGN_OR_RETURN(
      Result result,
      Query("UPDATE jobs SET lease_expire_us = " GAN_PG_NOW_US " + $1 WHERE job_id = $2"
            " AND replica = $3 AND lease_epoch = $4 AND state IN ($5, $6)"
            " RETURNING " GAN_JOB_COLUMNS,
            Params()
                .Add(absl::ToInt64Microseconds(lease_duration))
                .AddText(job_id)
                .AddText(lease.replica)
                .Add(lease.epoch)
                .Add(gan::v1::JOB_STATE_QUEUED)
                .Add(gan::v1::JOB_STATE_RUNNING)));
  if (result.rows() == 0) {
    GAN_RETURN_IF_ERROR(RequireJob(*conn_, job_id));
    return LeaseLostError(job_id, lease);
  }
  return ReadJob(result, 0);
}

absl::Status PostgresJobStore::ReleaseLease(const std::string& job_id, const Lease& lease) {
  absl::MutexLock lock(&mu_);
  return InTransaction([&](Connection& db) -> absl::Status {
    GAN_ASSIGN_OR_RETURN(Result result,
                         db.Exec("UPDATE jobs SET lease_expire_us = NULL WHERE job_id = $1"
                                 " AND replica = $2 AND lease_epoch = $3",
                                 Params().AddText(job_id).AddText(lease.replica).Add(lease.epoch)));
    if (result.affected() == 0) {
      GAN_RETURN_IF_ERROR(RequireJob(db, job_id));
      return LeaseLostError(job_id, lease);
    }
    return NotifyJobs(db);
  });
}

absl::Status PostgresJobStore::ReleaseAllLeases() {
  return absl::FailedPreconditionError(
      "a shared PostgreSQL job store never releases every lease: other replicas hold them");
}

absl::StatusOr<JobRecord> PostgresJobStore::RequestCancel(const std::string& job_id) {
  absl::MutexLock lock(&mu_);
  JobRecord record;
  GAN_RETURN_IF_ERROR(InTransaction([&](Connection& db) -> absl::Status {
    GAN_ASSIGN_OR_RETURN(
        Result locked,
        db.Exec("SELECT state, lease_expire_us IS NOT NULL AND lease_expire_us >= " GAN_PG_NOW_US
                " FROM jobs WHERE job_id = $1 FOR UPDATE",
                Params().AddText(job_id)));
    if (locked.rows() == 0) return JobNotFoundError(job_id);
    const auto state = static_cast<gan::v1::JobState>(locked.Int64(0, 0));
    if (IsTerminal(state)) {
      return absl::FailedPreconditionError(
          absl::StrCat("job ", job_id, " already ended (", gan::v1::JobState_Name(state), ")"));
    }
    if (state == gan::v1::JOB_STATE_QUEUED && !locked.Bool(0, 1)) {
      GAN_RETURN_IF_ERROR(
          db.Exec("UPDATE jobs SET state = $1, end_time_us = $2,"
                  " lease_expire_us = NULL WHERE job_id = $3",
                  Params().Add(gan::v1::JOB_STATE_CANCELLED).AddTime(absl::Now()).AddText(job_id))
              .status());
    } else {
      GAN_RETURN_IF_ERROR(db.Exec("UPDATE jobs SET cancel_requested = TRUE WHERE job_id = $1",
                                  Params().AddText(job_id))
                              .status());
    }
    GAN_ASSIGN_OR_RETURN(record, LoadJob(db, job_id, /*for_update=*/false));
    return absl::OkStatus();
  }));
  return record;
}

void PostgresJobStore::WatchEvents(std::function<void(const std::string& job_id)> on_event) {
  absl::MutexLock lock(&listener_mu_);
  on_event_ = std::move(on_event);
  if (on_event_ == nullptr || listener_.joinable()) return;
  if (::pipe(wake_fds_) != 0) {
    log::Error("job store notifications disabled: no pipe; streams fall back to polling");
    return;
  }
  listener_ = std::thread([this] { ListenLoop(); });
}

void PostgresJobStore::Dispatch(const std::string& job_id) {
  absl::MutexLock lock(&listener_mu_);
  if (on_event_ != nullptr) on_event_(job_id);
}

void PostgresJobStore::ListenLoop() {
  absl::Duration backoff = absl::Milliseconds(100);
  bool reported = false;
  while (!stopping_) {
    absl::StatusOr<std::unique_ptr<Connection>> conn = Connection::Open(url_, connect_timeout_);
    absl::Status status = conn.status();
    if (status.ok()) {
      status =
          (*conn)->ExecScript(absl::StrCat("LISTEN ", kEventsChannel, "; LISTEN ", kJobsChannel));
    }
    if (status.ok()) {
      if (reported) log::Info("job store notifications restored");
      reported = false;
      backoff = absl::Milliseconds(100);
      Dispatch("");  // whatever happened while not listening: re-read everything
      while (!stopping_) {
        pollfd fds[2] = {{(*conn)->socket(), POLLIN, 0}, {wake_fds_[0], POLLIN, 0}};
        const int ready = ::poll(fds, 2, 1000);
        if (ready < 0) continue;  // EINTR
        if (fds[1].revents != 0) break;
        if (fds[0].revents == 0) continue;
        absl::StatusOr<std::vector<std::pair<std::string, std::string>>> notifications =
            (*conn)->ConsumeNotifications();
        if (!notifications.ok()) {
          status = notifications.status();
          break;
        }
        for (const auto& [channel, payload] : *notifications) {
          Dispatch(channel == kEventsChannel ? payload : "");
        }
      }
    }
    if (stopping_) return;
    if (!reported) {
      log::Warning("job store notifications lost; reconnecting (streams poll meanwhile)",
                   {{"status", status}});
      reported = true;
    }
    pollfd wake = {wake_fds_[0], POLLIN, 0};
    ::poll(&wake, 1, static_cast<int>(absl::ToInt64Milliseconds(backoff)));
    backoff = std::min(backoff * 2, absl::Seconds(5));
  }
}

}  // namespace gan::server
