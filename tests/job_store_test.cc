// The JobStore contract, run against every backend (parametrized: SQLite and a PostgreSQL cluster
// the test starts; the PostgreSQL cases skip when no server binaries are installed), plus what
// only one backend has (SQLite's file format and migrations, PostgreSQL's schema table).

#include <sqlite3.h>

#include <algorithm>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "io/status_macros.h"
#include "server/job_store_url.h"
#include "server/postgres_job_store.h"
#include "server/sqlite_job_store.h"
#include "tests/postgres_cluster.h"
#include "tests/test_util.h"

namespace gan::server {
namespace {

using ::gan::testing::IsOk;
using ::gan::testing::MakeTempDir;
using ::gan::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::MatchesRegex;
using ::testing::Not;

gan::v1::JobSpec MakeSpec(const std::string& preset, int64_t steps) {
  gan::v1::JobSpec spec;
  spec.set_preset(preset);
  spec.set_dataset("synthetic");
  spec.set_steps(steps);
  spec.set_seed(7);
  spec.set_checkpoint_every(10);
  return spec;
}

gan::v1::MetricEvent StepEvent(int64_t step) {
  gan::v1::MetricEvent event;
  event.mutable_step()->set_step(step);
  event.mutable_step()->set_d_loss(0.5f + static_cast<float>(step));
  return event;
}

bool SameSpec(const gan::v1::JobSpec& a, const gan::v1::JobSpec& b) {
  return google::protobuf::util::MessageDifferencer::Equals(a, b);
}

std::vector<std::string> Ids(const std::vector<JobRecord>& jobs) {
  std::vector<std::string> ids;
  for (const JobRecord& job : jobs) ids.push_back(job.job_id);
  return ids;
}

std::vector<int64_t> Steps(const std::vector<MetricRow>& rows) {
  std::vector<int64_t> steps;
  for (const MetricRow& row : rows) steps.push_back(row.step);
  return steps;
}

// Runs SQL on the database file through a second connection, as another process would.
void ExecOnFile(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  char* error = nullptr;
  const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &error);
  EXPECT_EQ(rc, SQLITE_OK) << (error ? error : "");
  sqlite3_free(error);
  sqlite3_close(db);
}

enum class Backend { kSqlite, kPostgres };

std::string BackendName(const ::testing::TestParamInfo<Backend>& info) {
  return info.param == Backend::kSqlite ? "sqlite" : "postgresql";
}

// A fresh store of one backend: a new SQLite file, or a new database in the test program's
// PostgreSQL cluster.
class JobStoreFixture {
 protected:
  void SetUpStore(Backend backend) {
    backend_ = backend;
    if (backend == Backend::kSqlite) {
      path_ = MakeTempDir("db") + "/jobs.db";
    } else {
      absl::StatusOr<gan::testing::PostgresCluster*> cluster =
          gan::testing::SharedPostgresCluster();
      if (absl::IsNotFound(cluster.status())) GTEST_SKIP() << cluster.status();
      ASSERT_TRUE(cluster.ok()) << cluster.status();
      cluster_ = *cluster;
      GAN_ASSERT_OK_AND_ASSIGN(url_, cluster_->CreateDatabase());
      database_ = url_.substr(url_.rfind('/') + 1);
    }
    ASSERT_NO_FATAL_FAILURE(Reopen());
  }

  absl::StatusOr<std::unique_ptr<JobStore>> OpenStore() {
    if (backend_ == Backend::kSqlite) {
      GAN_ASSIGN_OR_RETURN(std::unique_ptr<SqliteJobStore> store, SqliteJobStore::Open(path_));
      return std::unique_ptr<JobStore>(std::move(store));
    }
    GAN_ASSIGN_OR_RETURN(std::unique_ptr<PostgresJobStore> store,
                         PostgresJobStore::Open(url_, absl::Seconds(5)));
    return std::unique_ptr<JobStore>(std::move(store));
  }

  // Closes the store and opens it again, as a restarted server would.
  void Reopen() {
    store_.reset();
    GAN_ASSERT_OK_AND_ASSIGN(store_, OpenStore());
  }

  // Runs SQL through another connection, as another process would.
  void ExecSql(const std::string& sql) {
    if (backend_ == Backend::kSqlite) {
      ExecOnFile(path_, sql);
    } else {
      EXPECT_THAT(cluster_->Exec(database_, sql), IsOk());
    }
  }

  // From now on every UPDATE that sets `column` of jobs fails with "injected failure", until
  // StopFailingUpdates.
  void FailUpdatesOf(const std::string& column) {
    if (backend_ == Backend::kSqlite) {
      ExecSql("CREATE TRIGGER fail_update BEFORE UPDATE OF " + column +
              " ON jobs BEGIN SELECT RAISE(ABORT, 'injected failure'); END;");
    } else {
      ExecSql(
          "CREATE FUNCTION gan_fail() RETURNS trigger LANGUAGE plpgsql AS "
          "$$ BEGIN RAISE EXCEPTION 'injected failure'; END $$;"
          "CREATE TRIGGER fail_update BEFORE UPDATE OF " +
          column + " ON jobs FOR EACH ROW EXECUTE FUNCTION gan_fail();");
    }
  }
  void StopFailingUpdates() {
    ExecSql(backend_ == Backend::kSqlite ? "DROP TRIGGER fail_update;"
                                         : "DROP TRIGGER fail_update ON jobs;");
  }

  Backend backend_ = Backend::kSqlite;
  std::string path_;      // SQLite
  std::string url_;       // PostgreSQL
  std::string database_;  // PostgreSQL
  gan::testing::PostgresCluster* cluster_ = nullptr;
  std::unique_ptr<JobStore> store_;
};

class JobStoreTest : public JobStoreFixture, public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override { SetUpStore(GetParam()); }

  // Creates `n` jobs without request ids and returns their ids in creation order.
  std::vector<std::string> CreateJobs(int n) {
    std::vector<std::string> ids;
    for (int i = 0; i < n; ++i) {
      absl::StatusOr<JobRecord> job =
          store_->CreateJob("", MakeSpec("seed", 10 + i), 10 + i, nullptr);
      EXPECT_THAT(job, IsOk());
      if (job.ok()) ids.push_back(job->job_id);
    }
    return ids;
  }

  // Every job in `state`, page by page with `page_size`; also counts the pages.
  std::vector<std::string> ListAll(gan::v1::JobState state, int page_size, int* pages) {
    std::vector<std::string> ids;
    std::string token;
    *pages = 0;
    do {
      std::string next;
      absl::StatusOr<std::vector<JobRecord>> page =
          store_->ListJobs(state, page_size, token, &next);
      EXPECT_THAT(page, IsOk());
      if (!page.ok()) break;
      ++*pages;
      for (const JobRecord& job : *page) ids.push_back(job.job_id);
      token = next;
    } while (!token.empty() && *pages < 1000);
    return ids;
  }
};

INSTANTIATE_TEST_SUITE_P(Backends, JobStoreTest,
                         ::testing::Values(Backend::kSqlite, Backend::kPostgres), BackendName);

class SqliteJobStoreTest : public JobStoreFixture, public ::testing::Test {
 protected:
  void SetUp() override { SetUpStore(Backend::kSqlite); }
};

class PostgresJobStoreTest : public JobStoreFixture, public ::testing::Test {
 protected:
  void SetUp() override { SetUpStore(Backend::kPostgres); }
};

TEST_P(JobStoreTest, CreateThenGetReturnsTheStoredJob) {
  const absl::Time before = absl::Now();
  bool created = false;
  GAN_ASSERT_OK_AND_ASSIGN(JobRecord job,
                           store_->CreateJob("", MakeSpec("seed", 100), 100, &created));
  EXPECT_TRUE(created);
  EXPECT_THAT(job.job_id, MatchesRegex("job-[0-9a-f]{16}"));
  EXPECT_EQ(job.state, gan::v1::JOB_STATE_QUEUED);
  EXPECT_GE(job.create_time, before - absl::Milliseconds(1));
  EXPECT_EQ(job.start_time, absl::InfinitePast());
  EXPECT_EQ(job.end_time, absl::InfinitePast());

  GAN_ASSERT_OK_AND_ASSIGN(JobRecord got, store_->GetJob(job.job_id));
  EXPECT_EQ(got.job_id, job.job_id);
  EXPECT_EQ(got.request_id, "");
  EXPECT_TRUE(SameSpec(got.spec, MakeSpec("seed", 100))) << got.spec.DebugString();
  EXPECT_EQ(got.state, gan::v1::JOB_STATE_QUEUED);
  EXPECT_EQ(got.create_time, job.create_time);
  EXPECT_EQ(got.start_time, absl::InfinitePast());
  EXPECT_EQ(got.end_time, absl::InfinitePast());
  EXPECT_EQ(got.step, 0);
  EXPECT_EQ(got.total_steps, 100);
  EXPECT_EQ(got.latest_checkpoint_step, 0);
  EXPECT_EQ(got.error_message, "");

  EXPECT_THAT(store_->GetJob("job-0123456789abcdef"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("job-0123456789abcdef")));
}

