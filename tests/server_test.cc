// End-to-end tests of gan-server: every test starts the real binary (build/bin/gan-server) on a
// free loopback port with a fresh --data_dir, talks to it over gRPC like a client would, and stops
// it with SIGTERM (or SIGKILL, to simulate a crash). What they assert is what a user relies on:
// status codes, the order of streamed events, and what survives a restart.
//
// Training jobs are tiny (a few steps of "seed-dcgan" at batch 8, or an MLP GAN) because the CPU
// is shared; "long" jobs run a tiny network for many steps and are always cancelled.

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <functional>
#include <future>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "core/checkpoint.h"
#include "core/gan_trainer.h"
#include "core/presets.h"
#include "core/safetensors.h"
#include "gan/v1/service.grpc.pb.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "server/sqlite_job_store.h"
#include "tests/child_process.h"
#include "tests/grpc_test_util.h"
#include "tests/test_jobs.h"
#include "tests/test_util.h"

namespace gan::server {
namespace {

using ::gan::testing::ChildProcess;
using ::gan::testing::GanServer;
using ::gan::testing::IsOk;
using ::gan::testing::LongJob;
using ::gan::testing::MakeAdam;
using ::gan::testing::MakeTempDir;
using ::gan::testing::StartGanServer;
using ::gan::testing::StatusIs;
using ::gan::testing::TinyJob;
using ::gan::testing::WaitStatusString;
using ::testing::_;
using ::testing::HasSubstr;

using gan::v1::Job;
using gan::v1::JobSpec;
using gan::v1::JobState;
using gan::v1::MetricEvent;

// gan-server flags (name -> value).
using ServerFlags = std::map<std::string, std::string>;

constexpr absl::Duration kRpcDeadline = absl::Seconds(20);
constexpr absl::Duration kStartTimeout = absl::Seconds(30);
constexpr absl::Duration kJobTimeout = absl::Seconds(120);

void SetDeadline(grpc::ClientContext* context, absl::Duration timeout = kRpcDeadline) {
  context->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
}

bool Ended(JobState state) {
  return state == gan::v1::JOB_STATE_SUCCEEDED || state == gan::v1::JOB_STATE_FAILED ||
         state == gan::v1::JOB_STATE_CANCELLED;
}

// "step 0, step 1, resumed 2, step 2, finished JOB_STATE_SUCCEEDED": streams compare as strings,
// so a failure shows the whole sequence.
std::string Describe(const MetricEvent& event) {
  switch (event.event_case()) {
    case MetricEvent::kStep:
      return absl::StrCat("step ", event.step().step());
    case MetricEvent::kResumedFromStep:
      return absl::StrCat("resumed ", event.resumed_from_step());
    case MetricEvent::kFinished:
      return absl::StrCat("finished ", gan::v1::JobState_Name(event.finished().state()));
    default:
      return "empty";
  }
}

std::string Describe(const std::vector<MetricEvent>& events) {
  return absl::StrJoin(events, ", ", [](std::string* out, const MetricEvent& event) {
    out->append(Describe(event));
  });
}

// Steps [from, to), then `tail` ("finished JOB_STATE_SUCCEEDED").
std::string StepsThen(int64_t from, int64_t to, const std::string& tail) {
  std::vector<std::string> parts;
  for (int64_t step = from; step < to; ++step) parts.push_back(absl::StrCat("step ", step));
  if (!tail.empty()) parts.push_back(tail);
  return absl::StrJoin(parts, ", ");
}

struct StreamResult {
  std::vector<MetricEvent> events;
  absl::Status status;
};

// A client of both services on one channel; every call has a deadline.
class Client {
 public:
  explicit Client(const std::string& address)
      : channel_(grpc::CreateChannel(address, grpc::InsecureChannelCredentials())),
        training_(gan::v1::TrainingService::NewStub(channel_)),
        scoring_(gan::v1::ScoringService::NewStub(channel_)) {}

  absl::StatusOr<Job> Submit(const JobSpec& spec, const std::string& request_id = "") {
    gan::v1::SubmitJobRequest request;
    *request.mutable_spec() = spec;
    request.set_request_id(request_id);
    return Unary(training_.get(), &gan::v1::TrainingService::Stub::SubmitJob, request);
  }

  absl::StatusOr<Job> Get(const std::string& job_id) {
    gan::v1::GetJobRequest request;
    request.set_job_id(job_id);
    return Unary(training_.get(), &gan::v1::TrainingService::Stub::GetJob, request);
  }

  absl::StatusOr<gan::v1::ListJobsResponse> List(int page_size, const std::string& page_token = "",
                                                 JobState state = gan::v1::JOB_STATE_UNSPECIFIED) {
    gan::v1::ListJobsRequest request;
    request.set_page_size(page_size);
    request.set_page_token(page_token);
    request.set_state(state);
    return Unary(training_.get(), &gan::v1::TrainingService::Stub::ListJobs, request);
  }

  // Every job (all pages), newest first.
  absl::StatusOr<std::vector<Job>> ListAll(JobState state = gan::v1::JOB_STATE_UNSPECIFIED) {
    std::vector<Job> jobs;
    std::string token;
    do {
      absl::StatusOr<gan::v1::ListJobsResponse> page = List(100, token, state);
      if (!page.ok()) return page.status();
      jobs.insert(jobs.end(), page->jobs().begin(), page->jobs().end());
      token = page->next_page_token();
    } while (!token.empty());
    return jobs;
  }

  absl::StatusOr<Job> Cancel(const std::string& job_id) {
    gan::v1::CancelJobRequest request;
    request.set_job_id(job_id);
    return Unary(training_.get(), &gan::v1::TrainingService::Stub::CancelJob, request);
  }

  absl::StatusOr<gan::v1::SampleImagesResponse> Sample(const std::string& job_id, int count,
                                                       uint64_t seed, int64_t step = 0) {
    gan::v1::SampleImagesRequest request;
    request.set_job_id(job_id);
    request.set_count(count);
    request.set_seed(seed);
    request.set_checkpoint_step(step);
    return Unary(training_.get(), &gan::v1::TrainingService::Stub::SampleImages, request);
  }

  absl::StatusOr<gan::v1::ScoreResponse> Score(const gan::v1::ScoreRequest& request) {
    return Unary(scoring_.get(), &gan::v1::ScoringService::Stub::Score, request);
  }

