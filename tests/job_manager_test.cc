// JobManager exercised directly, without gRPC: queueing and its bound, cancel (queued and
// running), recovery after a restart (also from damaged checkpoints), and store errors (which
// must never lose a job).

#include "server/job_manager.h"

#include <atomic>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/job_state.h"
#include "server/server.h"
#include "server/sqlite_job_store.h"
#include "tests/test_jobs.h"
#include "tests/test_util.h"

namespace gan::server {
namespace {

using ::gan::testing::IsOk;
using ::gan::testing::LongJob;
using ::gan::testing::MakeTempDir;
using ::gan::testing::StatusIs;
using ::gan::testing::TinyJob;
using ::testing::AllOf;
using ::testing::HasSubstr;

// A real SQLite store whose chosen methods fail with INTERNAL while `failures_left` > 0.
class FaultyJobStore final : public JobStore {
 public:
  explicit FaultyJobStore(std::unique_ptr<JobStore> store) : store_(std::move(store)) {}

  std::atomic<int> fail_get_job{0};
  std::atomic<int> fail_mark_running{0};
  std::atomic<int> fail_create_job{0};
  std::atomic<int> fail_claim_job{0};

  using JobStore::CreateJob;
  absl::StatusOr<JobRecord> CreateJob(const NewJob& job, AdmitFn admit, bool* created) override {
    if (Take(fail_create_job)) return Injected();
    return store_->CreateJob(job, admit, created);
  }
  absl::StatusOr<JobRecord> GetJob(const std::string& job_id) override {
    if (Take(fail_get_job)) return Injected();
    return store_->GetJob(job_id);
  }
  using JobStore::ListJobs;
  absl::StatusOr<std::vector<JobRecord>> ListJobs(gan::v1::JobState state,
                                                  const std::optional<std::string>& principal,
                                                  int page_size, const std::string& page_token,
                                                  std::string* next) override {
    return store_->ListJobs(state, principal, page_size, page_token, next);
  }
  absl::StatusOr<int64_t> CountJobs(gan::v1::JobState state) override {
    return store_->CountJobs(state);
  }
  using JobStore::MarkRunning;
  absl::Status MarkRunning(const std::string& job_id, const Lease& lease) override {
    if (Take(fail_mark_running)) return Injected();
    return store_->MarkRunning(job_id, lease);
  }
  using JobStore::MarkFinished;
  absl::Status MarkFinished(const std::string& job_id, gan::v1::JobState state,
                            const std::string& message, const Lease& lease) override {
    return store_->MarkFinished(job_id, state, message, lease);
  }
  using JobStore::SetStep;
  absl::Status SetStep(const std::string& job_id, int64_t step, const Lease& lease) override {
    return store_->SetStep(job_id, step, lease);
  }
  using JobStore::AppendMetric;
  absl::StatusOr<int64_t> AppendMetric(const std::string& job_id, int64_t step,
                                       const gan::v1::MetricEvent& event,
                                       const Lease& lease) override {
    return store_->AppendMetric(job_id, step, event, lease);
  }
  absl::StatusOr<std::vector<MetricRow>> ReadMetrics(const std::string& job_id, int64_t from_step,
                                                     int64_t after_sequence, int limit) override {
    return store_->ReadMetrics(job_id, from_step, after_sequence, limit);
  }
  using JobStore::RecordCheckpoint;
  absl::Status RecordCheckpoint(const std::string& job_id, int64_t step, const std::string& path,
                                const Lease& lease) override {
    return store_->RecordCheckpoint(job_id, step, path, lease);
  }
  absl::StatusOr<std::vector<CheckpointRow>> ListCheckpoints(const std::string& job_id) override {
    return store_->ListCheckpoints(job_id);
  }
  using JobStore::DeleteCheckpointRow;
  absl::Status DeleteCheckpointRow(const std::string& job_id, int64_t step,
                                   const Lease& lease) override {
    return store_->DeleteCheckpointRow(job_id, step, lease);
  }
  using JobStore::MarkResumed;
  absl::Status MarkResumed(const std::string& job_id, int64_t from_step,
                           const Lease& lease) override {
    return store_->MarkResumed(job_id, from_step, lease);
  }
  absl::StatusOr<std::vector<JobRecord>> JobsInState(gan::v1::JobState state) override {
    return store_->JobsInState(state);
  }
  absl::Status CheckIntegrity() override { return store_->CheckIntegrity(); }
  absl::StatusOr<std::optional<ClaimedJob>> ClaimJob(const std::string& replica,
                                                     absl::Duration lease) override {
    if (Take(fail_claim_job)) return Injected();
    return store_->ClaimJob(replica, lease);
  }
  absl::StatusOr<JobRecord> RenewLease(const std::string& job_id, const Lease& lease,
                                       absl::Duration duration) override {
    return store_->RenewLease(job_id, lease, duration);
  }
  absl::Status ReleaseLease(const std::string& job_id, const Lease& lease) override {
    return store_->ReleaseLease(job_id, lease);
  }
  absl::Status ReleaseAllLeases() override { return store_->ReleaseAllLeases(); }
  absl::StatusOr<JobRecord> RequestCancel(const std::string& job_id) override {
    return store_->RequestCancel(job_id);
  }
  bool shared() const override { return store_->shared(); }