TEST_P(JobStoreTest, ListJobsPagesNewestFirst) {
  std::vector<std::string> created = CreateJobs(5);
  ASSERT_EQ(created.size(), 5u);
  const std::vector<std::string> newest_first(created.rbegin(), created.rend());

  int pages = 0;
  EXPECT_EQ(ListAll(gan::v1::JOB_STATE_UNSPECIFIED, 1, &pages), newest_first);
  EXPECT_EQ(pages, 5);
  EXPECT_EQ(ListAll(gan::v1::JOB_STATE_UNSPECIFIED, 2, &pages), newest_first);
  EXPECT_EQ(pages, 3);
  EXPECT_EQ(ListAll(gan::v1::JOB_STATE_UNSPECIFIED, 100, &pages), newest_first);
  EXPECT_EQ(pages, 1);
  // A page that ends exactly at the last job says so: no token to an empty page.
  EXPECT_EQ(ListAll(gan::v1::JOB_STATE_UNSPECIFIED, 5, &pages), newest_first);
  EXPECT_EQ(pages, 1);
  // 0 means the default page size.
  std::string next = "unchanged";
  GAN_ASSERT_OK_AND_ASSIGN(std::vector<JobRecord> all,
                           store_->ListJobs(gan::v1::JOB_STATE_UNSPECIFIED, 0, "", &next));
  EXPECT_EQ(Ids(all), newest_first);
  EXPECT_EQ(next, "");
}

TEST_P(JobStoreTest, ListJobsPagesStayStableWhenJobsAreCreatedBetweenCalls) {
  std::vector<std::string> created = CreateJobs(3);
  std::string next;
  GAN_ASSERT_OK_AND_ASSIGN(std::vector<JobRecord> first,
                           store_->ListJobs(gan::v1::JOB_STATE_UNSPECIFIED, 2, "", &next));
  EXPECT_THAT(Ids(first), ElementsAre(created[2], created[1]));
  ASSERT_FALSE(next.empty());
  CreateJobs(2);  // newer: they belong before the first page, not in the next one
  GAN_ASSERT_OK_AND_ASSIGN(std::vector<JobRecord> second,
                           store_->ListJobs(gan::v1::JOB_STATE_UNSPECIFIED, 2, next, &next));
  EXPECT_THAT(Ids(second), ElementsAre(created[0]));
  EXPECT_EQ(next, "");
}

TEST_P(JobStoreTest, ListJobsAndCountJobsFilterByState) {
  std::vector<std::string> ids = CreateJobs(5);
  ASSERT_EQ(ids.size(), 5u);
  ASSERT_THAT(store_->MarkRunning(ids[1]), IsOk());
  ASSERT_THAT(store_->MarkRunning(ids[3]), IsOk());
  ASSERT_THAT(store_->MarkFinished(ids[4], gan::v1::JOB_STATE_CANCELLED, ""), IsOk());

  int pages = 0;
  EXPECT_THAT(ListAll(gan::v1::JOB_STATE_RUNNING, 1, &pages), ElementsAre(ids[3], ids[1]));
  EXPECT_EQ(pages, 2);
  EXPECT_THAT(ListAll(gan::v1::JOB_STATE_QUEUED, 100, &pages), ElementsAre(ids[2], ids[0]));
  EXPECT_THAT(ListAll(gan::v1::JOB_STATE_CANCELLED, 100, &pages), ElementsAre(ids[4]));
  EXPECT_THAT(ListAll(gan::v1::JOB_STATE_SUCCEEDED, 100, &pages), ::testing::IsEmpty());

  EXPECT_EQ(store_->CountJobs(gan::v1::JOB_STATE_UNSPECIFIED).value(), 5);
  EXPECT_EQ(store_->CountJobs(gan::v1::JOB_STATE_QUEUED).value(), 2);
  EXPECT_EQ(store_->CountJobs(gan::v1::JOB_STATE_RUNNING).value(), 2);
  EXPECT_EQ(store_->CountJobs(gan::v1::JOB_STATE_CANCELLED).value(), 1);
  EXPECT_EQ(store_->CountJobs(gan::v1::JOB_STATE_FAILED).value(), 0);
}

TEST_P(JobStoreTest, ListJobsRejectsInvalidTokensAndPageSizes) {
  CreateJobs(3);
  std::string next;
  for (const std::string& token :
       {std::string("not base64!"), absl::WebSafeBase64Escape("nonsense"),
        absl::WebSafeBase64Escape("1:0:notanumber:job-1"), absl::WebSafeBase64Escape("1:0:5:"),
        absl::WebSafeBase64Escape("9:0:5:job-1")}) {
    EXPECT_THAT(store_->ListJobs(gan::v1::JOB_STATE_UNSPECIFIED, 2, token, &next),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("page_token")))
        << token;
  }
  // A token is tied to the filter it was issued under.
  GAN_ASSERT_OK_AND_ASSIGN(std::vector<JobRecord> page,
                           store_->ListJobs(gan::v1::JOB_STATE_QUEUED, 1, "", &next));
  ASSERT_FALSE(next.empty());
  EXPECT_THAT(store_->ListJobs(gan::v1::JOB_STATE_RUNNING, 1, next, &next),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("JOB_STATE_QUEUED")));
  EXPECT_THAT(store_->ListJobs(gan::v1::JOB_STATE_UNSPECIFIED, -1, "", &next),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("page_size")));
}

TEST_P(JobStoreTest, RequestIdReturnsTheFirstJob) {
  bool created = false;
  GAN_ASSERT_OK_AND_ASSIGN(JobRecord first,
                           store_->CreateJob("req-1", MakeSpec("seed", 100), 100, &created));
  EXPECT_TRUE(created);
  EXPECT_EQ(first.request_id, "req-1");

  // Same request id, different spec: nothing is inserted, ALREADY_EXISTS names the first job.
  EXPECT_THAT(store_->CreateJob("req-1", MakeSpec("tf-dcgan", 5), 5, &created),
              StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr(first.job_id)));
  // Same request id and spec: nothing is inserted, the first job comes back, without asking
  // whether a new job may be admitted.
  GAN_ASSERT_OK_AND_ASSIGN(
      JobRecord again,
      store_->CreateJob(
          {"", "req-1", MakeSpec("seed", 100), 100},
          [](int64_t, int64_t) { return absl::ResourceExhaustedError("queue full"); }, &created));
  EXPECT_FALSE(created);
  EXPECT_EQ(again.job_id, first.job_id);
  EXPECT_EQ(again.request_id, "req-1");
  EXPECT_TRUE(SameSpec(again.spec, MakeSpec("seed", 100)));
  EXPECT_EQ(again.total_steps, 100);
  EXPECT_EQ(store_->CountJobs(gan::v1::JOB_STATE_UNSPECIFIED).value(), 1);

  // Still the same job after it ended.
  ASSERT_THAT(store_->MarkFinished(first.job_id, gan::v1::JOB_STATE_CANCELLED, ""), IsOk());
  GAN_ASSERT_OK_AND_ASSIGN(JobRecord ended,
                           store_->CreateJob("req-1", MakeSpec("seed", 100), 100, &created));
  EXPECT_FALSE(created);
  EXPECT_EQ(ended.job_id, first.job_id);
  EXPECT_EQ(ended.state, gan::v1::JOB_STATE_CANCELLED);

  // Another request id, or none at all, creates a new job each time.
  GAN_ASSERT_OK_AND_ASSIGN(JobRecord other,
                           store_->CreateJob("req-2", MakeSpec("seed", 100), 100, &created));
  EXPECT_TRUE(created);
  EXPECT_NE(other.job_id, first.job_id);
  GAN_ASSERT_OK_AND_ASSIGN(JobRecord anon1, store_->CreateJob("", MakeSpec("seed", 1), 1, nullptr));
  GAN_ASSERT_OK_AND_ASSIGN(JobRecord anon2,
                           store_->CreateJob("", MakeSpec("seed", 1), 1, &created));
  EXPECT_TRUE(created);
  EXPECT_NE(anon1.job_id, anon2.job_id);
  EXPECT_EQ(store_->CountJobs(gan::v1::JOB_STATE_UNSPECIFIED).value(), 4);
}