  // The whole stream, until the server closes it or `timeout` passes.
  // Reads the job's stream to its end; `opened`, when given, is notified once the first event
  // arrived (the stream is then open on the server).
  StreamResult Stream(const std::string& job_id, int64_t from_step,
                      absl::Duration timeout = kJobTimeout, absl::Notification* opened = nullptr) {
    gan::v1::StreamMetricsRequest request;
    request.set_job_id(job_id);
    request.set_from_step(from_step);
    grpc::ClientContext context;
    SetDeadline(&context, timeout);
    std::unique_ptr<grpc::ClientReader<MetricEvent>> reader =
        training_->StreamMetrics(&context, request);
    StreamResult result;
    MetricEvent event;
    while (reader->Read(&event)) {
      result.events.push_back(event);
      if (opened != nullptr && !opened->HasBeenNotified()) opened->Notify();
    }
    result.status = ToAbsl(reader->Finish());
    return result;
  }

  // The server's overall grpc.health.v1 status (1 SERVING, 2 NOT_SERVING).
  absl::StatusOr<int> HealthStatus() {
    return CheckServerHealth(channel_, absl::Now() + kRpcDeadline);
  }

  // Polls GetJob until `done` holds; DEADLINE_EXCEEDED (with the job's last state) after
  // `timeout`.
  absl::StatusOr<Job> WaitFor(const std::string& job_id,
                              const std::function<bool(const Job&)>& done,
                              absl::Duration timeout = kJobTimeout) {
    const absl::Time deadline = absl::Now() + timeout;
    while (true) {
      absl::StatusOr<Job> job = Get(job_id);
      if (!job.ok() || done(*job)) return job;
      if (absl::Now() > deadline) {
        return absl::DeadlineExceededError(
            absl::StrCat("job ", job_id, " is still ", gan::v1::JobState_Name(job->state()),
                         " at step ", job->step(), " after ", absl::FormatDuration(timeout)));
      }
      absl::SleepFor(absl::Milliseconds(10));
    }
  }

  absl::StatusOr<Job> WaitUntilEnded(const std::string& job_id) {
    return WaitFor(job_id, [](const Job& job) { return Ended(job.state()); });
  }

  gan::v1::TrainingService::Stub* training() { return training_.get(); }

 private:
  template <typename Stub, typename Request, typename Response>
  static absl::StatusOr<Response> Unary(Stub* stub,
                                        grpc::Status (Stub::*method)(grpc::ClientContext*,
                                                                     const Request&, Response*),
                                        const Request& request) {
    grpc::ClientContext context;
    SetDeadline(&context);
    Response response;
    const grpc::Status status = (stub->*method)(&context, request, &response);
    if (!status.ok()) return ToAbsl(status);
    return response;
  }

  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<gan::v1::TrainingService::Stub> training_;
  std::unique_ptr<gan::v1::ScoringService::Stub> scoring_;
};

// The preset the service is built around, at batch 8 (each step well under a second).
JobSpec DcganJob(int64_t steps) {
  JobSpec spec;
  spec.set_preset("seed-dcgan");
  spec.set_batch_size(8);
  spec.set_dataset("synthetic");
  spec.set_steps(steps);
  spec.set_seed(11);
  return spec;
}

// 28x28x1 uint8 images with a different gradient each.
std::string Uint8Images(int count) {
  std::string pixels(static_cast<size_t>(count) * 784, '\0');
  for (size_t i = 0; i < pixels.size(); ++i) {
    pixels[i] = static_cast<char>((i * 7 + (i / 784) * 50) % 256);
  }
  return pixels;
}

std::string FloatBytes(const std::vector<float>& values) {
  std::string bytes(values.size() * 4, '\0');
  for (size_t i = 0; i < values.size(); ++i) {
    uint32_t bits;
    std::memcpy(&bits, &values[i], 4);
    for (int b = 0; b < 4; ++b) bytes[i * 4 + b] = static_cast<char>(bits >> (8 * b));  // LE
  }
  return bytes;
}

gan::v1::ScoreRequest ScoreRequest(const std::string& job_id, std::vector<int64_t> shape,
                                   const std::string& uint8_pixels) {
  gan::v1::ScoreRequest request;
  request.set_job_id(job_id);
  for (int64_t d : shape) request.add_shape(d);
  request.set_uint8_pixels(uint8_pixels);
  return request;
}

std::vector<std::string> Ids(const std::vector<Job>& jobs) {
  std::vector<std::string> ids;
  for (const Job& job : jobs) ids.push_back(job.job_id());
  return ids;
}

// Every job, serialized: two snapshots are equal when nothing was created or changed.
std::string Snapshot(const std::vector<Job>& jobs) {
  std::string out;
  for (const Job& job : jobs) out += job.ShortDebugString() + "\n";
  return out;
}

class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override { data_dir_ = MakeTempDir("data"); }

  // Stopping cleanly is part of every test: SIGTERM must end the server with status 0. The data
  // directory (checkpoints of ~90 MB each) is kept only when the test failed.
  void TearDown() override {
    client_.reset();
    if (server_ != nullptr && server_->running()) {
      absl::StatusOr<int> status = server_->Terminate(absl::Seconds(30));
      EXPECT_THAT(status.status(), IsOk());
      if (status.ok()) {
        EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << WaitStatusString(*status);
      }
    }
    server_.reset();
    std::error_code error;
    if (!HasFailure()) std::filesystem::remove_all(data_dir_, error);
  }

  // Flags every test server gets (--listen 127.0.0.1:0, the synthetic dataset, a checkpoint every
  // 2 steps, one OpenMP thread per job), overridden by `flags`.
  absl::Status StartServer(const ServerFlags& flags = {}) {
    flags_ = flags;
    ServerFlags all = flags;
    all.emplace("--data_dir", data_dir_);
    absl::StatusOr<GanServer> server = StartGanServer(all, kStartTimeout);
    if (!server.ok()) return server.status();
    server_ = std::move(server->process);
    client_ = std::make_unique<Client>(server->address());
    return absl::OkStatus();
  }

  // The same flags and --data_dir again, after the previous process ended.
  absl::Status RestartServer() {
    client_.reset();
    server_.reset();
    return StartServer(flags_);
  }

  absl::StatusOr<int> StopServer() {
    client_.reset();
    absl::StatusOr<int> status = server_->Terminate(absl::Seconds(30));
    server_.reset();
    return status;
  }

  std::string CheckpointDir(const std::string& job_id) const {
    return absl::StrCat(data_dir_, "/jobs/", job_id, "/checkpoints");
  }