 private:
  static bool Take(std::atomic<int>& counter) {
    int left = counter.load();
    while (left > 0) {
      if (counter.compare_exchange_weak(left, left - 1)) return true;
    }
    return false;
  }
  static absl::Status Injected() { return absl::InternalError("injected store failure"); }

  std::unique_ptr<JobStore> store_;
};

class JobManagerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir(::testing::UnitTest::GetInstance()->current_test_info()->name());
    OpenStore();
  }
  void TearDown() override {
    manager_.reset();
    store_.reset();
  }

  void OpenStore() {
    auto sqlite = SqliteJobStore::Open(dir_ + "/jobs.sqlite");
    ASSERT_TRUE(sqlite.ok()) << sqlite.status();
    store_ = std::make_unique<FaultyJobStore>(*std::move(sqlite));
  }

  // A manager with the server's defaults but for the given queue bound, one training thread.
  void StartManager(int max_queued_jobs = 64) {
    Options options;
    options.data_dir = dir_;
    options.max_queued_jobs = max_queued_jobs;
    options.threads_per_job = 1;
    manager_ =
        std::make_unique<JobManager>(store_.get(), &datasets_, JobManagerOptionsFrom(options));
    ASSERT_THAT(manager_->Start(), IsOk());
  }

  // Polls the job until `done` holds (30 s at most); injected store failures are retried.
  absl::StatusOr<gan::v1::Job> WaitFor(const std::string& job_id,
                                       bool (*done)(const gan::v1::Job&)) {
    const absl::Time deadline = absl::Now() + absl::Seconds(30);
    while (true) {
      absl::StatusOr<gan::v1::Job> job = manager_->Get(job_id);
      const bool injected = !job.ok() && absl::StrContains(job.status().message(), "injected");
      if (!job.ok() && !injected) return job;
      if (job.ok() && done(*job)) return job;
      if (absl::Now() > deadline) {
        return absl::DeadlineExceededError("job " + job_id + " is " +
                                           (job.ok() ? job->ShortDebugString() : "unreadable"));
      }
      absl::SleepFor(absl::Milliseconds(10));
    }
  }
  static bool Ended(const gan::v1::Job& job) { return IsTerminal(job.state()); }
  static bool Trained(const gan::v1::Job& job) { return job.step() >= 1; }

  std::string dir_;
  DatasetRegistry datasets_{"/nonexistent"};
  std::unique_ptr<FaultyJobStore> store_;
  std::unique_ptr<JobManager> manager_;
};