TEST_P(JobStoreTest, StateTransitionsAndEndedJobsRefuseChanges) {
  GAN_ASSERT_OK_AND_ASSIGN(JobRecord job, store_->CreateJob("", MakeSpec("seed", 10), 10, nullptr));

  ASSERT_THAT(store_->MarkRunning(job.job_id), IsOk());
  GAN_ASSERT_OK_AND_ASSIGN(JobRecord running, store_->GetJob(job.job_id));
  EXPECT_EQ(running.state, gan::v1::JOB_STATE_RUNNING);
  EXPECT_NE(running.start_time, absl::InfinitePast());
  EXPECT_EQ(running.end_time, absl::InfinitePast());

  absl::SleepFor(absl::Milliseconds(2));
  ASSERT_THAT(store_->MarkRunning(job.job_id), IsOk());  // start_time is set the first time only
  GAN_ASSERT_OK_AND_ASSIGN(JobRecord still_running, store_->GetJob(job.job_id));
  EXPECT_EQ(still_running.start_time, running.start_time);

  ASSERT_THAT(store_->SetStep(job.job_id, 7), IsOk());
  ASSERT_THAT(
      store_->MarkFinished(job.job_id, gan::v1::JOB_STATE_FAILED, "dataset vanished; reinstall it"),
      IsOk());
  GAN_ASSERT_OK_AND_ASSIGN(JobRecord failed, store_->GetJob(job.job_id));
  EXPECT_EQ(failed.state, gan::v1::JOB_STATE_FAILED);
  EXPECT_EQ(failed.step, 7);
  EXPECT_EQ(failed.error_message, "dataset vanished; reinstall it");
  EXPECT_GE(failed.end_time, failed.start_time);

  EXPECT_THAT(store_->MarkFinished(job.job_id, gan::v1::JOB_STATE_CANCELLED, ""),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("JOB_STATE_FAILED")));
  EXPECT_THAT(store_->MarkRunning(job.job_id),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr(job.job_id)));
  EXPECT_THAT(store_->MarkResumed(job.job_id, 0),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr(job.job_id)));
  GAN_ASSERT_OK_AND_ASSIGN(JobRecord unchanged, store_->GetJob(job.job_id));
  EXPECT_EQ(unchanged.state, gan::v1::JOB_STATE_FAILED);
  EXPECT_EQ(unchanged.end_time, failed.end_time);
  EXPECT_EQ(unchanged.error_message, failed.error_message);

  // A queued job can be cancelled directly; it never started.
  GAN_ASSERT_OK_AND_ASSIGN(JobRecord queued,
                           store_->CreateJob("", MakeSpec("seed", 1), 1, nullptr));
  ASSERT_THAT(store_->MarkFinished(queued.job_id, gan::v1::JOB_STATE_CANCELLED, ""), IsOk());
  GAN_ASSERT_OK_AND_ASSIGN(JobRecord cancelled, store_->GetJob(queued.job_id));
  EXPECT_EQ(cancelled.state, gan::v1::JOB_STATE_CANCELLED);
  EXPECT_EQ(cancelled.start_time, absl::InfinitePast());
  EXPECT_NE(cancelled.end_time, absl::InfinitePast());

  EXPECT_THAT(store_->MarkFinished(queued.job_id, gan::v1::JOB_STATE_RUNNING, ""),
              StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
  for (absl::Status status :
       {store_->MarkRunning("job-nope"),
        store_->MarkFinished("job-nope", gan::v1::JOB_STATE_SUCCEEDED, ""),
        store_->SetStep("job-nope", 1), store_->MarkResumed("job-nope", 0),
        store_->RecordCheckpoint("job-nope", 5, "/x"), store_->DeleteCheckpointRow("job-nope", 5),
        store_->AppendMetric("job-nope", 0, StepEvent(0)).status(),
        store_->ReadMetrics("job-nope", 0, 0, 10).status(),
        store_->ListCheckpoints("job-nope").status()}) {
    EXPECT_THAT(status, StatusIs(absl::StatusCode::kNotFound, HasSubstr("job-nope")));
  }
}

TEST_P(JobStoreTest, CancelRacingFinishIsDecidedByTheFirstCommit) {
  for (int round = 0; round < 20; ++round) {
    GAN_ASSERT_OK_AND_ASSIGN(JobRecord job, store_->CreateJob("", MakeSpec("seed", 1), 1, nullptr));
    ASSERT_THAT(store_->MarkRunning(job.job_id), IsOk());
    absl::Status cancel, finish;
    std::thread canceller(
        [&] { cancel = store_->MarkFinished(job.job_id, gan::v1::JOB_STATE_CANCELLED, ""); });
    std::thread trainer(
        [&] { finish = store_->MarkFinished(job.job_id, gan::v1::JOB_STATE_SUCCEEDED, ""); });
    canceller.join();
    trainer.join();
    ASSERT_NE(cancel.ok(), finish.ok()) << cancel << " / " << finish;
    const absl::Status& loser = cancel.ok() ? finish : cancel;
    EXPECT_THAT(loser, StatusIs(absl::StatusCode::kFailedPrecondition, ::testing::_));
    GAN_ASSERT_OK_AND_ASSIGN(JobRecord ended, store_->GetJob(job.job_id));
    EXPECT_EQ(ended.state,
              cancel.ok() ? gan::v1::JOB_STATE_CANCELLED : gan::v1::JOB_STATE_SUCCEEDED);
  }
}

