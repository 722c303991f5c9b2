// gan-server replicas on one PostgreSQL job store and one data directory: every test starts a
// PostgreSQL cluster of its own (tests/postgres_cluster.h; skipped when no PostgreSQL server is
// installed) and real gan-server processes with short leases, and talks to them over gRPC.
// What they assert: jobs run exactly once whichever replica they were submitted to; a replica
// killed with SIGKILL loses its job to another within the lease plus a few seconds, and the
// job's history keeps every step exactly once; a paused replica that lost its lease writes
// nothing when it wakes; every replica serves every read (streams of jobs trained elsewhere,
// Score); and PostgreSQL stopping and starting again during a job.

#include <signal.h>

#include <algorithm>
#include <future>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gan/v1/service.grpc.pb.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tests/child_process.h"
#include "tests/grpc_test_util.h"
#include "tests/postgres_cluster.h"
#include "tests/test_jobs.h"
#include "tests/test_util.h"

namespace gan::server {
namespace {

using ::gan::testing::GanServer;
using ::gan::testing::IsOk;
using ::gan::testing::MakeTempDir;
using ::gan::testing::PostgresCluster;
using ::gan::testing::StartGanServer;
using ::gan::testing::TinyJob;
using gan::v1::Job;
using gan::v1::MetricEvent;

constexpr absl::Duration kRpcDeadline = absl::Seconds(20);
constexpr int kLeaseSeconds = 2;
constexpr absl::Duration kJobTimeout = absl::Seconds(180);

bool Ended(const Job& job) {
  return job.state() == gan::v1::JOB_STATE_SUCCEEDED || job.state() == gan::v1::JOB_STATE_FAILED ||
         job.state() == gan::v1::JOB_STATE_CANCELLED;
}

// The calls these tests make, against one replica.
class Replica {
 public:
  Replica(std::string id, GanServer server)
      : id_(std::move(id)),
        server_(std::move(server)),
        channel_(grpc::CreateChannel(server_.address(), grpc::InsecureChannelCredentials())),
        training_(gan::v1::TrainingService::NewStub(channel_)),
        scoring_(gan::v1::ScoringService::NewStub(channel_)) {}

  const std::string& id() const { return id_; }
  gan::testing::ChildProcess& process() { return *server_.process; }

  absl::StatusOr<Job> Submit(const gan::v1::JobSpec& spec) {
    gan::v1::SubmitJobRequest request;
    *request.mutable_spec() = spec;
    return Unary(&gan::v1::TrainingService::Stub::SubmitJob, training_.get(), request);
  }
  absl::StatusOr<Job> Get(const std::string& job_id) {
    gan::v1::GetJobRequest request;
    request.set_job_id(job_id);
    return Unary(&gan::v1::TrainingService::Stub::GetJob, training_.get(), request);
  }
  absl::StatusOr<Job> Cancel(const std::string& job_id) {
    gan::v1::CancelJobRequest request;
    request.set_job_id(job_id);
    return Unary(&gan::v1::TrainingService::Stub::CancelJob, training_.get(), request);
  }
  absl::StatusOr<gan::v1::ScoreResponse> Score(const std::string& job_id) {
    gan::v1::ScoreRequest request;
    request.set_job_id(job_id);
    for (int64_t d : {2, 28, 28, 1}) request.add_shape(d);
    std::string pixels(2 * 784, '\0');
    for (size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<char>(i * 7 % 256);
    request.set_uint8_pixels(pixels);
    return Unary(&gan::v1::ScoringService::Stub::Score, scoring_.get(), request);
  }
  // The server's overall grpc.health.v1 status (1 SERVING, 2 NOT_SERVING).
  absl::StatusOr<int> Health() { return CheckServerHealth(channel_, absl::Now() + kRpcDeadline); }
  // Polls Health until it is `want` or `timeout` passes; returns the last status seen.
  absl::StatusOr<int> WaitForHealth(int want, absl::Duration timeout) {
    const absl::Time deadline = absl::Now() + timeout;
    while (true) {
      absl::StatusOr<int> health = Health();
      if ((health.ok() && *health == want) || absl::Now() > deadline) return health;
      absl::SleepFor(absl::Milliseconds(50));
    }
  }

  // The job's whole stream from step 0 until the server ends it.
  std::vector<MetricEvent> Stream(const std::string& job_id, absl::Status* status) {
    gan::v1::StreamMetricsRequest request;
    request.set_job_id(job_id);
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + kJobTimeout));
    auto reader = training_->StreamMetrics(&context, request);
    std::vector<MetricEvent> events;
    MetricEvent event;
    while (reader->Read(&event)) events.push_back(event);
    *status = ToAbsl(reader->Finish());
    return events;
  }