TEST_F(JobManagerTest, JobsQueueBehindTheRunningOneAndAllFinish) {
  StartManager();
  GAN_ASSERT_OK_AND_ASSIGN(const gan::v1::Job first, manager_->Submit("", TinyJob(30)));
  GAN_ASSERT_OK_AND_ASSIGN(const gan::v1::Job second, manager_->Submit("", TinyJob(20)));
  GAN_ASSERT_OK_AND_ASSIGN(const gan::v1::Job third, manager_->Submit("", TinyJob(10)));
  EXPECT_EQ(third.state(), gan::v1::JOB_STATE_QUEUED);
  for (const gan::v1::Job& job : {first, second, third}) {
    GAN_ASSERT_OK_AND_ASSIGN(const gan::v1::Job done, WaitFor(job.job_id(), Ended));
    EXPECT_EQ(done.state(), gan::v1::JOB_STATE_SUCCEEDED) << done.ShortDebugString();
    EXPECT_EQ(done.step(), job.total_steps());
  }
  // One worker: the first job ended before the second started, and so on.
  GAN_ASSERT_OK_AND_ASSIGN(const gan::v1::Job a, manager_->Get(first.job_id()));
  GAN_ASSERT_OK_AND_ASSIGN(const gan::v1::Job b, manager_->Get(second.job_id()));
  EXPECT_LE(a.end_time().seconds() * 1'000'000'000LL + a.end_time().nanos(),
            b.start_time().seconds() * 1'000'000'000LL + b.start_time().nanos());
}

TEST_F(JobManagerTest, AWithdrawnEventCallbackIsNeverCalled) {
  StartManager();
  // A queued job behind a long one stores no event for a while: a stream that ends meanwhile
  // withdraws its callback instead of leaving it to the job's next event.
  gan::v1::JobSpec long_job = TinyJob(1'000'000);
  GAN_ASSERT_OK_AND_ASSIGN(const gan::v1::Job running, manager_->Submit("", long_job));
  GAN_ASSERT_OK_AND_ASSIGN(const gan::v1::Job queued, manager_->Submit("", TinyJob(3)));
  std::atomic<int> withdrawn_calls{0}, kept_calls{0};
  const uint64_t withdrawn =
      manager_->NotifyOnNextEvent(queued.job_id(), [&] { ++withdrawn_calls; });
  manager_->NotifyOnNextEvent(queued.job_id(), [&] { ++kept_calls; });
  manager_->CancelNotify(queued.job_id(), withdrawn);
  manager_->CancelNotify(queued.job_id(), withdrawn);  // twice: harmless
  GAN_ASSERT_OK_AND_ASSIGN(const gan::v1::Job cancelled, manager_->Cancel(running.job_id()));
  GAN_ASSERT_OK_AND_ASSIGN(const gan::v1::Job done, WaitFor(queued.job_id(), Ended));
  EXPECT_EQ(done.state(), gan::v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(withdrawn_calls.load(), 0);
  EXPECT_EQ(kept_calls.load(), 1);
  (void)cancelled;
}

TEST_F(JobManagerTest, AFullQueueIsResourceExhaustedButARetryGetsItsJob) {
  StartManager(/*max_queued_jobs=*/1);
  GAN_ASSERT_OK_AND_ASSIGN(const gan::v1::Job running, manager_->Submit("", LongJob()));
  ASSERT_THAT(WaitFor(running.job_id(), Trained).status(), IsOk());
  GAN_ASSERT_OK_AND_ASSIGN(const gan::v1::Job queued, manager_->Submit("retry-me", LongJob()));
  EXPECT_THAT(manager_->Submit("", LongJob()),
              StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("--max_queued_jobs")));
  GAN_ASSERT_OK_AND_ASSIGN(const gan::v1::Job again, manager_->Submit("retry-me", LongJob()));
  EXPECT_EQ(again.job_id(), queued.job_id());
  EXPECT_THAT(manager_->Submit("retry-me", TinyJob(5)),
              StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr(queued.job_id())));
  ASSERT_THAT(manager_->Cancel(queued.job_id()).status(), IsOk());
  ASSERT_THAT(manager_->Cancel(running.job_id()).status(), IsOk());
}

TEST_F(JobManagerTest, CancelNeverWaitsForAStep) {
  StartManager();
  GAN_ASSERT_OK_AND_ASSIGN(const gan::v1::Job running, manager_->Submit("", LongJob()));
  GAN_ASSERT_OK_AND_ASSIGN(const gan::v1::Job queued, manager_->Submit("", LongJob()));
  ASSERT_THAT(WaitFor(running.job_id(), Trained).status(), IsOk());

  GAN_ASSERT_OK_AND_ASSIGN(const gan::v1::Job cancelled_queued, manager_->Cancel(queued.job_id()));
  EXPECT_EQ(cancelled_queued.state(), gan::v1::JOB_STATE_CANCELLED);

  GAN_ASSERT_OK_AND_ASSIGN(const gan::v1::Job requested, manager_->Cancel(running.job_id()));
  EXPECT_EQ(requested.state(), gan::v1::JOB_STATE_RUNNING);
  GAN_ASSERT_OK_AND_ASSIGN(const gan::v1::Job ended, WaitFor(running.job_id(), Ended));
  EXPECT_EQ(ended.state(), gan::v1::JOB_STATE_CANCELLED);
  EXPECT_GT(ended.latest_checkpoint_step(), 0) << "a cancelled job keeps a checkpoint";
  EXPECT_THAT(manager_->Cancel(running.job_id()),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("already ended")));
}