TEST_P(JobStoreTest, MetricsReadBackInSequenceOrderWithFilters) {
  GAN_ASSERT_OK_AND_ASSIGN(JobRecord job, store_->CreateJob("", MakeSpec("seed", 10), 10, nullptr));
  GAN_ASSERT_OK_AND_ASSIGN(JobRecord other,
                           store_->CreateJob("", MakeSpec("seed", 10), 10, nullptr));
  std::vector<int64_t> sequences;
  for (int64_t step = 0; step < 10; ++step) {
    GAN_ASSERT_OK_AND_ASSIGN(int64_t sequence,
                             store_->AppendMetric(job.job_id, step, StepEvent(step)));
    if (!sequences.empty()) {
      EXPECT_GT(sequence, sequences.back());
    }
    sequences.push_back(sequence);
    // Interleaved events of another job never show up in this job's history.
    ASSERT_THAT(store_->AppendMetric(other.job_id, step, StepEvent(100 + step)), IsOk());
  }

  GAN_ASSERT_OK_AND_ASSIGN(std::vector<MetricRow> all, store_->ReadMetrics(job.job_id, 0, 0, 100));
  ASSERT_EQ(all.size(), 10u);
  for (int64_t i = 0; i < 10; ++i) {
    EXPECT_EQ(all[i].sequence, sequences[i]);
    EXPECT_EQ(all[i].step, i);
    EXPECT_EQ(all[i].event.step().step(), i);
    EXPECT_FLOAT_EQ(all[i].event.step().d_loss(), 0.5f + i);
  }

  GAN_ASSERT_OK_AND_ASSIGN(std::vector<MetricRow> from_step_6,
                           store_->ReadMetrics(job.job_id, 6, 0, 100));
  EXPECT_THAT(Steps(from_step_6), ElementsAre(6, 7, 8, 9));
  GAN_ASSERT_OK_AND_ASSIGN(std::vector<MetricRow> after,
                           store_->ReadMetrics(job.job_id, 0, sequences[6], 100));
  EXPECT_THAT(Steps(after), ElementsAre(7, 8, 9));
  GAN_ASSERT_OK_AND_ASSIGN(std::vector<MetricRow> both,
                           store_->ReadMetrics(job.job_id, 3, sequences[1], 2));
  EXPECT_THAT(Steps(both), ElementsAre(3, 4));

  // Paging with after_sequence = the last sequence seen reads everything once.
  std::vector<int64_t> paged;
  int64_t last = 0;
  while (true) {
    GAN_ASSERT_OK_AND_ASSIGN(std::vector<MetricRow> page,
                             store_->ReadMetrics(job.job_id, 0, last, 3));
    if (page.empty()) break;
    for (const MetricRow& row : page) paged.push_back(row.step);
    last = page.back().sequence;
  }
  EXPECT_THAT(paged, ElementsAre(0, 1, 2, 3, 4, 5, 6, 7, 8, 9));

  EXPECT_THAT(store_->ReadMetrics(job.job_id, 0, 0, 0),
              StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
  // The finished event may follow MarkFinished.
  ASSERT_THAT(store_->MarkFinished(job.job_id, gan::v1::JOB_STATE_SUCCEEDED, ""), IsOk());
  gan::v1::MetricEvent finished;
  GAN_ASSERT_OK_AND_ASSIGN(JobRecord ended, store_->GetJob(job.job_id));
  *finished.mutable_finished() = ToProto(ended);
  GAN_ASSERT_OK_AND_ASSIGN(int64_t finished_sequence,
                           store_->AppendMetric(job.job_id, 9, finished));
  GAN_ASSERT_OK_AND_ASSIGN(std::vector<MetricRow> tail,
                           store_->ReadMetrics(job.job_id, 0, sequences.back(), 100));
  ASSERT_EQ(tail.size(), 1u);
  EXPECT_EQ(tail[0].sequence, finished_sequence);
  EXPECT_EQ(tail[0].event.finished().state(), gan::v1::JOB_STATE_SUCCEEDED);
}

TEST_P(JobStoreTest, CheckpointsUpdateTheJobAndKeepStepOrder) {
  GAN_ASSERT_OK_AND_ASSIGN(JobRecord job,
                           store_->CreateJob("", MakeSpec("seed", 100), 100, nullptr));
  ASSERT_THAT(store_->RecordCheckpoint(job.job_id, 20, "/ckpt/20"), IsOk());
  ASSERT_THAT(store_->RecordCheckpoint(job.job_id, 10, "/ckpt/10"), IsOk());
  ASSERT_THAT(store_->RecordCheckpoint(job.job_id, 30, "/ckpt/30"), IsOk());
  GAN_ASSERT_OK_AND_ASSIGN(JobRecord after, store_->GetJob(job.job_id));
  EXPECT_EQ(after.latest_checkpoint_step, 30);
  EXPECT_EQ(after.step, 30);

  GAN_ASSERT_OK_AND_ASSIGN(std::vector<CheckpointRow> rows, store_->ListCheckpoints(job.job_id));
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0].step, 10);
  EXPECT_EQ(rows[0].path, "/ckpt/10");
  EXPECT_EQ(rows[1].step, 20);
  EXPECT_EQ(rows[2].step, 30);
  EXPECT_EQ(rows[2].path, "/ckpt/30");

  // Recording the same step again (a job retrained after a resume) replaces the path.
  ASSERT_THAT(store_->RecordCheckpoint(job.job_id, 30, "/ckpt/30-again"), IsOk());
  GAN_ASSERT_OK_AND_ASSIGN(rows, store_->ListCheckpoints(job.job_id));
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[2].path, "/ckpt/30-again");

  // Retention removes the oldest; removing the newest falls back to the next newest.
  ASSERT_THAT(store_->DeleteCheckpointRow(job.job_id, 10), IsOk());
  GAN_ASSERT_OK_AND_ASSIGN(after, store_->GetJob(job.job_id));
  EXPECT_EQ(after.latest_checkpoint_step, 30);
  ASSERT_THAT(store_->DeleteCheckpointRow(job.job_id, 30), IsOk());
  GAN_ASSERT_OK_AND_ASSIGN(after, store_->GetJob(job.job_id));
  EXPECT_EQ(after.latest_checkpoint_step, 20);
  EXPECT_THAT(store_->DeleteCheckpointRow(job.job_id, 30),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("step 30")));
  EXPECT_THAT(store_->RecordCheckpoint(job.job_id, 0, "/ckpt/0"),
              StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
}

TEST_P(JobStoreTest, RecordCheckpointIsAllOrNothing) {
  GAN_ASSERT_OK_AND_ASSIGN(JobRecord job,
                           store_->CreateJob("", MakeSpec("seed", 100), 100, nullptr));
  ASSERT_THAT(store_->RecordCheckpoint(job.job_id, 10, "/ckpt/10"), IsOk());
  // Make the second statement of the transaction (the jobs update) fail after the checkpoint row
  // was inserted: the insert must be rolled back with it.
  FailUpdatesOf("latest_checkpoint_step");
  EXPECT_THAT(store_->RecordCheckpoint(job.job_id, 20, "/ckpt/20"),
              StatusIs(absl::StatusCode::kInternal, HasSubstr("injected failure")));
  GAN_ASSERT_OK_AND_ASSIGN(std::vector<CheckpointRow> rows, store_->ListCheckpoints(job.job_id));
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].step, 10);
  GAN_ASSERT_OK_AND_ASSIGN(JobRecord after, store_->GetJob(job.job_id));
  EXPECT_EQ(after.latest_checkpoint_step, 10);

  // The store keeps working after a rolled-back transaction.
  StopFailingUpdates();
  ASSERT_THAT(store_->RecordCheckpoint(job.job_id, 20, "/ckpt/20"), IsOk());
  GAN_ASSERT_OK_AND_ASSIGN(after, store_->GetJob(job.job_id));
  EXPECT_EQ(after.latest_checkpoint_step, 20);
  EXPECT_THAT(store_->CheckIntegrity(), IsOk());
}

TEST_P(JobStoreTest, MarkResumedDropsLaterHistoryAndAppendsTheResumedEvent) {
  GAN_ASSERT_OK_AND_ASSIGN(JobRecord job, store_->CreateJob("", MakeSpec("seed", 20), 20, nullptr));
  ASSERT_THAT(store_->MarkRunning(job.job_id), IsOk());
  int64_t last_sequence = 0;
  for (int64_t step = 0; step < 10; ++step) {
    GAN_ASSERT_OK_AND_ASSIGN(last_sequence,
                             store_->AppendMetric(job.job_id, step, StepEvent(step)));
    if (step + 1 == 4 || step + 1 == 8) {  // checkpoints after 4 and 8 completed steps
      ASSERT_THAT(
          store_->RecordCheckpoint(job.job_id, step + 1, "/ckpt/" + std::to_string(step + 1)),
          IsOk());
    }
  }
  ASSERT_THAT(store_->SetStep(job.job_id, 10), IsOk());

  // The server died after step 9; the checkpoint at step 8 holds 8 completed steps (0..7).
  ASSERT_THAT(store_->MarkResumed(job.job_id, 8), IsOk());
  GAN_ASSERT_OK_AND_ASSIGN(std::vector<MetricRow> history,
                           store_->ReadMetrics(job.job_id, 0, 0, 100));
  ASSERT_EQ(history.size(), 9u);
  EXPECT_THAT(Steps(history), ElementsAre(0, 1, 2, 3, 4, 5, 6, 7, 8));
  EXPECT_EQ(history.back().event.event_case(), gan::v1::MetricEvent::kResumedFromStep);
  EXPECT_EQ(history.back().event.resumed_from_step(), 8);
  // New sequence numbers never reuse those of deleted events: a reader that had seen step 9
  // still receives everything appended after the resume.
  EXPECT_GT(history.back().sequence, last_sequence);
  GAN_ASSERT_OK_AND_ASSIGN(std::vector<MetricRow> seen_by_old_reader,
                           store_->ReadMetrics(job.job_id, 0, last_sequence, 100));
  ASSERT_EQ(seen_by_old_reader.size(), 1u);
  EXPECT_EQ(seen_by_old_reader[0].event.resumed_from_step(), 8);

  GAN_ASSERT_OK_AND_ASSIGN(JobRecord resumed, store_->GetJob(job.job_id));
  EXPECT_EQ(resumed.state, gan::v1::JOB_STATE_RUNNING);
  EXPECT_EQ(resumed.step, 8);
  EXPECT_EQ(resumed.latest_checkpoint_step, 8);

  GAN_ASSERT_OK_AND_ASSIGN(int64_t next, store_->AppendMetric(job.job_id, 8, StepEvent(8)));
  EXPECT_GT(next, history.back().sequence);

  // The checkpoint at step 8 proves unreadable after another crash: resume from step 4 instead.
  ASSERT_THAT(store_->MarkResumed(job.job_id, 4), IsOk());
  GAN_ASSERT_OK_AND_ASSIGN(history, store_->ReadMetrics(job.job_id, 0, 0, 100));
  EXPECT_THAT(Steps(history), ElementsAre(0, 1, 2, 3, 4));
  EXPECT_EQ(history.back().event.resumed_from_step(), 4);
  GAN_ASSERT_OK_AND_ASSIGN(std::vector<CheckpointRow> rows, store_->ListCheckpoints(job.job_id));
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].step, 4);
  GAN_ASSERT_OK_AND_ASSIGN(resumed, store_->GetJob(job.job_id));
  EXPECT_EQ(resumed.step, 4);
  EXPECT_EQ(resumed.latest_checkpoint_step, 4);
}