  std::string data_dir_;
  ServerFlags flags_;
  std::unique_ptr<ChildProcess> server_;
  std::unique_ptr<Client> client_;
};

// --- 1. The happy path: train, stream, score, sample ------------------------------------------

TEST_F(ServerTest, TrainsStreamsScoresAndSamples) {
  ASSERT_THAT(StartServer(), IsOk());
  GAN_ASSERT_OK_AND_ASSIGN(const int health, client_->HealthStatus());
  EXPECT_EQ(health, kServing);

  constexpr int64_t kSteps = 4;
  GAN_ASSERT_OK_AND_ASSIGN(const Job submitted, client_->Submit(DcganJob(kSteps)));
  EXPECT_THAT(submitted.job_id(), ::testing::StartsWith("job-"));
  EXPECT_EQ(submitted.total_steps(), kSteps);

  const StreamResult stream = client_->Stream(submitted.job_id(), 0);
  EXPECT_THAT(stream.status, IsOk());
  EXPECT_EQ(Describe(stream.events), StepsThen(0, kSteps, "finished JOB_STATE_SUCCEEDED"));
  for (const MetricEvent& event : stream.events) {
    if (!event.has_step()) continue;
    EXPECT_TRUE(std::isfinite(event.step().d_loss()) && std::isfinite(event.step().g_loss()))
        << event.ShortDebugString();
    EXPECT_GT(event.step().gradient_norms_size(), 0) << event.ShortDebugString();
  }
  if (!stream.events.empty() && stream.events.back().has_finished()) {
    const Job& finished = stream.events.back().finished();
    EXPECT_EQ(finished.step(), kSteps);
    EXPECT_EQ(finished.latest_checkpoint_step(), kSteps);
  }

  GAN_ASSERT_OK_AND_ASSIGN(const Job job, client_->Get(submitted.job_id()));
  EXPECT_EQ(job.state(), gan::v1::JOB_STATE_SUCCEEDED) << job.error_message();
  EXPECT_EQ(job.step(), kSteps);
  EXPECT_EQ(job.total_steps(), kSteps);
  EXPECT_EQ(job.latest_checkpoint_step(), kSteps);
  EXPECT_TRUE(job.has_start_time() && job.has_end_time()) << job.ShortDebugString();
  EXPECT_LE(job.create_time().seconds(), job.start_time().seconds());
  EXPECT_LE(job.start_time().seconds(), job.end_time().seconds());

  // A replay from a later step starts there.
  EXPECT_EQ(Describe(client_->Stream(job.job_id(), 2).events),
            StepsThen(2, kSteps, "finished JOB_STATE_SUCCEEDED"));

  // Score: 3 uint8 images give 3 probabilities, each sigmoid(logit).
  const std::string pixels = Uint8Images(3);
  GAN_ASSERT_OK_AND_ASSIGN(const gan::v1::ScoreResponse scores,
                           client_->Score(ScoreRequest(job.job_id(), {3, 28, 28, 1}, pixels)));
  ASSERT_EQ(scores.probabilities_size(), 3);
  ASSERT_EQ(scores.logits_size(), 3);
  EXPECT_EQ(scores.checkpoint_step(), kSteps);
  for (int i = 0; i < 3; ++i) {
    const float p = scores.probabilities(i), logit = scores.logits(i);
    EXPECT_GT(p, 0.0f) << i;
    EXPECT_LT(p, 1.0f) << i;
    EXPECT_NEAR(p, 1.0 / (1.0 + std::exp(-static_cast<double>(logit))), 1e-5) << i;
  }

  // The same images as float32 in [-1, 1] (x / 127.5 - 1) score the same.
  std::vector<float> floats(pixels.size());
  for (size_t i = 0; i < pixels.size(); ++i) {
    floats[i] = static_cast<unsigned char>(pixels[i]) / 127.5f - 1.0f;
  }
  gan::v1::ScoreRequest float_request = ScoreRequest(job.job_id(), {3, 28, 28, 1}, "");
  float_request.set_float_pixels(FloatBytes(floats));
  GAN_ASSERT_OK_AND_ASSIGN(const gan::v1::ScoreResponse float_scores,
                           client_->Score(float_request));
  ASSERT_EQ(float_scores.probabilities_size(), 3);
  for (int i = 0; i < 3; ++i) {
    EXPECT_NEAR(float_scores.probabilities(i), scores.probabilities(i), 1e-5) << i;
  }

  // An older checkpoint can be chosen (checkpoints every 2 steps, 3 kept).
  gan::v1::ScoreRequest older = ScoreRequest(job.job_id(), {3, 28, 28, 1}, pixels);
  older.set_checkpoint_step(2);
  GAN_ASSERT_OK_AND_ASSIGN(const gan::v1::ScoreResponse older_scores, client_->Score(older));
  EXPECT_EQ(older_scores.checkpoint_step(), 2);

  // SampleImages is a function of (checkpoint, seed, count).
  GAN_ASSERT_OK_AND_ASSIGN(const gan::v1::SampleImagesResponse sample,
                           client_->Sample(job.job_id(), 5, 7));
  EXPECT_EQ(sample.count(), 5);
  EXPECT_EQ(sample.height(), 28);
  EXPECT_EQ(sample.width(), 28);
  EXPECT_EQ(sample.channels(), 1);
  EXPECT_EQ(sample.checkpoint_step(), kSteps);
  EXPECT_EQ(sample.pixels().size(), 5u * 784u);
  GAN_ASSERT_OK_AND_ASSIGN(const gan::v1::SampleImagesResponse again,
                           client_->Sample(job.job_id(), 5, 7));
  EXPECT_TRUE(again.pixels() == sample.pixels()) << "same request, different images";
  GAN_ASSERT_OK_AND_ASSIGN(const gan::v1::SampleImagesResponse other_seed,
                           client_->Sample(job.job_id(), 5, 8));
  EXPECT_FALSE(other_seed.pixels() == sample.pixels()) << "seeds 7 and 8 gave the same images";
}

// A stream that starts after the job's last event still ends (OK, with the terminal state) and
// leaves the server serving.
TEST_F(ServerTest, StreamFromBeyondTheLastStepOfAnEndedJobEnds) {
  ASSERT_THAT(StartServer(), IsOk());
  GAN_ASSERT_OK_AND_ASSIGN(const Job submitted, client_->Submit(TinyJob(2)));
  GAN_ASSERT_OK_AND_ASSIGN(const Job job, client_->WaitUntilEnded(submitted.job_id()));
  ASSERT_EQ(job.state(), gan::v1::JOB_STATE_SUCCEEDED) << job.error_message();

  const absl::Time start = absl::Now();
  const StreamResult stream = client_->Stream(job.job_id(), 100, absl::Seconds(10));
  EXPECT_LT(absl::Now() - start, absl::Seconds(5)) << "the stream hung until its deadline";
  EXPECT_THAT(stream.status, IsOk());
  EXPECT_EQ(Describe(stream.events), "finished JOB_STATE_SUCCEEDED");
  EXPECT_THAT(client_->Get(job.job_id()).status(), IsOk()) << "the server stopped answering";
}

// --- 2. Cancel ----------------------------------------------------------------------------------

TEST_F(ServerTest, CancelsQueuedAndRunningJobs) {
  ASSERT_THAT(StartServer({{"--max_concurrent_jobs", "1"}}), IsOk());
  GAN_ASSERT_OK_AND_ASSIGN(const Job running, client_->Submit(LongJob()));
  GAN_ASSERT_OK_AND_ASSIGN(const Job queued, client_->Submit(LongJob()));
  // Wait until the first job has trained a step, so stopping it leaves a real checkpoint.
  ASSERT_THAT(
      client_->WaitFor(running.job_id(), [](const Job& j) { return j.step() >= 1; }).status(),
      IsOk());
  GAN_ASSERT_OK_AND_ASSIGN(const Job still_queued, client_->Get(queued.job_id()));
  EXPECT_EQ(still_queued.state(), gan::v1::JOB_STATE_QUEUED);

  // A queued job is cancelled at once.
  GAN_ASSERT_OK_AND_ASSIGN(const Job cancelled_queued, client_->Cancel(queued.job_id()));
  EXPECT_EQ(cancelled_queued.state(), gan::v1::JOB_STATE_CANCELLED);
  EXPECT_TRUE(cancelled_queued.has_end_time());
  EXPECT_EQ(cancelled_queued.step(), 0);

  // A running one: CancelJob returns at once with the job still RUNNING (it never waits for a
  // training step); the job is CANCELLED when its current step ends, keeping a checkpoint.
  const absl::Time start = absl::Now();
  GAN_ASSERT_OK_AND_ASSIGN(const Job cancel_requested, client_->Cancel(running.job_id()));
  EXPECT_EQ(cancel_requested.state(), gan::v1::JOB_STATE_RUNNING);
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
  GAN_ASSERT_OK_AND_ASSIGN(const Job job, client_->WaitUntilEnded(running.job_id()));
  EXPECT_EQ(job.state(), gan::v1::JOB_STATE_CANCELLED);
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
  EXPECT_GT(job.step(), 0);
  EXPECT_GT(job.latest_checkpoint_step(), 0) << job.ShortDebugString();
  std::error_code error;
  EXPECT_FALSE(std::filesystem::is_empty(CheckpointDir(job.job_id()), error) || error)
      << "no checkpoint file under " << CheckpointDir(job.job_id());
  EXPECT_THAT(client_->Sample(job.job_id(), 1, 1).status(), IsOk())
      << "the kept checkpoint is unusable";
  const StreamResult stream = client_->Stream(job.job_id(), 0, absl::Seconds(20));
  EXPECT_THAT(stream.status, IsOk());
  ASSERT_FALSE(stream.events.empty());
  EXPECT_EQ(Describe(stream.events.back()), "finished JOB_STATE_CANCELLED");

  // Ended jobs cannot be cancelled again; unknown ones do not exist.
  EXPECT_THAT(client_->Cancel(running.job_id()).status(),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("already ended")));
  EXPECT_THAT(client_->Cancel(queued.job_id()).status(),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("already ended")));
  EXPECT_THAT(client_->Cancel("job-0123456789abcdef").status(),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("job-0123456789abcdef")));
}