  absl::StatusOr<Job> WaitFor(const std::string& job_id,
                              const std::function<bool(const Job&)>& done,
                              absl::Duration timeout = kJobTimeout) {
    const absl::Time deadline = absl::Now() + timeout;
    while (true) {
      absl::StatusOr<Job> job = Get(job_id);
      if (job.ok() && done(*job)) return job;
      if (absl::Now() > deadline) {
        return absl::DeadlineExceededError(
            absl::StrCat("job ", job_id, " via ", id_, ": ",
                         job.ok() ? job->ShortDebugString() : job.status().ToString()));
      }
      absl::SleepFor(absl::Milliseconds(20));
    }
  }

 private:
  template <typename Stub, typename Request, typename Response>
  static absl::StatusOr<Response> Unary(grpc::Status (Stub::*method)(grpc::ClientContext*,
                                                                     const Request&, Response*),
                                        Stub* stub, const Request& request) {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + kRpcDeadline));
    Response response;
    const grpc::Status status = (stub->*method)(&context, request, &response);
    if (!status.ok()) return ToAbsl(status);
    return response;
  }

  std::string id_;
  GanServer server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<gan::v1::TrainingService::Stub> training_;
  std::unique_ptr<gan::v1::ScoringService::Stub> scoring_;
};

// Step events' steps in stream order, and the number of resumed_from_step markers.
struct History {
  std::vector<int64_t> steps;
  int resumes = 0;
  bool finished_succeeded = false;
};

History Summarize(const std::vector<MetricEvent>& events) {
  History history;
  for (const MetricEvent& event : events) {
    if (event.has_step()) history.steps.push_back(event.step().step());
    if (event.has_resumed_from_step()) ++history.resumes;
    if (event.has_finished()) {
      history.finished_succeeded = event.finished().state() == gan::v1::JOB_STATE_SUCCEEDED;
    }
  }
  return history;
}

std::vector<int64_t> Range(int64_t n) {
  std::vector<int64_t> steps(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) steps[static_cast<size_t>(i)] = i;
  return steps;
}

// A tiny job long enough to be caught mid-way: `steps` MLP steps with a checkpoint every 20.
gan::v1::JobSpec SlowTinyJob(int64_t steps) {
  gan::v1::JobSpec spec = TinyJob(steps);
  spec.set_checkpoint_every(20);
  return spec;
}

class ServerReplicasTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<PostgresCluster*> cluster = gan::testing::SharedPostgresCluster();
    if (absl::IsNotFound(cluster.status())) GTEST_SKIP() << cluster.status();
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    cluster_ = *cluster;
    GAN_ASSERT_OK_AND_ASSIGN(url_, cluster_->CreateDatabase());
    data_dir_ = MakeTempDir("data");
  }

  // Starts replica "r<i>" for each i in [0, n).
  void StartReplicas(int n) {
    for (int i = 0; i < n; ++i) {
      const std::string id = absl::StrCat("r", i);
      absl::StatusOr<GanServer> server =
          StartGanServer({{"--data_dir", data_dir_},
                          {"--job_store", url_},
                          {"--replica_id", id},
                          {"--lease_seconds", std::to_string(kLeaseSeconds)},
                          {"--store_poll_millis", "200"},
                          {"--metrics_listen", ""},
                          {"--max_concurrent_jobs", "1"}},
                         absl::Seconds(30));
      ASSERT_TRUE(server.ok()) << server.status();
      replicas_.push_back(std::make_unique<Replica>(id, *std::move(server)));
    }
  }

  Replica* ById(const std::string& id) {
    for (auto& replica : replicas_) {
      if (replica->id() == id) return replica.get();
    }
    return nullptr;
  }
  Replica* OtherThan(const std::string& id) {
    for (auto& replica : replicas_) {
      if (replica->id() != id && replica->process().running()) return replica.get();
    }
    return nullptr;
  }

  // A slow job submitted through the first replica, once it has trained 60 steps on one of them.
  absl::StatusOr<Job> SubmitAndWaitUntilRunning(int64_t steps) {
    absl::StatusOr<Job> submitted = replicas_[0]->Submit(SlowTinyJob(steps));
    if (!submitted.ok()) return submitted.status();
    absl::StatusOr<Job> running = replicas_[0]->WaitFor(submitted->job_id(), [](const Job& job) {
      return (job.step() >= 60 && !job.replica().empty()) || Ended(job);
    });
    if (running.ok() && running->state() != gan::v1::JOB_STATE_RUNNING) {
      return absl::FailedPreconditionError(absl::StrCat("too fast: ", running->ShortDebugString()));
    }
    return running;
  }

  PostgresCluster* cluster_ = nullptr;
  std::string url_;
  std::string data_dir_;
  std::vector<std::unique_ptr<Replica>> replicas_;
};

TEST_F(ServerReplicasTest, JobsSubmittedThroughEveryReplicaRunExactlyOnce) {
  ASSERT_NO_FATAL_FAILURE(StartReplicas(3));
  constexpr int kJobs = 12;
  constexpr int64_t kSteps = 30;
  std::vector<std::string> ids;
  for (int i = 0; i < kJobs; ++i) {
    gan::v1::JobSpec spec = TinyJob(kSteps);
    spec.set_seed(100 + i);
    GAN_ASSERT_OK_AND_ASSIGN(const Job job, replicas_[i % 3]->Submit(spec));
    ids.push_back(job.job_id());
  }
  std::set<std::string> trained_by;
  for (int i = 0; i < kJobs; ++i) {
    // Read through a replica other than the one it was submitted to.
    Replica* reader = replicas_[(i + 1) % 3].get();
    GAN_ASSERT_OK_AND_ASSIGN(const Job job, reader->WaitFor(ids[i], Ended));
    EXPECT_EQ(job.state(), gan::v1::JOB_STATE_SUCCEEDED) << job.ShortDebugString();
    EXPECT_EQ(job.step(), kSteps);
    EXPECT_THAT(job.replica(), ::testing::MatchesRegex("r[012]"));
    trained_by.insert(job.replica());
    absl::Status status;
    const History history = Summarize(replicas_[(i + 2) % 3]->Stream(ids[i], &status));
    EXPECT_THAT(status, IsOk());
    EXPECT_EQ(history.steps, Range(kSteps)) << ids[i];
    EXPECT_EQ(history.resumes, 0) << "ran more than once: " << ids[i];
    EXPECT_TRUE(history.finished_succeeded);
  }
  EXPECT_GE(trained_by.size(), 2u) << "every job ran on one replica";
  for (auto& replica : replicas_) {
    GAN_ASSERT_OK_AND_ASSIGN(const gan::v1::ScoreResponse scores, replica->Score(ids[0]));
    EXPECT_EQ(scores.probabilities_size(), 2) << replica->id();
    EXPECT_EQ(scores.checkpoint_step(), kSteps);
  }
}