TEST_P(JobStoreTest, MarkResumedIsAllOrNothing) {
  GAN_ASSERT_OK_AND_ASSIGN(JobRecord job, store_->CreateJob("", MakeSpec("seed", 20), 20, nullptr));
  ASSERT_THAT(store_->MarkRunning(job.job_id), IsOk());
  for (int64_t step = 0; step < 5; ++step) {
    ASSERT_THAT(store_->AppendMetric(job.job_id, step, StepEvent(step)), IsOk());
  }
  FailUpdatesOf("step");
  EXPECT_THAT(store_->MarkResumed(job.job_id, 2),
              StatusIs(absl::StatusCode::kInternal, HasSubstr("injected failure")));
  GAN_ASSERT_OK_AND_ASSIGN(std::vector<MetricRow> history,
                           store_->ReadMetrics(job.job_id, 0, 0, 100));
  EXPECT_THAT(Steps(history), ElementsAre(0, 1, 2, 3, 4));
}

TEST_P(JobStoreTest, JobsInStateListsOldestFirst) {
  std::vector<std::string> ids = CreateJobs(4);
  ASSERT_EQ(ids.size(), 4u);
  ASSERT_THAT(store_->MarkRunning(ids[2]), IsOk());
  ASSERT_THAT(store_->MarkRunning(ids[0]), IsOk());
  GAN_ASSERT_OK_AND_ASSIGN(std::vector<JobRecord> running,
                           store_->JobsInState(gan::v1::JOB_STATE_RUNNING));
  EXPECT_THAT(Ids(running), ElementsAre(ids[0], ids[2]));
  GAN_ASSERT_OK_AND_ASSIGN(std::vector<JobRecord> queued,
                           store_->JobsInState(gan::v1::JOB_STATE_QUEUED));
  EXPECT_THAT(Ids(queued), ElementsAre(ids[1], ids[3]));
}

TEST_P(JobStoreTest, DataSurvivesClosingAndReopening) {
  GAN_ASSERT_OK_AND_ASSIGN(JobRecord job,
                           store_->CreateJob("req-keep", MakeSpec("seed-dcgan", 50), 50, nullptr));
  ASSERT_THAT(store_->MarkRunning(job.job_id), IsOk());
  GAN_ASSERT_OK_AND_ASSIGN(int64_t sequence, store_->AppendMetric(job.job_id, 0, StepEvent(0)));
  ASSERT_THAT(store_->RecordCheckpoint(job.job_id, 10, "/ckpt/10"), IsOk());
  ASSERT_THAT(store_->SetStep(job.job_id, 12), IsOk());
  GAN_ASSERT_OK_AND_ASSIGN(JobRecord before, store_->GetJob(job.job_id));

  ASSERT_NO_FATAL_FAILURE(Reopen());
  EXPECT_THAT(store_->CheckIntegrity(), IsOk());

  GAN_ASSERT_OK_AND_ASSIGN(JobRecord after, store_->GetJob(job.job_id));
  EXPECT_EQ(after.request_id, "req-keep");
  EXPECT_TRUE(SameSpec(after.spec, MakeSpec("seed-dcgan", 50)));
  EXPECT_EQ(after.state, gan::v1::JOB_STATE_RUNNING);
  EXPECT_EQ(after.create_time, before.create_time);
  EXPECT_EQ(after.start_time, before.start_time);
  EXPECT_EQ(after.step, 12);
  EXPECT_EQ(after.total_steps, 50);
  EXPECT_EQ(after.latest_checkpoint_step, 10);
  GAN_ASSERT_OK_AND_ASSIGN(std::vector<MetricRow> history,
                           store_->ReadMetrics(job.job_id, 0, 0, 100));
  ASSERT_EQ(history.size(), 1u);
  EXPECT_EQ(history[0].sequence, sequence);
  GAN_ASSERT_OK_AND_ASSIGN(std::vector<CheckpointRow> rows, store_->ListCheckpoints(job.job_id));
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].path, "/ckpt/10");

  // The request id still deduplicates, and new rows continue the old orders.
  bool created = true;
  GAN_ASSERT_OK_AND_ASSIGN(JobRecord same,
                           store_->CreateJob("req-keep", MakeSpec("seed-dcgan", 50), 50, &created));
  EXPECT_FALSE(created);
  EXPECT_EQ(same.job_id, job.job_id);
  GAN_ASSERT_OK_AND_ASSIGN(JobRecord newer, store_->CreateJob("", MakeSpec("seed", 1), 1, nullptr));
  EXPECT_GT(newer.create_time, job.create_time);
  GAN_ASSERT_OK_AND_ASSIGN(int64_t next, store_->AppendMetric(job.job_id, 1, StepEvent(1)));
  EXPECT_GT(next, sequence);
}

TEST_F(SqliteJobStoreTest, CommittedDataSurvivesKillNine) {
  store_.reset();
  // The child commits, then dies without closing the database (its WAL is never checkpointed).
  EXPECT_EXIT(
      {
        auto store = SqliteJobStore::Open(path_);
        if (!store.ok()) _exit(1);
        absl::StatusOr<JobRecord> job =
            (*store)->CreateJob("req-crash", MakeSpec("seed", 10), 10, nullptr);
        if (!job.ok()) _exit(2);
        if (!(*store)->MarkRunning(job->job_id).ok()) _exit(3);
        if (!(*store)->AppendMetric(job->job_id, 0, StepEvent(0)).ok()) _exit(4);
        std::raise(SIGKILL);
      },
      ::testing::KilledBySignal(SIGKILL), "");

  GAN_ASSERT_OK_AND_ASSIGN(store_, SqliteJobStore::Open(path_));
  EXPECT_THAT(store_->CheckIntegrity(), IsOk());
  GAN_ASSERT_OK_AND_ASSIGN(std::vector<JobRecord> running,
                           store_->JobsInState(gan::v1::JOB_STATE_RUNNING));
  ASSERT_EQ(running.size(), 1u);
  EXPECT_EQ(running[0].request_id, "req-crash");
  GAN_ASSERT_OK_AND_ASSIGN(std::vector<MetricRow> history,
                           store_->ReadMetrics(running[0].job_id, 0, 0, 100));
  EXPECT_EQ(history.size(), 1u);
}

TEST_P(JobStoreTest, CheckIntegrityIsOk) {
  CreateJobs(3);
  EXPECT_THAT(store_->CheckIntegrity(), IsOk());
}

TEST_F(SqliteJobStoreTest, OpenRefusesANewerSchema) {
  store_.reset();
  ExecOnFile(path_, "PRAGMA user_version = 99;");
  EXPECT_THAT(SqliteJobStore::Open(path_),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("schema version 99")));
}