TEST_F(JobManagerTest, ARestartResumesTheRunningJobFromItsCheckpoint) {
  StartManager();
  gan::v1::JobSpec spec = TinyJob(400);
  spec.set_checkpoint_every(50);
  GAN_ASSERT_OK_AND_ASSIGN(const gan::v1::Job job, manager_->Submit("", spec));
  ASSERT_THAT(WaitFor(job.job_id(), [](const gan::v1::Job& j) { return j.step() >= 60; }).status(),
              IsOk());
  manager_->Shutdown();  // the job checkpoints after its current step and stays RUNNING
  GAN_ASSERT_OK_AND_ASSIGN(const gan::v1::Job paused, manager_->Get(job.job_id()));
  ASSERT_EQ(paused.state(), gan::v1::JOB_STATE_RUNNING);
  const int64_t paused_at = paused.latest_checkpoint_step();
  ASSERT_GT(paused_at, 0);

  manager_.reset();
  store_.reset();
  OpenStore();
  StartManager();
  GAN_ASSERT_OK_AND_ASSIGN(const gan::v1::Job done, WaitFor(job.job_id(), Ended));
  EXPECT_EQ(done.state(), gan::v1::JOB_STATE_SUCCEEDED);
  // Every step exactly once, and the resumption recorded where it happened.
  GAN_ASSERT_OK_AND_ASSIGN(std::vector<MetricRow> rows,
                           manager_->ReadEvents(job.job_id(), 0, 0, 1000));
  std::vector<int64_t> steps;
  int resumed = 0;
  for (const MetricRow& row : rows) {
    if (row.event.has_step()) steps.push_back(row.event.step().step());
    if (row.event.has_resumed_from_step()) {
      ++resumed;
      EXPECT_EQ(row.event.resumed_from_step(), paused_at);
    }
  }
  EXPECT_EQ(resumed, 1);
  ASSERT_EQ(steps.size(), 400u);
  for (int64_t i = 0; i < 400; ++i) EXPECT_EQ(steps[i], i);
}

TEST_F(JobManagerTest, AStoreFailureAtStartRetriesTheJobInsteadOfLosingIt) {
  StartManager();
  // The worker's first reads and its MarkRunning fail; the job must still run to the end.
  store_->fail_get_job = 2;
  store_->fail_mark_running = 2;
  GAN_ASSERT_OK_AND_ASSIGN(const gan::v1::Job job, manager_->Submit("", TinyJob(5)));
  GAN_ASSERT_OK_AND_ASSIGN(const gan::v1::Job done, WaitFor(job.job_id(), Ended));
  EXPECT_EQ(done.state(), gan::v1::JOB_STATE_SUCCEEDED) << done.ShortDebugString();
  EXPECT_EQ(done.step(), 5);
}

TEST_F(JobManagerTest, AStoreFailureAtSubmissionChangesNothing) {
  StartManager();
  store_->fail_create_job = 1;
  EXPECT_THAT(manager_->Submit("req", TinyJob(5)),
              StatusIs(absl::StatusCode::kInternal, HasSubstr("injected")));
  gan::v1::ListJobsRequest all;
  GAN_ASSERT_OK_AND_ASSIGN(const gan::v1::ListJobsResponse listed, manager_->List(all));
  EXPECT_EQ(listed.jobs_size(), 0);
  // The same request id works once the store does.
  GAN_ASSERT_OK_AND_ASSIGN(const gan::v1::Job job, manager_->Submit("req", TinyJob(5)));
  GAN_ASSERT_OK_AND_ASSIGN(const gan::v1::Job done, WaitFor(job.job_id(), Ended));
  EXPECT_EQ(done.state(), gan::v1::JOB_STATE_SUCCEEDED);
}

TEST_F(JobManagerTest, BadSpecsAreRefusedBeforeAnythingIsStored) {
  StartManager();
  gan::v1::JobSpec spec = TinyJob(5);
  spec.set_steps(0);
  EXPECT_THAT(manager_->Submit("", spec),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("steps")));
  spec = TinyJob(5);
  spec.set_dataset("no-such-dataset");
  EXPECT_THAT(manager_->Submit("", spec),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("no-such-dataset")));
  gan::v1::ListJobsRequest all;
  GAN_ASSERT_OK_AND_ASSIGN(const gan::v1::ListJobsResponse listed, manager_->List(all));
  EXPECT_EQ(listed.jobs_size(), 0);
}

// Pauses a job of TinyJob(400) with a checkpoint every 50 steps once it passed step 110 (a
// shutdown writes a checkpoint at the step it stops after), and returns its checkpoint rows, at
// least two.
std::vector<CheckpointRow> PauseWithCheckpoints(JobManager* manager, FaultyJobStore* store,
                                                const std::string& job_id) {
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  while (absl::Now() < deadline) {
    absl::StatusOr<gan::v1::Job> job = manager->Get(job_id);
    if (job.ok() && job->step() > 110) break;
    absl::SleepFor(absl::Milliseconds(10));
  }
  manager->Shutdown();
  absl::StatusOr<std::vector<CheckpointRow>> rows = store->ListCheckpoints(job_id);
  EXPECT_THAT(rows.status(), IsOk());
  if (!rows.ok()) return {};
  EXPECT_GE(rows->size(), 2u);
  return *rows;
}