// --- 3. Idempotency ----------------------------------------------------------------------------

TEST_F(ServerTest, RequestIdMakesSubmitIdempotent) {
  ASSERT_THAT(StartServer(), IsOk());
  GAN_ASSERT_OK_AND_ASSIGN(const Job first, client_->Submit(TinyJob(2), "request-1"));
  EXPECT_EQ(first.request_id(), "request-1");
  GAN_ASSERT_OK_AND_ASSIGN(const Job retry, client_->Submit(TinyJob(2), "request-1"));
  EXPECT_EQ(retry.job_id(), first.job_id());
  GAN_ASSERT_OK_AND_ASSIGN(std::vector<Job> jobs, client_->ListAll());
  EXPECT_THAT(Ids(jobs), ::testing::ElementsAre(first.job_id()));

  EXPECT_THAT(client_->Submit(TinyJob(3), "request-1").status(),
              StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr(first.job_id())));
  GAN_ASSERT_OK_AND_ASSIGN(jobs, client_->ListAll());
  EXPECT_THAT(Ids(jobs), ::testing::ElementsAre(first.job_id()));

  // Still the same job after it ended.
  GAN_ASSERT_OK_AND_ASSIGN(const Job ended, client_->WaitUntilEnded(first.job_id()));
  EXPECT_EQ(ended.state(), gan::v1::JOB_STATE_SUCCEEDED) << ended.error_message();
  GAN_ASSERT_OK_AND_ASSIGN(const Job late_retry, client_->Submit(TinyJob(2), "request-1"));
  EXPECT_EQ(late_retry.job_id(), first.job_id());
  EXPECT_EQ(late_retry.state(), gan::v1::JOB_STATE_SUCCEEDED);

  // Without a request_id every submission is a new job.
  GAN_ASSERT_OK_AND_ASSIGN(const Job a, client_->Submit(TinyJob(1)));
  GAN_ASSERT_OK_AND_ASSIGN(const Job b, client_->Submit(TinyJob(1)));
  EXPECT_NE(a.job_id(), b.job_id());
  GAN_ASSERT_OK_AND_ASSIGN(jobs, client_->ListAll());
  EXPECT_EQ(jobs.size(), 3u);
  ASSERT_THAT(client_->WaitUntilEnded(b.job_id()).status(), IsOk());
}

// --- 4. Pagination -----------------------------------------------------------------------------