TEST_P(JobStoreTest, JobsBelongToTheirPrincipalAndRequestIdsAreScopedByIt) {
  bool created = false;
  auto admit_all = [](int64_t, int64_t) { return absl::OkStatus(); };
  GAN_ASSERT_OK_AND_ASSIGN(
      JobRecord alice,
      store_->CreateJob({"alice", "req", MakeSpec("seed", 10), 10}, admit_all, &created));
  EXPECT_TRUE(created);
  EXPECT_EQ(alice.principal, "alice");
  // Bob's same request id is his own job, not a retry of Alice's.
  GAN_ASSERT_OK_AND_ASSIGN(
      JobRecord bob,
      store_->CreateJob({"bob", "req", MakeSpec("seed", 20), 20}, admit_all, &created));
  EXPECT_TRUE(created);
  EXPECT_NE(bob.job_id, alice.job_id);
  GAN_ASSERT_OK_AND_ASSIGN(JobRecord read, store_->GetJob(bob.job_id));
  EXPECT_EQ(read.principal, "bob");
  EXPECT_EQ(ToProto(read).principal(), "bob");

  GAN_ASSERT_OK_AND_ASSIGN(
      std::vector<JobRecord> alices,
      store_->ListJobs(gan::v1::JOB_STATE_UNSPECIFIED, std::string("alice"), 0, "", nullptr));
  ASSERT_EQ(alices.size(), 1u);
  EXPECT_EQ(alices[0].job_id, alice.job_id);
  GAN_ASSERT_OK_AND_ASSIGN(std::vector<JobRecord> all,
                           store_->ListJobs(gan::v1::JOB_STATE_UNSPECIFIED, 0, "", nullptr));
  EXPECT_EQ(all.size(), 2u);

  // `admit` is told how many of the principal's jobs are queued or running.
  int64_t seen = -1;
  ASSERT_THAT(store_->MarkFinished(alice.job_id, gan::v1::JOB_STATE_CANCELLED, ""), IsOk());
  GAN_ASSERT_OK_AND_ASSIGN(JobRecord second, store_->CreateJob(
                                                 {"bob", "", MakeSpec("seed", 1), 1},
                                                 [&](int64_t active, int64_t) {
                                                   seen = active;
                                                   return absl::OkStatus();
                                                 },
                                                 &created));
  EXPECT_EQ(seen, 1);  // bob's first job; alice's ended one is not counted anyway
  EXPECT_THAT(store_->CreateJob(
                  {"bob", "", MakeSpec("seed", 1), 1},
                  [](int64_t active, int64_t) {
                    return active >= 2 ? absl::ResourceExhaustedError("quota") : absl::OkStatus();
                  },
                  &created),
              StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("quota")));
}

TEST_F(SqliteJobStoreTest, AVersionOneDatabaseIsMigratedWithItsJobsAndHistory) {
  store_.reset();
  std::remove(path_.c_str());
  // Version 1's schema as it shipped, with one job, one event and one checkpoint.
  ExecOnFile(path_, R"sql(
PRAGMA journal_mode = WAL;
CREATE TABLE jobs (job_id TEXT PRIMARY KEY NOT NULL, request_id TEXT UNIQUE, spec BLOB NOT NULL,
  state INTEGER NOT NULL, create_time_us INTEGER NOT NULL, start_time_us INTEGER,
  end_time_us INTEGER, step INTEGER NOT NULL DEFAULT 0, total_steps INTEGER NOT NULL DEFAULT 0,
  latest_checkpoint_step INTEGER NOT NULL DEFAULT 0, error_message TEXT NOT NULL DEFAULT '');
CREATE INDEX jobs_by_create_time ON jobs (create_time_us, job_id);
CREATE TABLE metric_events (sequence INTEGER PRIMARY KEY AUTOINCREMENT,
  job_id TEXT NOT NULL REFERENCES jobs (job_id) ON DELETE CASCADE, step INTEGER NOT NULL,
  event BLOB NOT NULL);
CREATE INDEX metric_events_by_job ON metric_events (job_id, sequence);
CREATE TABLE checkpoints (job_id TEXT NOT NULL REFERENCES jobs (job_id) ON DELETE CASCADE,
  step INTEGER NOT NULL, path TEXT NOT NULL, PRIMARY KEY (job_id, step)) WITHOUT ROWID;
PRAGMA user_version = 1;
INSERT INTO jobs (job_id, request_id, spec, state, create_time_us, step, total_steps,
  latest_checkpoint_step) VALUES ('job-00000000000000aa', 'old-req', x'', 2, 1000, 5, 10, 5);
INSERT INTO metric_events (job_id, step, event) VALUES ('job-00000000000000aa', 4, x'');
INSERT INTO checkpoints (job_id, step, path) VALUES ('job-00000000000000aa', 5, '/c/step-5');
)sql");
  GAN_ASSERT_OK_AND_ASSIGN(store_, SqliteJobStore::Open(path_));
  EXPECT_THAT(store_->CheckIntegrity(), IsOk());
  GAN_ASSERT_OK_AND_ASSIGN(JobRecord job, store_->GetJob("job-00000000000000aa"));
  EXPECT_EQ(job.principal, "");
  EXPECT_EQ(job.request_id, "old-req");
  EXPECT_EQ(job.state, gan::v1::JOB_STATE_RUNNING);
  EXPECT_EQ(job.step, 5);
  GAN_ASSERT_OK_AND_ASSIGN(std::vector<MetricRow> history,
                           store_->ReadMetrics(job.job_id, 0, 0, 10));
  EXPECT_EQ(history.size(), 1u);
  GAN_ASSERT_OK_AND_ASSIGN(std::vector<CheckpointRow> checkpoints,
                           store_->ListCheckpoints(job.job_id));
  ASSERT_EQ(checkpoints.size(), 1u);
  EXPECT_EQ(checkpoints[0].path, "/c/step-5");
  // The retry of the old request id still finds its job; foreign keys are back on (deleting
  // through the store still cascades nothing unexpected and new rows need their job).
  bool created = true;
  GAN_ASSERT_OK_AND_ASSIGN(JobRecord retry, store_->CreateJob("old-req", job.spec, 10, &created));
  EXPECT_FALSE(created);
  EXPECT_EQ(retry.job_id, job.job_id);
  EXPECT_THAT(store_->AppendMetric("job-ffffffffffffffff", 0, gan::v1::MetricEvent()),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("job-ffffffffffffffff")));
  // Opening again does not migrate twice.
  store_.reset();
  GAN_ASSERT_OK_AND_ASSIGN(store_, SqliteJobStore::Open(path_));
  EXPECT_THAT(store_->GetJob(job.job_id), IsOk());
}

TEST_F(SqliteJobStoreTest, OpenFailsInAMissingDirectory) {
  EXPECT_THAT(SqliteJobStore::Open(MakeTempDir("empty") + "/missing/jobs.db"),
              StatusIs(absl::StatusCode::kInternal, HasSubstr("missing/jobs.db")));
}

TEST_P(JobStoreTest, ConcurrentAppendsGetUniqueMonotonicSequences) {
  GAN_ASSERT_OK_AND_ASSIGN(JobRecord job,
                           store_->CreateJob("", MakeSpec("seed", 100), 100, nullptr));
  constexpr int kThreads = 4;
  constexpr int kPerThread = 50;
  std::vector<std::vector<int64_t>> sequences(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        const int64_t step = t * 1000 + i;
        absl::StatusOr<int64_t> sequence = store_->AppendMetric(job.job_id, step, StepEvent(step));
        EXPECT_THAT(sequence, IsOk());
        if (sequence.ok()) sequences[t].push_back(*sequence);
      }
    });
  }
  for (std::thread& thread : threads) thread.join();

  std::vector<int64_t> all;
  for (const std::vector<int64_t>& mine : sequences) {
    ASSERT_EQ(mine.size(), static_cast<size_t>(kPerThread));
    for (size_t i = 1; i < mine.size(); ++i) EXPECT_GT(mine[i], mine[i - 1]);
    all.insert(all.end(), mine.begin(), mine.end());
  }
  std::sort(all.begin(), all.end());
  EXPECT_EQ(std::adjacent_find(all.begin(), all.end()), all.end()) << "duplicate sequence";

  GAN_ASSERT_OK_AND_ASSIGN(std::vector<MetricRow> history,
                           store_->ReadMetrics(job.job_id, 0, 0, 1000));
  ASSERT_EQ(history.size(), all.size());
  std::vector<int> next_index(kThreads, 0);
  for (size_t i = 0; i < history.size(); ++i) {
    EXPECT_EQ(history[i].sequence, all[i]);
    // Each thread's events appear in the order it appended them.
    const int t = static_cast<int>(history[i].step / 1000);
    ASSERT_GE(t, 0);
    ASSERT_LT(t, kThreads);
    EXPECT_EQ(history[i].step % 1000, next_index[t]++);
    EXPECT_EQ(history[i].event.step().step(), history[i].step);
  }
}