TEST_F(ServerReplicasTest, AKilledReplicasJobIsTakenOverWithEveryStepOnce) {
  ASSERT_NO_FATAL_FAILURE(StartReplicas(3));
  constexpr int64_t kSteps = 600;
  GAN_ASSERT_OK_AND_ASSIGN(const Job running, SubmitAndWaitUntilRunning(kSteps));
  const std::string id = running.job_id();
  Replica* victim = ById(running.replica());
  ASSERT_NE(victim, nullptr);
  Replica* watcher = OtherThan(victim->id());
  ASSERT_NE(watcher, nullptr);

  // A stream opened on a replica that does not train the job sees its live steps.
  std::vector<MetricEvent> live;
  absl::Status live_status;
  std::thread stream([&] { live = watcher->Stream(id, &live_status); });
  absl::SleepFor(absl::Milliseconds(300));

  const absl::Time killed = absl::Now();
  victim->process().Kill();
  GAN_ASSERT_OK_AND_ASSIGN(const Job taken, watcher->WaitFor(id, [&](const Job& job) {
    return (job.replica() != victim->id() && job.state() == gan::v1::JOB_STATE_RUNNING) ||
           Ended(job);
  }));
  const absl::Duration takeover = absl::Now() - killed;
  RecordProperty("takeover_ms", static_cast<int>(absl::ToInt64Milliseconds(takeover)));
  EXPECT_LE(takeover, absl::Seconds(kLeaseSeconds + 5)) << taken.ShortDebugString();
  EXPECT_NE(taken.replica(), victim->id());

  GAN_ASSERT_OK_AND_ASSIGN(const Job done, watcher->WaitFor(id, Ended));
  EXPECT_EQ(done.state(), gan::v1::JOB_STATE_SUCCEEDED) << done.ShortDebugString();
  EXPECT_EQ(done.step(), kSteps);
  stream.join();
  EXPECT_THAT(live_status, IsOk());
  const History seen_live = Summarize(live);
  EXPECT_TRUE(seen_live.finished_succeeded);
  std::set<int64_t> live_steps(seen_live.steps.begin(), seen_live.steps.end());
  EXPECT_EQ(live_steps.size(), static_cast<size_t>(kSteps)) << "the live stream missed steps";
  EXPECT_GE(seen_live.resumes, 1);

  // The stored history: every step exactly once, with the takeover's resume marker.
  for (auto& replica : replicas_) {
    if (!replica->process().running()) continue;
    absl::Status status;
    const History history = Summarize(replica->Stream(id, &status));
    EXPECT_THAT(status, IsOk());
    EXPECT_EQ(history.steps, Range(kSteps)) << "via " << replica->id();
    EXPECT_EQ(history.resumes, 1);
    GAN_ASSERT_OK_AND_ASSIGN(const gan::v1::ScoreResponse scores, replica->Score(id));
    EXPECT_EQ(scores.checkpoint_step(), kSteps);
  }
}

TEST_F(ServerReplicasTest, APausedReplicaThatLostItsLeaseWritesNothing) {
  ASSERT_NO_FATAL_FAILURE(StartReplicas(2));
  constexpr int64_t kSteps = 600;
  GAN_ASSERT_OK_AND_ASSIGN(const Job running, SubmitAndWaitUntilRunning(kSteps));
  const std::string id = running.job_id();
  Replica* paused = ById(running.replica());
  Replica* other = OtherThan(paused->id());
  ASSERT_NE(other, nullptr);

  paused->process().Signal(SIGSTOP);
  GAN_ASSERT_OK_AND_ASSIGN(const Job taken, other->WaitFor(id, [&](const Job& job) {
    return job.replica() == other->id() || Ended(job);
  }));
  ASSERT_EQ(taken.replica(), other->id());
  // Let the new holder train a little, then wake the old one mid-job.
  GAN_ASSERT_OK_AND_ASSIGN(const Job ahead, other->WaitFor(id, [&](const Job& job) {
    return job.step() >= taken.step() + 20 || Ended(job);
  }));
  paused->process().Signal(SIGCONT);

  GAN_ASSERT_OK_AND_ASSIGN(const Job done, other->WaitFor(id, Ended));
  EXPECT_EQ(done.state(), gan::v1::JOB_STATE_SUCCEEDED) << done.ShortDebugString();
  EXPECT_EQ(done.replica(), other->id()) << "the paused replica finished the job";
  absl::SleepFor(absl::Seconds(1));  // anything the woken replica might still write
  absl::Status status;
  const History history = Summarize(other->Stream(id, &status));
  EXPECT_THAT(status, IsOk());
  EXPECT_EQ(history.steps, Range(kSteps));
  EXPECT_EQ(history.resumes, 1);
  // The woken replica is still healthy and serves reads.
  GAN_ASSERT_OK_AND_ASSIGN(const Job read, paused->Get(id));
  EXPECT_EQ(read.state(), gan::v1::JOB_STATE_SUCCEEDED);
  (void)ahead;
}