TEST_F(ServerTest, ListsJobsNewestFirstInPages) {
  ASSERT_THAT(StartServer(), IsOk());
  // One running job and four queued behind it, two of which are then cancelled.
  std::vector<std::string> submitted;
  for (int i = 0; i < 5; ++i) {
    GAN_ASSERT_OK_AND_ASSIGN(const Job job, client_->Submit(LongJob()));
    submitted.push_back(job.job_id());
  }
  ASSERT_THAT(client_->Cancel(submitted[1]).status(), IsOk());
  ASSERT_THAT(client_->Cancel(submitted[3]).status(), IsOk());
  const std::vector<std::string> newest_first(submitted.rbegin(), submitted.rend());

  std::vector<std::string> listed;
  std::vector<int> page_sizes;
  std::string token;
  do {
    GAN_ASSERT_OK_AND_ASSIGN(const gan::v1::ListJobsResponse page, client_->List(2, token));
    page_sizes.push_back(page.jobs_size());
    for (const Job& job : page.jobs()) listed.push_back(job.job_id());
    token = page.next_page_token();
    ASSERT_LE(page_sizes.size(), 5u) << "pagination does not end";
  } while (!token.empty());
  EXPECT_THAT(page_sizes, ::testing::ElementsAre(2, 2, 1));
  EXPECT_EQ(listed, newest_first);  // also: no duplicates, none missing

  GAN_ASSERT_OK_AND_ASSIGN(const std::vector<Job> cancelled,
                           client_->ListAll(gan::v1::JOB_STATE_CANCELLED));
  EXPECT_THAT(Ids(cancelled), ::testing::ElementsAre(submitted[3], submitted[1]));
  GAN_ASSERT_OK_AND_ASSIGN(const std::vector<Job> queued,
                           client_->ListAll(gan::v1::JOB_STATE_QUEUED));
  GAN_ASSERT_OK_AND_ASSIGN(const std::vector<Job> running,
                           client_->ListAll(gan::v1::JOB_STATE_RUNNING));
  // The first job may still be starting (QUEUED) or already RUNNING.
  EXPECT_EQ(queued.size() + running.size(), 3u);
  for (const Job& job : queued) EXPECT_EQ(job.state(), gan::v1::JOB_STATE_QUEUED);

  // A filtered listing pages too.
  GAN_ASSERT_OK_AND_ASSIGN(const gan::v1::ListJobsResponse first,
                           client_->List(1, "", gan::v1::JOB_STATE_CANCELLED));
  ASSERT_EQ(first.jobs_size(), 1);
  EXPECT_EQ(first.jobs(0).job_id(), submitted[3]);
  ASSERT_FALSE(first.next_page_token().empty());
  GAN_ASSERT_OK_AND_ASSIGN(const gan::v1::ListJobsResponse second,
                           client_->List(1, first.next_page_token(), gan::v1::JOB_STATE_CANCELLED));
  ASSERT_EQ(second.jobs_size(), 1);
  EXPECT_EQ(second.jobs(0).job_id(), submitted[1]);

  EXPECT_THAT(client_->List(2, "not-a-token").status(),
              StatusIs(absl::StatusCode::kInvalidArgument, _));
  EXPECT_THAT(client_->List(-1).status(), StatusIs(absl::StatusCode::kInvalidArgument, _));

  for (const std::string& id : submitted) {
    absl::StatusOr<Job> job = client_->Get(id);
    if (job.ok() && !Ended(job->state())) {
      ASSERT_THAT(client_->Cancel(id).status(), IsOk());
    }
  }
}

// --- 5. Bad requests ----------------------------------------------------------------------------