TEST_F(PostgresJobStoreTest, OpenRefusesANewerSchemaAndKeepsTheVersionInItsTable) {
  store_.reset();
  ExecSql("UPDATE schema_version SET version = 99;");
  EXPECT_THAT(OpenStore(),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("schema version 99")));
  ExecSql("UPDATE schema_version SET version = 1;");
  ASSERT_NO_FATAL_FAILURE(Reopen());
  EXPECT_THAT(store_->CheckIntegrity(), IsOk());
}

TEST_F(PostgresJobStoreTest, AnUnreachableServerIsUnavailableWithoutThePassword) {
  // A port nothing listens on (the cluster's own, plus one, is free or refuses; either way not a
  // PostgreSQL that knows this password).
  const std::string url = "postgresql://postgres:s3cret-pw@127.0.0.1:1/none";
  absl::StatusOr<std::unique_ptr<PostgresJobStore>> store =
      PostgresJobStore::Open(url, absl::Seconds(2));
  EXPECT_THAT(store, StatusIs(absl::StatusCode::kUnavailable, HasSubstr("PostgreSQL")));
  EXPECT_THAT(std::string(store.status().message()), Not(HasSubstr("s3cret-pw")));
}

TEST(JobStoreUrlTest, ParsesBothBackendsAndRedactsPasswords) {
  GAN_ASSERT_OK_AND_ASSIGN(JobStoreUrl def, ParseJobStoreUrl("", "/data"));
  EXPECT_EQ(def.backend, JobStoreUrl::Backend::kSqlite);
  EXPECT_EQ(def.sqlite_path, "/data/jobs.sqlite");
  GAN_ASSERT_OK_AND_ASSIGN(JobStoreUrl sqlite, ParseJobStoreUrl("sqlite:///x/y.db", "/data"));
  EXPECT_EQ(sqlite.sqlite_path, "/x/y.db");
  GAN_ASSERT_OK_AND_ASSIGN(JobStoreUrl pg,
                           ParseJobStoreUrl("postgresql://u:pw@db:5433/gan", "/data"));
  EXPECT_EQ(pg.backend, JobStoreUrl::Backend::kPostgres);
  EXPECT_EQ(pg.postgres_url, "postgresql://u:pw@db:5433/gan");
  GAN_ASSERT_OK_AND_ASSIGN(JobStoreUrl short_scheme, ParseJobStoreUrl("postgres://db/gan", ""));
  EXPECT_EQ(short_scheme.backend, JobStoreUrl::Backend::kPostgres);
  EXPECT_THAT(ParseJobStoreUrl("sqlite://", "/data"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--job_store")));
  absl::StatusOr<JobStoreUrl> unknown = ParseJobStoreUrl("mysql://u:hunter2@h/db", "/data");
  EXPECT_THAT(unknown, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("mysql://u:***@h")));
  EXPECT_THAT(std::string(unknown.status().message()), Not(HasSubstr("hunter2")));

  EXPECT_EQ(RedactJobStoreUrl("postgresql://u:pw@db:5433/gan"), "postgresql://u:***@db:5433/gan");
  EXPECT_EQ(RedactJobStoreUrl("postgresql://u@db/gan"), "postgresql://u@db/gan");
  EXPECT_EQ(RedactJobStoreUrl("postgresql://u:p@ss@db/gan"), "postgresql://u:***@db/gan");
  EXPECT_EQ(RedactJobStoreUrl("postgresql://db/gan?user=u&Password=pw&sslmode=require"),
            "postgresql://db/gan?user=u&Password=***&sslmode=require");
  EXPECT_EQ(RedactJobStoreUrl("sqlite:///a/b.db"), "sqlite:///a/b.db");
}

TEST_P(JobStoreTest, ClaimsTakeQueuedJobsOldestFirstAndEachOnce) {
  std::vector<std::string> ids = CreateJobs(3);
  ASSERT_EQ(ids.size(), 3u);
  std::vector<std::string> claimed;
  for (const char* replica : {"a", "b", "a"}) {
    GAN_ASSERT_OK_AND_ASSIGN(std::optional<ClaimedJob> claim,
                             store_->ClaimJob(replica, absl::Seconds(60)));
    ASSERT_TRUE(claim.has_value());
    EXPECT_FALSE(claim->resume);
    EXPECT_EQ(claim->lease.replica, replica);
    EXPECT_EQ(claim->lease.epoch, 1);
    EXPECT_EQ(claim->record.replica, replica);
    EXPECT_GT(claim->record.lease_expire_time, absl::Now() + absl::Seconds(50));
    claimed.push_back(claim->record.job_id);
  }
  EXPECT_EQ(claimed, ids);
  GAN_ASSERT_OK_AND_ASSIGN(std::optional<ClaimedJob> none,
                           store_->ClaimJob("c", absl::Seconds(60)));
  EXPECT_FALSE(none.has_value());
  GAN_ASSERT_OK_AND_ASSIGN(JobRecord record, store_->GetJob(ids[1]));
  EXPECT_EQ(ToProto(record).replica(), "b");
  EXPECT_THAT(store_->ClaimJob("", absl::Seconds(1)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("replica")));
}

TEST_P(JobStoreTest, AnExpiredLeaseIsTakenOverAndTheOldHolderWritesNothing) {
  GAN_ASSERT_OK_AND_ASSIGN(JobRecord job, store_->CreateJob("", MakeSpec("seed", 20), 20, nullptr));
  GAN_ASSERT_OK_AND_ASSIGN(std::optional<ClaimedJob> first,
                           store_->ClaimJob("old", absl::Milliseconds(300)));
  ASSERT_TRUE(first.has_value());
  const Lease old_lease = first->lease;
  ASSERT_THAT(store_->MarkRunning(job.job_id, old_lease), IsOk());
  for (int64_t step = 0; step < 6; ++step) {
    ASSERT_THAT(store_->AppendMetric(job.job_id, step, StepEvent(step), old_lease), IsOk());
    ASSERT_THAT(store_->SetStep(job.job_id, step + 1, old_lease), IsOk());
    if (step + 1 == 4) {
      ASSERT_THAT(store_->RecordCheckpoint(job.job_id, 4, "/ckpt/4", old_lease), IsOk());
    }
  }
  // Still held: nobody else can claim it.
  GAN_ASSERT_OK_AND_ASSIGN(std::optional<ClaimedJob> early,
                           store_->ClaimJob("new", absl::Seconds(60)));
  EXPECT_FALSE(early.has_value());

  absl::SleepFor(absl::Milliseconds(400));  // the old holder pauses past its lease
  GAN_ASSERT_OK_AND_ASSIGN(std::optional<ClaimedJob> second,
                           store_->ClaimJob("new", absl::Seconds(60)));
  ASSERT_TRUE(second.has_value());
  EXPECT_TRUE(second->resume);
  EXPECT_EQ(second->lease.epoch, old_lease.epoch + 1);
  ASSERT_THAT(store_->MarkResumed(job.job_id, 4, second->lease), IsOk());

  // Every write of the old holder is refused and changes nothing.
  for (const absl::Status& status :
       {store_->SetStep(job.job_id, 9, old_lease),
        store_->AppendMetric(job.job_id, 6, StepEvent(6), old_lease).status(),
        store_->RecordCheckpoint(job.job_id, 6, "/ckpt/6", old_lease),
        store_->DeleteCheckpointRow(job.job_id, 4, old_lease),
        store_->MarkRunning(job.job_id, old_lease), store_->MarkResumed(job.job_id, 0, old_lease),
        store_->MarkFinished(job.job_id, gan::v1::JOB_STATE_SUCCEEDED, "", old_lease),
        store_->RenewLease(job.job_id, old_lease, absl::Seconds(60)).status(),
        store_->ReleaseLease(job.job_id, old_lease)}) {
    EXPECT_THAT(status, StatusIs(absl::StatusCode::kAborted, HasSubstr("lease lost"))) << status;
  }
  GAN_ASSERT_OK_AND_ASSIGN(JobRecord after, store_->GetJob(job.job_id));
  EXPECT_EQ(after.state, gan::v1::JOB_STATE_RUNNING);
  EXPECT_EQ(after.step, 4);
  EXPECT_EQ(after.replica, "new");
  GAN_ASSERT_OK_AND_ASSIGN(std::vector<MetricRow> history,
                           store_->ReadMetrics(job.job_id, 0, 0, 100));
  EXPECT_THAT(Steps(history), ElementsAre(0, 1, 2, 3, 4));
  GAN_ASSERT_OK_AND_ASSIGN(std::vector<CheckpointRow> rows, store_->ListCheckpoints(job.job_id));
  ASSERT_EQ(rows.size(), 1u);

  // The new holder's writes go through.
  ASSERT_THAT(store_->AppendMetric(job.job_id, 4, StepEvent(4), second->lease), IsOk());
  ASSERT_THAT(store_->MarkFinished(job.job_id, gan::v1::JOB_STATE_SUCCEEDED, "", second->lease),
              IsOk());
  GAN_ASSERT_OK_AND_ASSIGN(after, store_->GetJob(job.job_id));
  EXPECT_EQ(after.state, gan::v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(after.lease_expire_time, absl::InfinitePast());
  EXPECT_THAT(store_->RenewLease(job.job_id, second->lease, absl::Seconds(60)),
              StatusIs(absl::StatusCode::kAborted, HasSubstr("lease lost")));
}

TEST_P(JobStoreTest, RenewalKeepsTheLeaseAndCarriesCancelRequests) {
  GAN_ASSERT_OK_AND_ASSIGN(JobRecord job, store_->CreateJob("", MakeSpec("seed", 20), 20, nullptr));
  GAN_ASSERT_OK_AND_ASSIGN(std::optional<ClaimedJob> claim,
                           store_->ClaimJob("a", absl::Milliseconds(400)));
  ASSERT_TRUE(claim.has_value());
  ASSERT_THAT(store_->MarkRunning(job.job_id, claim->lease), IsOk());
  for (int i = 0; i < 4; ++i) {
    absl::SleepFor(absl::Milliseconds(150));
    GAN_ASSERT_OK_AND_ASSIGN(JobRecord renewed,
                             store_->RenewLease(job.job_id, claim->lease, absl::Milliseconds(400)));
    EXPECT_FALSE(renewed.cancel_requested);
    GAN_ASSERT_OK_AND_ASSIGN(std::optional<ClaimedJob> other,
                             store_->ClaimJob("b", absl::Seconds(60)));
    EXPECT_FALSE(other.has_value()) << "claimed a renewed lease after " << i;
  }
  // A cancel of a running job is a request for its holder, seen at the next renewal.
  GAN_ASSERT_OK_AND_ASSIGN(JobRecord requested, store_->RequestCancel(job.job_id));
  EXPECT_EQ(requested.state, gan::v1::JOB_STATE_RUNNING);
  EXPECT_TRUE(requested.cancel_requested);
  GAN_ASSERT_OK_AND_ASSIGN(JobRecord renewed,
                           store_->RenewLease(job.job_id, claim->lease, absl::Seconds(60)));
  EXPECT_TRUE(renewed.cancel_requested);

  // Released: another replica may claim it at once, and resumes it.
  ASSERT_THAT(store_->ReleaseLease(job.job_id, claim->lease), IsOk());
  GAN_ASSERT_OK_AND_ASSIGN(std::optional<ClaimedJob> taken,
                           store_->ClaimJob("b", absl::Seconds(60)));
  ASSERT_TRUE(taken.has_value());
  EXPECT_TRUE(taken->resume);
  EXPECT_TRUE(taken->record.cancel_requested);

  // A queued job nobody holds is cancelled at once.
  GAN_ASSERT_OK_AND_ASSIGN(JobRecord queued,
                           store_->CreateJob("", MakeSpec("seed", 1), 1, nullptr));
  GAN_ASSERT_OK_AND_ASSIGN(JobRecord cancelled, store_->RequestCancel(queued.job_id));
  EXPECT_EQ(cancelled.state, gan::v1::JOB_STATE_CANCELLED);
  EXPECT_THAT(store_->RequestCancel(queued.job_id),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("already ended")));
  EXPECT_THAT(store_->RequestCancel("job-nope"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("job-nope")));
}

TEST_P(JobStoreTest, ConcurrentClaimsFromTwoConnectionsNeverShareAJob) {
  constexpr int kJobs = 24;
  ASSERT_EQ(CreateJobs(kJobs).size(), static_cast<size_t>(kJobs));
  GAN_ASSERT_OK_AND_ASSIGN(std::unique_ptr<JobStore> second, OpenStore());
  std::vector<std::string> claimed[2];
  auto claim_all = [&](JobStore* store, const std::string& replica, std::vector<std::string>* out) {
    while (true) {
      absl::StatusOr<std::optional<ClaimedJob>> claim = store->ClaimJob(replica, absl::Seconds(60));
      ASSERT_THAT(claim, IsOk());
      if (!claim->has_value()) return;
      out->push_back((*claim)->record.job_id);
    }
  };
  std::thread a([&] { claim_all(store_.get(), "a", &claimed[0]); });
  std::thread b([&] { claim_all(second.get(), "b", &claimed[1]); });
  a.join();
  b.join();
  std::vector<std::string> all = claimed[0];
  all.insert(all.end(), claimed[1].begin(), claimed[1].end());
  std::sort(all.begin(), all.end());
  EXPECT_EQ(all.size(), static_cast<size_t>(kJobs));
  EXPECT_EQ(std::adjacent_find(all.begin(), all.end()), all.end()) << "a job claimed twice";
}

// What a trainer writes per step (its event, then its progress, both fenced) bounds how fast a
// job can train: on either backend one step's writes must stay far below a training step. The
// measured rate is recorded as the property steps_per_second (docs/deploying.md quotes it).
TEST_P(JobStoreTest, OneStepsFencedWritesStayFast) {
  GAN_ASSERT_OK_AND_ASSIGN(JobRecord job,
                           store_->CreateJob("", MakeSpec("seed", 1000), 1000, nullptr));
  GAN_ASSERT_OK_AND_ASSIGN(std::optional<ClaimedJob> claim,
                           store_->ClaimJob("bench", absl::Seconds(60)));
  ASSERT_TRUE(claim.has_value());
  ASSERT_THAT(store_->MarkRunning(job.job_id, claim->lease), IsOk());
  constexpr int kSteps = 300;
  const absl::Time start = absl::Now();
  for (int64_t step = 0; step < kSteps; ++step) {
    ASSERT_THAT(store_->AppendMetric(job.job_id, step, StepEvent(step), claim->lease), IsOk());
    ASSERT_THAT(store_->SetStep(job.job_id, step + 1, claim->lease), IsOk());
  }
  const absl::Duration elapsed = absl::Now() - start;
  const double per_second = kSteps / absl::ToDoubleSeconds(elapsed);
  RecordProperty("steps_per_second", static_cast<int>(per_second));
  EXPECT_LT(elapsed / kSteps, absl::Milliseconds(250)) << per_second << " steps/s";
}

TEST(JobStoreToProtoTest, FillsEveryFieldAndLeavesUnsetTimesUnset) {
  JobRecord record;
  record.job_id = "job-00000000000000aa";
  record.request_id = "req";
  record.spec = MakeSpec("seed", 5);
  record.state = gan::v1::JOB_STATE_RUNNING;
  record.create_time = absl::FromUnixMicros(1'700'000'000'123'456);
  record.start_time = absl::FromUnixMicros(1'700'000'001'000'001);
  record.step = 3;
  record.total_steps = 5;
  record.latest_checkpoint_step = 2;
  record.error_message = "none";

  gan::v1::Job job = ToProto(record);
  EXPECT_EQ(job.job_id(), record.job_id);
  EXPECT_EQ(job.request_id(), "req");
  EXPECT_TRUE(SameSpec(job.spec(), record.spec));
  EXPECT_EQ(job.state(), gan::v1::JOB_STATE_RUNNING);
  EXPECT_EQ(job.create_time().seconds(), 1'700'000'000);
  EXPECT_EQ(job.create_time().nanos(), 123'456'000);
  EXPECT_EQ(job.start_time().seconds(), 1'700'000'001);
  EXPECT_EQ(job.start_time().nanos(), 1'000);
  EXPECT_FALSE(job.has_end_time());
  EXPECT_EQ(job.step(), 3);
  EXPECT_EQ(job.total_steps(), 5);
  EXPECT_EQ(job.latest_checkpoint_step(), 2);
  EXPECT_EQ(job.error_message(), "none");
}

}  // namespace
}  // namespace gan::server