TEST_F(ServerReplicasTest, CancelReachesTheReplicaTrainingTheJob) {
  ASSERT_NO_FATAL_FAILURE(StartReplicas(2));
  GAN_ASSERT_OK_AND_ASSIGN(const Job submitted, replicas_[0]->Submit(gan::testing::LongJob()));
  const std::string id = submitted.job_id();
  GAN_ASSERT_OK_AND_ASSIGN(const Job running, replicas_[0]->WaitFor(id, [](const Job& job) {
    return (job.step() >= 1 && !job.replica().empty()) || Ended(job);
  }));
  Replica* elsewhere = OtherThan(running.replica());
  ASSERT_NE(elsewhere, nullptr);
  GAN_ASSERT_OK_AND_ASSIGN(const Job requested, elsewhere->Cancel(id));
  EXPECT_EQ(requested.state(), gan::v1::JOB_STATE_RUNNING);
  GAN_ASSERT_OK_AND_ASSIGN(const Job done,
                           elsewhere->WaitFor(id, Ended, absl::Seconds(kLeaseSeconds + 10)));
  EXPECT_EQ(done.state(), gan::v1::JOB_STATE_CANCELLED);
  EXPECT_GT(done.latest_checkpoint_step(), 0);
}

TEST_F(ServerReplicasTest, AJobSurvivesPostgresStoppingAndStartingAgain) {
  ASSERT_NO_FATAL_FAILURE(StartReplicas(1));
  Replica* replica = replicas_[0].get();
  constexpr int64_t kSteps = 400;
  GAN_ASSERT_OK_AND_ASSIGN(const Job submitted, replica->Submit(SlowTinyJob(kSteps)));
  const std::string id = submitted.job_id();
  GAN_ASSERT_OK_AND_ASSIGN(const Job running, replica->WaitFor(id, [](const Job& job) {
    return job.step() >= 40 || Ended(job);
  }));
  ASSERT_EQ(running.state(), gan::v1::JOB_STATE_RUNNING);

  ASSERT_EQ(replica->Health().value_or(-1), 1);
  ASSERT_THAT(cluster_->Stop(), IsOk());
  absl::StatusOr<Job> unavailable = replica->Get(id);
  EXPECT_EQ(unavailable.status().code(), absl::StatusCode::kUnavailable) << unavailable.status();
  EXPECT_THAT(std::string(unavailable.status().message()), ::testing::HasSubstr("PostgreSQL"));
  // Not ready without its store (health NOT_SERVING), while the process itself keeps serving.
  EXPECT_EQ(replica->WaitForHealth(2, absl::Seconds(5)).value_or(-1), 2);
  absl::SleepFor(absl::Seconds(kLeaseSeconds + 1));  // longer than the lease: training stops
  ASSERT_THAT(cluster_->Restart(), IsOk());
  EXPECT_EQ(replica->WaitForHealth(1, absl::Seconds(10)).value_or(-1), 1);

  GAN_ASSERT_OK_AND_ASSIGN(const Job done, replica->WaitFor(id, Ended));
  EXPECT_EQ(done.state(), gan::v1::JOB_STATE_SUCCEEDED) << done.ShortDebugString();
  absl::Status status;
  const History history = Summarize(replica->Stream(id, &status));
  EXPECT_THAT(status, IsOk());
  EXPECT_EQ(history.steps, Range(kSteps));
  EXPECT_GE(history.resumes, 1);
}

}  // namespace
}  // namespace gan::server