TEST_F(ServerTest, RejectsInvalidSubmissionsWithoutCreatingAnything) {
  ASSERT_THAT(StartServer({{"--max_batch_size", "64"}}), IsOk());
  GAN_ASSERT_OK_AND_ASSIGN(const Job existing, client_->Submit(TinyJob(2), "existing"));
  ASSERT_THAT(client_->WaitUntilEnded(existing.job_id()).status(), IsOk());
  GAN_ASSERT_OK_AND_ASSIGN(const std::vector<Job> before, client_->ListAll());
  ASSERT_EQ(before.size(), 1u);

  struct Row {
    std::string name;
    JobSpec spec;
    std::string request_id;
    absl::StatusCode code;
    std::string message;
  };
  std::vector<Row> rows;
  const auto invalid = [&](std::string name, JobSpec spec, std::string message) {
    rows.push_back({std::move(name), std::move(spec), "", absl::StatusCode::kInvalidArgument,
                    std::move(message)});
  };
  invalid("empty spec", JobSpec(), "spec");
  {
    JobSpec spec = DcganJob(2);
    spec.set_preset("no-such-preset");
    invalid("unknown preset", spec, "preset");
  }
  {
    JobSpec spec = DcganJob(2);
    spec.set_batch_size(-1);
    invalid("batch_size -1", spec, "batch_size");
    spec.set_batch_size(65);
    invalid("batch_size over --max_batch_size", spec, "batch_size");
  }
  {
    JobSpec spec = TinyJob(2);
    spec.set_steps(0);
    invalid("neither steps nor epochs", spec, "steps");
    spec.set_steps(-3);
    invalid("negative steps", spec, "steps");
    spec.set_steps(2);
    spec.set_epochs(1);
    invalid("both steps and epochs", spec, "steps");
  }
  for (const float rate : {std::numeric_limits<float>::quiet_NaN(), -1e-4f, 0.0f}) {
    JobSpec spec = DcganJob(2);
    *spec.mutable_generator_optimizer() = MakeAdam(rate);
    invalid(absl::StrCat("generator learning_rate ", rate), spec, "learning_rate");
  }
  {
    // A Dense right after a Conv2D, without a Flatten.
    JobSpec spec = TinyJob(2);
    gan::v1::ModelSpec* d = spec.mutable_gan()->mutable_discriminator();
    d->Clear();
    auto* conv = d->add_layers()->mutable_conv2d();
    conv->set_filters(4);
    conv->set_kernel_size(3);
    conv->set_stride(2);
    d->add_layers()->mutable_dense()->set_units(1);
    invalid("Dense after Conv2D", spec, "discriminator");
  }
  for (const std::string& name : {std::string(".."), std::string("a/b"), std::string("x\0y", 3),
                                  std::string("../synthetic")}) {
    JobSpec spec = TinyJob(2);
    spec.set_dataset(name);
    invalid(absl::StrCat("dataset '", absl::CHexEscape(name), "'"), spec, "dataset");
  }
  rows.push_back({"request_id of 129 characters", TinyJob(2), std::string(129, 'r'),
                  absl::StatusCode::kInvalidArgument, "request_id"});
  rows.push_back({"request_id reused with another spec", TinyJob(3), "existing",
                  absl::StatusCode::kAlreadyExists, existing.job_id()});

  for (const Row& row : rows) {
    SCOPED_TRACE(row.name);
    EXPECT_THAT(client_->Submit(row.spec, row.request_id).status(),
                StatusIs(row.code, HasSubstr(row.message)));
    GAN_ASSERT_OK_AND_ASSIGN(const std::vector<Job> after, client_->ListAll());
    EXPECT_EQ(Snapshot(after), Snapshot(before));
  }
  // GetJob of an unknown or empty id.
  EXPECT_THAT(client_->Get("job-0123456789abcdef").status(),
              StatusIs(absl::StatusCode::kNotFound, _));
  EXPECT_THAT(client_->Get("").status(), StatusIs(absl::StatusCode::kInvalidArgument, _));
  EXPECT_EQ(client_->Stream("job-0123456789abcdef", 0, absl::Seconds(10)).status.code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(client_->Stream(existing.job_id(), -1, absl::Seconds(10)).status.code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(ServerTest, RejectsInvalidScoreRequests) {
  ASSERT_THAT(StartServer({{"--max_score_batch", "4"}}), IsOk());
  GAN_ASSERT_OK_AND_ASSIGN(const Job submitted, client_->Submit(TinyJob(2)));
  GAN_ASSERT_OK_AND_ASSIGN(const Job job, client_->WaitUntilEnded(submitted.job_id()));
  ASSERT_EQ(job.state(), gan::v1::JOB_STATE_SUCCEEDED) << job.error_message();
  GAN_ASSERT_OK_AND_ASSIGN(const std::vector<Job> before, client_->ListAll());
  const std::string& id = job.job_id();

  struct Row {
    std::string name;
    gan::v1::ScoreRequest request;
    absl::StatusCode code;
    std::string message;
  };
  std::vector<Row> rows;
  const auto add = [&](std::string name, gan::v1::ScoreRequest request, absl::StatusCode code,
                       std::string message) {
    rows.push_back({std::move(name), std::move(request), code, std::move(message)});
  };
  const auto kInvalid = absl::StatusCode::kInvalidArgument;
  add("payload shorter than the shape", ScoreRequest(id, {2, 28, 28, 1}, Uint8Images(1)), kInvalid,
      "uint8_pixels");
  add("payload longer than the shape", ScoreRequest(id, {1, 28, 28, 1}, Uint8Images(1) + "x"),
      kInvalid, "uint8_pixels");
  add("shape of the wrong image size", ScoreRequest(id, {1, 14, 56, 1}, Uint8Images(1)), kInvalid,
      "shape");
  add("shape with 3 dimensions", ScoreRequest(id, {28, 28, 1}, Uint8Images(1)), kInvalid, "shape");
  add("shape with a zero", ScoreRequest(id, {0, 28, 28, 1}, ""), kInvalid, "shape");
  add("shape whose product overflows int64",
      ScoreRequest(id, {1, int64_t{1} << 32, int64_t{1} << 32, 1}, Uint8Images(1)), kInvalid,
      "overflow");
  add("more images than --max_score_batch", ScoreRequest(id, {5, 28, 28, 1}, Uint8Images(5)),
      kInvalid, "max_score_batch");
  add("no pixels", ScoreRequest(id, {1, 28, 28, 1}, ""), kInvalid, "");
  rows.back().request.clear_pixels();
  for (const float bad : {std::numeric_limits<float>::quiet_NaN(), 1.5f}) {
    std::vector<float> values(784, 0.25f);
    values[100] = bad;
    gan::v1::ScoreRequest request = ScoreRequest(id, {1, 28, 28, 1}, "");
    request.set_float_pixels(FloatBytes(values));
    add(absl::StrCat("float pixel ", bad), request, kInvalid, "float_pixels");
  }
  {
    gan::v1::ScoreRequest request = ScoreRequest(id, {1, 28, 28, 1}, Uint8Images(1));
    request.set_checkpoint_step(999);
    add("unknown checkpoint_step", request, absl::StatusCode::kNotFound, "checkpoint_step");
  }
  add("unknown job", ScoreRequest("job-0123456789abcdef", {1, 28, 28, 1}, Uint8Images(1)),
      absl::StatusCode::kNotFound, "job-0123456789abcdef");
  add("no job_id", ScoreRequest("", {1, 28, 28, 1}, Uint8Images(1)), kInvalid, "job_id");

  for (const Row& row : rows) {
    SCOPED_TRACE(row.name);
    EXPECT_THAT(client_->Score(row.request).status(), StatusIs(row.code, HasSubstr(row.message)));
    GAN_ASSERT_OK_AND_ASSIGN(const std::vector<Job> after, client_->ListAll());
    EXPECT_EQ(Snapshot(after), Snapshot(before));
  }
  // The limit itself is allowed.
  EXPECT_THAT(client_->Score(ScoreRequest(id, {4, 28, 28, 1}, Uint8Images(4))).status(), IsOk());

  EXPECT_THAT(client_->Sample(id, 1, 1, 999).status(), StatusIs(absl::StatusCode::kNotFound, _));
  EXPECT_THAT(client_->Sample(id, 0, 1).status(), StatusIs(absl::StatusCode::kInvalidArgument, _));
}

TEST_F(ServerTest, EnforcesQueueAndMessageLimits) {
  ASSERT_THAT(StartServer({{"--max_queued_jobs", "1"}, {"--max_message_bytes", "65536"}}), IsOk());
  GAN_ASSERT_OK_AND_ASSIGN(const Job running, client_->Submit(LongJob(), "running"));
  ASSERT_THAT(client_
                  ->WaitFor(running.job_id(),
                            [](const Job& j) { return j.state() != gan::v1::JOB_STATE_QUEUED; })
                  .status(),
              IsOk());
  GAN_ASSERT_OK_AND_ASSIGN(const Job queued, client_->Submit(LongJob(), "queued"));
  EXPECT_EQ(queued.state(), gan::v1::JOB_STATE_QUEUED);
  GAN_ASSERT_OK_AND_ASSIGN(const std::vector<Job> before, client_->ListAll());
  ASSERT_EQ(before.size(), 2u);

  // A job without a checkpoint yet can neither score nor sample.
  EXPECT_THAT(
      client_->Score(ScoreRequest(queued.job_id(), {1, 28, 28, 1}, Uint8Images(1))).status(),
      StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("no checkpoint")));
  EXPECT_THAT(client_->Sample(queued.job_id(), 1, 1).status(),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("no checkpoint")));

  // The queue is full.
  EXPECT_THAT(client_->Submit(TinyJob(2)).status(),
              StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("max_queued_jobs")));
  GAN_ASSERT_OK_AND_ASSIGN(std::vector<Job> after, client_->ListAll());
  EXPECT_EQ(Ids(after), Ids(before));

  // A retry of a submission that was accepted is not a new job, even with a full queue.
  const absl::StatusOr<Job> retry = client_->Submit(LongJob(), "queued");
  EXPECT_THAT(retry.status(), IsOk());
  if (retry.ok()) {
    EXPECT_EQ(retry->job_id(), queued.job_id());
  }

  // A request over --max_message_bytes (100 KB of pixels for a 64 KB limit).
  EXPECT_THAT(
      client_->Score(ScoreRequest(running.job_id(), {128, 28, 28, 1}, Uint8Images(128))).status(),
      StatusIs(absl::StatusCode::kResourceExhausted, _));
  GAN_ASSERT_OK_AND_ASSIGN(after, client_->ListAll());
  EXPECT_EQ(Ids(after), Ids(before));
  EXPECT_THAT(client_->Get(running.job_id()).status(), IsOk()) << "the server stopped answering";

  ASSERT_THAT(client_->Cancel(queued.job_id()).status(), IsOk());
  ASSERT_THAT(client_->Cancel(running.job_id()).status(), IsOk());
}