void Truncate(const std::string& path) {
  std::filesystem::resize_file(path, std::filesystem::file_size(path) / 3);
}

TEST_F(JobManagerTest, ADamagedNewestCheckpointIsSetAsideAndTheJobResumesFromThePreviousOne) {
  StartManager();
  gan::v1::JobSpec spec = TinyJob(400);
  spec.set_checkpoint_every(50);
  GAN_ASSERT_OK_AND_ASSIGN(const gan::v1::Job job, manager_->Submit("", spec));
  const std::vector<CheckpointRow> rows =
      PauseWithCheckpoints(manager_.get(), store_.get(), job.job_id());
  ASSERT_GE(rows.size(), 2u);
  const CheckpointRow newest = rows.back(), previous = rows[rows.size() - 2];
  Truncate(newest.path);

  manager_.reset();
  store_.reset();
  OpenStore();
  StartManager();
  GAN_ASSERT_OK_AND_ASSIGN(const gan::v1::Job done, WaitFor(job.job_id(), Ended));
  EXPECT_EQ(done.state(), gan::v1::JOB_STATE_SUCCEEDED) << done.error_message();
  EXPECT_EQ(done.latest_checkpoint_step(), 400);

  // Every step exactly once: the steps after the previous checkpoint were trained again.
  GAN_ASSERT_OK_AND_ASSIGN(std::vector<MetricRow> events,
                           manager_->ReadEvents(job.job_id(), 0, 0, 1000));
  std::vector<int64_t> steps, resumed_from;
  for (const MetricRow& row : events) {
    if (row.event.has_step()) steps.push_back(row.event.step().step());
    if (row.event.has_resumed_from_step()) resumed_from.push_back(row.event.resumed_from_step());
  }
  EXPECT_EQ(resumed_from, std::vector<int64_t>{previous.step});
  ASSERT_EQ(steps.size(), 400u);
  for (int64_t i = 0; i < 400; ++i) EXPECT_EQ(steps[i], i);

  // The damaged file is kept for inspection; no checkpoint row names a file that is gone.
  EXPECT_TRUE(std::filesystem::exists(newest.path + ".corrupt")) << newest.path;
  GAN_ASSERT_OK_AND_ASSIGN(const std::vector<CheckpointRow> after,
                           store_->ListCheckpoints(job.job_id()));
  for (const CheckpointRow& row : after) {
    EXPECT_TRUE(std::filesystem::exists(row.path)) << row.path;
  }
}

TEST_F(JobManagerTest, NoIntactCheckpointFailsTheJobNamingTheFilesAndLeavesNoRowsToThem) {
  StartManager();
  gan::v1::JobSpec spec = TinyJob(400);
  spec.set_checkpoint_every(50);
  GAN_ASSERT_OK_AND_ASSIGN(const gan::v1::Job job, manager_->Submit("", spec));
  const std::vector<CheckpointRow> rows =
      PauseWithCheckpoints(manager_.get(), store_.get(), job.job_id());
  ASSERT_GE(rows.size(), 2u);
  for (const CheckpointRow& row : rows) Truncate(row.path);

  manager_.reset();
  store_.reset();
  OpenStore();
  StartManager();
  GAN_ASSERT_OK_AND_ASSIGN(const gan::v1::Job done, WaitFor(job.job_id(), Ended));
  EXPECT_EQ(done.state(), gan::v1::JOB_STATE_FAILED);
  EXPECT_THAT(done.error_message(), HasSubstr("no intact checkpoint"));
  for (const CheckpointRow& row : rows) {
    const std::string name = std::filesystem::path(row.path).filename().string();
    EXPECT_THAT(done.error_message(), HasSubstr(name + " as " + name + ".corrupt ("));
    EXPECT_TRUE(std::filesystem::exists(row.path + ".corrupt")) << row.path;
  }
  // Score, SampleImages and ExportModel find no checkpoint rather than a file that is gone.
  EXPECT_EQ(done.latest_checkpoint_step(), 0);
  GAN_ASSERT_OK_AND_ASSIGN(const std::vector<CheckpointRow> after,
                           store_->ListCheckpoints(job.job_id()));
  EXPECT_TRUE(after.empty());
  EXPECT_THAT(manager_->CheckpointPath(job.job_id(), 0),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("no checkpoint")));
}

}  // namespace
}  // namespace gan::server
