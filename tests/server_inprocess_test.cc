// The server as a library: Server::BuildAndStart in this process (no child process), driven
// through a real gRPC channel on loopback.

#include <chrono>
#include <memory>
#include <string>

#include "absl/time/clock.h"
#include "gan/v1/service.grpc.pb.h"
#include "gmock/gmock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "server/server.h"
#include "tests/in_process_server.h"
#include "tests/test_jobs.h"
#include "tests/test_util.h"

namespace gan::server {
namespace {

using ::gan::testing::IsOk;
using ::gan::testing::LongJob;
using ::gan::testing::MakeTempDir;
using ::gan::testing::StatusIs;
using ::gan::testing::TinyJob;
using ::testing::HasSubstr;

class ServerInProcessTest : public gan::testing::InProcessServerTest {
 protected:
  static void SetDeadline(grpc::ClientContext* context, int seconds = 30) {
    context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(seconds));
  }

  grpc::Status Submit(const gan::v1::JobSpec& spec, gan::v1::Job* job) {
    grpc::ClientContext context;
    SetDeadline(&context);
    gan::v1::SubmitJobRequest request;
    *request.mutable_spec() = spec;
    return training_->SubmitJob(&context, request, job);
  }

  // Streams the job to its end; returns the last event's job.
  gan::v1::Job StreamToEnd(const std::string& job_id, int* steps_seen) {
    grpc::ClientContext context;
    SetDeadline(&context, 60);
    gan::v1::StreamMetricsRequest request;
    request.set_job_id(job_id);
    auto reader = training_->StreamMetrics(&context, request);
    gan::v1::MetricEvent event;
    gan::v1::Job finished;
    *steps_seen = 0;
    while (reader->Read(&event)) {
      if (event.has_step()) ++*steps_seen;
      if (event.has_finished()) finished = event.finished();
    }
    EXPECT_TRUE(reader->Finish().ok());
    return finished;
  }
};

TEST_F(ServerInProcessTest, TrainsStreamsScoresAndSamples) {
  Start();
  gan::v1::Job job;
  ASSERT_TRUE(Submit(TinyJob(12), &job).ok());
  int steps = 0;
  const gan::v1::Job finished = StreamToEnd(job.job_id(), &steps);
  EXPECT_EQ(finished.state(), gan::v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(steps, 12);

  grpc::ClientContext score_context;
  SetDeadline(&score_context);
  gan::v1::ScoreRequest score;
  score.set_job_id(job.job_id());
  for (int64_t d : {2, 28, 28, 1}) score.add_shape(d);
  score.set_uint8_pixels(std::string(2 * 784, '\x80'));
  gan::v1::ScoreResponse scored;
  ASSERT_TRUE(scoring_->Score(&score_context, score, &scored).ok());
  ASSERT_EQ(scored.probabilities_size(), 2);
  EXPECT_EQ(scored.checkpoint_step(), 12);

  grpc::ClientContext sample_context;
  SetDeadline(&sample_context);
  gan::v1::SampleImagesRequest sample;
  sample.set_job_id(job.job_id());
  sample.set_count(3);
  gan::v1::SampleImagesResponse samples;
  ASSERT_TRUE(training_->SampleImages(&sample_context, sample, &samples).ok());
  EXPECT_EQ(samples.pixels().size(), 3u * 784);

  // Health is served and turns NOT_SERVING at shutdown.
  auto health = grpc::health::v1::Health::NewStub(channel_);
  grpc::ClientContext health_context;
  SetDeadline(&health_context);
  grpc::health::v1::HealthCheckResponse serving;
  ASSERT_TRUE(health->Check(&health_context, {}, &serving).ok());
  EXPECT_EQ(serving.status(), grpc::health::v1::HealthCheckResponse::SERVING);
  server_->Shutdown();
  server_->Wait();  // returns at once after Shutdown
}

TEST_F(ServerInProcessTest, CancelReturnsAtOnceAndShutdownPausesRunningJobs) {
  Start();
  gan::v1::Job running;
  ASSERT_TRUE(Submit(LongJob(), &running).ok());
  gan::v1::Job second;
  ASSERT_TRUE(Submit(LongJob(), &second).ok());
  // Cancel of the running job answers with it still RUNNING, well before any step could end.
  for (int i = 0; i < 200 && running.step() == 0; ++i) {
    grpc::ClientContext context;
    SetDeadline(&context);
    gan::v1::GetJobRequest get;
    get.set_job_id(running.job_id());
    ASSERT_TRUE(training_->GetJob(&context, get, &running).ok());
    absl::SleepFor(absl::Milliseconds(10));
  }
  grpc::ClientContext cancel_context;
  SetDeadline(&cancel_context, 2);
  gan::v1::CancelJobRequest cancel;
  cancel.set_job_id(second.job_id());
  gan::v1::Job cancelled;
  ASSERT_TRUE(training_->CancelJob(&cancel_context, cancel, &cancelled).ok());
  EXPECT_EQ(cancelled.state(), gan::v1::JOB_STATE_CANCELLED);  // it was queued

  const absl::Time start = absl::Now();
  server_->Shutdown();
  EXPECT_LT(absl::Now() - start, absl::Seconds(options_.shutdown_grace_seconds + 10));
  server_.reset();
  // A new server on the same data resumes the job that was running.
  Start();
  grpc::ClientContext context;
  SetDeadline(&context);
  gan::v1::GetJobRequest get;
  get.set_job_id(running.job_id());
  gan::v1::Job resumed;
  ASSERT_TRUE(training_->GetJob(&context, get, &resumed).ok());
  EXPECT_EQ(resumed.state(), gan::v1::JOB_STATE_RUNNING);
  EXPECT_GT(resumed.latest_checkpoint_step(), 0);
}

TEST_F(ServerInProcessTest, BadOptionsAreRefusedNamingTheOption) {
  options_.listen = "";
  EXPECT_THAT(Server::BuildAndStart(options_).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--listen")));
  options_.listen = "127.0.0.1:0";
  options_.log_format = "xml";
  EXPECT_THAT(Server::BuildAndStart(options_).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--log_format")));
  options_.log_format = "text";
  // A port another server holds.
  Start();
  Options second = options_;
  second.listen = absl::StrCat("127.0.0.1:", server_->port());
  second.data_dir += "-second";
  EXPECT_THAT(Server::BuildAndStart(second).status(),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("--listen")));
}

}  // namespace
}  // namespace gan::server