TEST_F(ServerTest, MissingFashionMnistIsFailedPrecondition) {
  // Point the built-in at a folder that does not exist, as on a machine without the package.
  ASSERT_THAT(StartServer({{"--fashion_mnist_dir", data_dir_ + "/no-such-package"}}), IsOk());
  JobSpec spec = DcganJob(2);
  spec.set_dataset("fashion-mnist");
  EXPECT_THAT(client_->Submit(spec).status(),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("dataset-fashion-mnist")));
  GAN_ASSERT_OK_AND_ASSIGN(const std::vector<Job> jobs, client_->ListAll());
  EXPECT_TRUE(jobs.empty());
}

// --- Score against PyTorch -------------------------------------------------------------------

// A seed-preset job's checkpoint replaced by one holding the PyTorch discriminator of the
// interchange test data: Score over gRPC reproduces PyTorch's outputs on the same images.
TEST_F(ServerTest, ScoresMatchPyTorchForTheSameWeights) {
  ASSERT_THAT(StartServer(), IsOk());
  JobSpec spec;
  spec.set_preset("seed");
  spec.set_batch_size(4);
  spec.set_dataset("synthetic");
  spec.set_steps(1);
  GAN_ASSERT_OK_AND_ASSIGN(const Job submitted, client_->Submit(spec));
  GAN_ASSERT_OK_AND_ASSIGN(const Job done, client_->WaitUntilEnded(submitted.job_id()));
  ASSERT_EQ(done.state(), gan::v1::JOB_STATE_SUCCEEDED) << done.ShortDebugString();
  const std::string path = data_dir_ + "/jobs/" + done.job_id() + "/checkpoints/step-1.safetensors";
  ASSERT_TRUE(std::filesystem::exists(path)) << path;

  GAN_ASSERT_OK_AND_ASSIGN(gan::v1::GanSpec gan_spec, gan::PresetSpec("seed"));
  gan_spec.set_batch_size(4);
  GAN_ASSERT_OK_AND_ASSIGN(std::unique_ptr<gan::GanTrainer> trainer,
                           gan::GanTrainer::Create(gan_spec));
  GAN_ASSERT_OK_AND_ASSIGN(const gan::SafeTensors torch_weights,
                           gan::ReadSafeTensorsFile(gan::testing::TestDataPath(
                               "reference/interchange/seed_discriminator.safetensors")));
  ASSERT_THAT(gan::LoadNetworkWeights(torch_weights, &trainer->discriminator()), IsOk());
  trainer->set_step(1);
  ASSERT_THAT(gan::SaveCheckpoint(path, *trainer, {1, 0, 0}), IsOk());

  GAN_ASSERT_OK_AND_ASSIGN(const gan::SafeTensors reference,
                           gan::ReadSafeTensorsFile(gan::testing::TestDataPath(
                               "reference/interchange/seed_discriminator_outputs.safetensors")));
  GAN_ASSERT_OK_AND_ASSIGN(const std::vector<float> images, gan::GetF32(reference, "images"));
  GAN_ASSERT_OK_AND_ASSIGN(const std::vector<float> logits, gan::GetF32(reference, "logits"));
  GAN_ASSERT_OK_AND_ASSIGN(const std::vector<float> probabilities,
                           gan::GetF32(reference, "probabilities"));
  const int64_t n = static_cast<int64_t>(logits.size());
  gan::v1::ScoreRequest request;
  request.set_job_id(done.job_id());
  for (int64_t d : {n, int64_t{28}, int64_t{28}, int64_t{1}}) request.add_shape(d);
  // One channel: NCHW and NHWC are the same bytes.
  request.set_float_pixels(images.data(), images.size() * sizeof(float));
  GAN_ASSERT_OK_AND_ASSIGN(const gan::v1::ScoreResponse response, client_->Score(request));
  ASSERT_EQ(response.logits_size(), n);
  gan::testing::ExpectAllClose(
      "logits", std::vector<float>(response.logits().begin(), response.logits().end()), logits,
      1e-4, 0);
  gan::testing::ExpectAllClose(
      "probabilities",
      std::vector<float>(response.probabilities().begin(), response.probabilities().end()),
      probabilities, 1e-4, 0);
}

// --- 6. kill -9 ---------------------------------------------------------------------------------

TEST_F(ServerTest, ResumesAfterKillMinusNine) {
  ASSERT_THAT(StartServer(), IsOk());
  constexpr int64_t kSteps = 12;
  JobSpec spec = DcganJob(kSteps);
  spec.set_checkpoint_every(2);
  GAN_ASSERT_OK_AND_ASSIGN(const Job submitted, client_->Submit(spec, "crash"));
  GAN_ASSERT_OK_AND_ASSIGN(const Job progress,
                           client_->WaitFor(submitted.job_id(), [](const Job& job) {
                             return job.step() >= 5 || Ended(job.state());
                           }));
  server_->Kill();
  ASSERT_EQ(progress.state(), gan::v1::JOB_STATE_RUNNING)
      << "the job ended before the kill: " << progress.ShortDebugString();
  ASSERT_LT(progress.step(), kSteps);

  ASSERT_THAT(RestartServer(), IsOk());
  GAN_ASSERT_OK_AND_ASSIGN(const Job job, client_->WaitUntilEnded(submitted.job_id()));
  EXPECT_EQ(job.state(), gan::v1::JOB_STATE_SUCCEEDED) << job.error_message();
  EXPECT_EQ(job.step(), kSteps);
  EXPECT_EQ(job.latest_checkpoint_step(), kSteps);

  // Every step exactly once, in order, with one resume marker where training picked up again.
  const StreamResult stream = client_->Stream(job.job_id(), 0);
  EXPECT_THAT(stream.status, IsOk());
  int resumes = 0;
  int64_t resumed_from = -1;
  for (const MetricEvent& event : stream.events) {
    if (event.has_resumed_from_step()) ++resumes, resumed_from = event.resumed_from_step();
  }
  EXPECT_EQ(resumes, 1) << Describe(stream.events);
  RecordProperty("killed_at_step", static_cast<int>(progress.step()));
  RecordProperty("resumed_from_step", static_cast<int>(resumed_from));
  // Step 4's checkpoint may still have been in flight (written in the background) at the kill,
  // but step 2's was durable before step 4's began: one write per job at a time.
  EXPECT_GE(resumed_from, 2);
  EXPECT_LE(resumed_from, progress.step() + 2);
  EXPECT_EQ(Describe(stream.events),
            absl::StrCat(StepsThen(0, resumed_from, ""), resumed_from > 0 ? ", " : "", "resumed ",
                         resumed_from, ", ",
                         StepsThen(resumed_from, kSteps, "finished JOB_STATE_SUCCEEDED")));

  // Older checkpoints are pruned across the restart too (the default keeps 3).
  int files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(CheckpointDir(job.job_id()))) {
    if (entry.path().extension() == ".safetensors") ++files;
  }
  EXPECT_LE(files, 3) << "checkpoint files left in " << CheckpointDir(job.job_id());

  GAN_ASSERT_OK_AND_ASSIGN(const Job retry, client_->Submit(spec, "crash"));
  EXPECT_EQ(retry.job_id(), job.job_id());

  GAN_ASSERT_OK_AND_ASSIGN(const int status, StopServer());
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << WaitStatusString(status);
  GAN_ASSERT_OK_AND_ASSIGN(std::unique_ptr<SqliteJobStore> store,
                           SqliteJobStore::Open(data_dir_ + "/jobs.sqlite"));
  EXPECT_THAT(store->CheckIntegrity(), IsOk());
}

// --- 7. A client that walks away from its stream -----------------------------------------------

TEST_F(ServerTest, ClientCancellingItsStreamLeavesTheJobTraining) {
  ASSERT_THAT(StartServer(), IsOk());
  constexpr int64_t kSteps = 6;
  JobSpec spec = DcganJob(kSteps);
  spec.set_checkpoint_every(100);  // the final checkpoint only
  GAN_ASSERT_OK_AND_ASSIGN(const Job submitted, client_->Submit(spec));

  // Several streams, each cancelled after a different number of events, all at once.
  constexpr int kStreams = 6;
  std::vector<std::future<std::string>> outcomes;
  for (int i = 0; i < kStreams; ++i) {
    outcomes.push_back(std::async(std::launch::async, [&, i]() -> std::string {
      const int keep = i % 3;  // events to read before walking away: 0, 1 or 2
      gan::v1::StreamMetricsRequest request;
      request.set_job_id(submitted.job_id());
      grpc::ClientContext context;
      SetDeadline(&context, kJobTimeout);
      auto reader = client_->training()->StreamMetrics(&context, request);
      MetricEvent event;
      int read = 0;
      while (read < keep && reader->Read(&event)) ++read;
      const absl::Time cancelled_at = absl::Now();
      context.TryCancel();
      while (reader->Read(&event)) {
      }
      const grpc::Status status = reader->Finish();
      const absl::Duration took = absl::Now() - cancelled_at;
      if (read < keep) return absl::StrCat("stream ", i, " ended early: ", status.error_message());
      if (status.error_code() != grpc::StatusCode::CANCELLED) {
        return absl::StrCat("stream ", i, " ended with ", ToAbsl(status).ToString());
      }
      if (took > absl::Seconds(5)) {
        return absl::StrCat("stream ", i, " took ", absl::FormatDuration(took), " to end");
      }
      return "";
    }));
  }
  for (auto& outcome : outcomes) EXPECT_EQ(outcome.get(), "");
  GAN_ASSERT_OK_AND_ASSIGN(const Job during, client_->Get(submitted.job_id()));
  EXPECT_LT(during.step(), kSteps) << "the job ended before the streams were cancelled";

  GAN_ASSERT_OK_AND_ASSIGN(const Job job, client_->WaitUntilEnded(submitted.job_id()));
  EXPECT_EQ(job.state(), gan::v1::JOB_STATE_SUCCEEDED) << job.error_message();
  EXPECT_EQ(job.step(), kSteps);
  // And a new stream gets the whole history.
  EXPECT_EQ(Describe(client_->Stream(job.job_id(), 0).events),
            StepsThen(0, kSteps, "finished JOB_STATE_SUCCEEDED"));
}

// --- 8. SIGTERM ----------------------------------------------------------------------------------

TEST_F(ServerTest, SigtermStopsGracefullyAndTheJobResumes) {
  ASSERT_THAT(StartServer(), IsOk());
  constexpr int64_t kSteps = 8;
  JobSpec spec = DcganJob(kSteps);
  spec.set_checkpoint_every(100);  // only the checkpoints of the shutdown and of the end
  GAN_ASSERT_OK_AND_ASSIGN(const Job submitted, client_->Submit(spec, "graceful"));
  GAN_ASSERT_OK_AND_ASSIGN(const Job progress,
                           client_->WaitFor(submitted.job_id(), [](const Job& job) {
                             return job.step() >= 2 || Ended(job.state());
                           }));
  ASSERT_EQ(progress.state(), gan::v1::JOB_STATE_RUNNING);

  // A stream open during the shutdown ends too.
  absl::Notification stream_opened;
  std::future<StreamResult> open_stream = std::async(std::launch::async, [&] {
    return client_->Stream(submitted.job_id(), 0, absl::Seconds(60), &stream_opened);
  });
  ASSERT_TRUE(stream_opened.WaitForNotificationWithTimeout(absl::Seconds(30)));

  const absl::Time start = absl::Now();
  GAN_ASSERT_OK_AND_ASSIGN(const int status, server_->Terminate(absl::Seconds(30)));
  const absl::Duration took = absl::Now() - start;
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << WaitStatusString(status);
  EXPECT_LT(took, absl::Seconds(30));
  EXPECT_THAT(server_->RemainingStdout(), HasSubstr("gan-server: stopped"));
  ASSERT_EQ(open_stream.wait_for(std::chrono::seconds(10)), std::future_status::ready)
      << "a stream outlived the server";
  const StreamResult interrupted = open_stream.get();
  EXPECT_FALSE(interrupted.events.empty());
  for (const MetricEvent& event : interrupted.events) EXPECT_FALSE(event.has_finished());
  RecordProperty("sigterm_to_exit_ms", static_cast<int>(absl::ToInt64Milliseconds(took)));
  RecordProperty("interrupted_stream_status", interrupted.status.ToString());

  ASSERT_THAT(RestartServer(), IsOk());
  GAN_ASSERT_OK_AND_ASSIGN(const Job job, client_->WaitUntilEnded(submitted.job_id()));
  EXPECT_EQ(job.state(), gan::v1::JOB_STATE_SUCCEEDED) << job.error_message();
  EXPECT_EQ(job.step(), kSteps);
  const StreamResult stream = client_->Stream(job.job_id(), 0);
  EXPECT_THAT(stream.status, IsOk());
  int64_t resumed_from = -1;
  for (const MetricEvent& event : stream.events) {
    if (event.has_resumed_from_step()) resumed_from = event.resumed_from_step();
  }
  EXPECT_GE(resumed_from, progress.step());
  EXPECT_EQ(Describe(stream.events),
            absl::StrCat(StepsThen(0, resumed_from, ""), ", resumed ", resumed_from, ", ",
                         StepsThen(resumed_from, kSteps, "finished JOB_STATE_SUCCEEDED")));

  // The request_id survives the restart.
  GAN_ASSERT_OK_AND_ASSIGN(const Job retry, client_->Submit(spec, "graceful"));
  EXPECT_EQ(retry.job_id(), job.job_id());
}

}  // namespace
}  // namespace gan::server
