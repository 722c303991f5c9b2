// A checkpoint write that fails inside a running server (the atomic write's injected I/O error,
// io/atomic_file.h, with the server in this process): the job fails with a message naming the
// checkpoint, the cause and the previous checkpoint, which stays intact and is what Score uses;
// health stays SERVING, the job running beside it trains on, and a new job runs to the end.
// The same fault from a real full disk is tests/server_disk_full_test.cc.

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "core/checkpoint.h"
#include "core/safetensors.h"
#include "gan/v1/service.grpc.pb.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "io/atomic_file.h"
#include "tests/grpc_test_util.h"
#include "tests/in_process_server.h"
#include "tests/test_jobs.h"
#include "tests/test_util.h"

namespace gan::server {
namespace {

using ::gan::testing::IsOk;
using ::gan::testing::LongJob;
using ::gan::testing::TinyJob;
using ::testing::AllOf;
using ::testing::HasSubstr;

constexpr absl::Duration kJobTimeout = absl::Seconds(120);

class CheckpointWriteFailureTest : public gan::testing::InProcessServerTest {
 protected:
  void TearDown() override { SetAtomicWriteFaultForTesting(AtomicWriteStage::kNone); }

  static void SetDeadline(grpc::ClientContext* context) {
    context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  }

  absl::StatusOr<gan::v1::Job> Submit(const gan::v1::JobSpec& spec) {
    grpc::ClientContext context;
    SetDeadline(&context);
    gan::v1::SubmitJobRequest request;
    *request.mutable_spec() = spec;
    gan::v1::Job job;
    const grpc::Status status = training_->SubmitJob(&context, request, &job);
    if (!status.ok()) return ToAbsl(status);
    return job;
  }

  absl::StatusOr<gan::v1::Job> Get(const std::string& job_id) {
    grpc::ClientContext context;
    SetDeadline(&context);
    gan::v1::GetJobRequest request;
    request.set_job_id(job_id);
    gan::v1::Job job;
    const grpc::Status status = training_->GetJob(&context, request, &job);
    if (!status.ok()) return ToAbsl(status);
    return job;
  }

  absl::StatusOr<gan::v1::Job> Cancel(const std::string& job_id) {
    grpc::ClientContext context;
    SetDeadline(&context);
    gan::v1::CancelJobRequest request;
    request.set_job_id(job_id);
    gan::v1::Job job;
    const grpc::Status status = training_->CancelJob(&context, request, &job);
    if (!status.ok()) return ToAbsl(status);
    return job;
  }

  // Polls GetJob until `done` holds; DEADLINE_EXCEEDED with the job's last state after
  // kJobTimeout.
  template <typename Done>
  absl::StatusOr<gan::v1::Job> WaitFor(const std::string& job_id, Done done) {
    const absl::Time deadline = absl::Now() + kJobTimeout;
    while (true) {
      absl::StatusOr<gan::v1::Job> job = Get(job_id);
      if (!job.ok() || done(*job)) return job;
      if (absl::Now() > deadline) {
        return absl::DeadlineExceededError(absl::StrCat("job still ", job->ShortDebugString()));
      }
      absl::SleepFor(absl::Milliseconds(10));
    }
  }

  static bool Ended(const gan::v1::Job& job) {
    return job.state() == gan::v1::JOB_STATE_SUCCEEDED ||
           job.state() == gan::v1::JOB_STATE_FAILED || job.state() == gan::v1::JOB_STATE_CANCELLED;
  }

  std::string CheckpointFile(const std::string& job_id, int64_t step) const {
    return absl::StrCat(options_.data_dir, "/jobs/", job_id, "/checkpoints/step-", step,
                        ".safetensors");
  }
};

TEST_F(CheckpointWriteFailureTest, TheJobFailsNamingTheCauseAndTheServerTrainsOn) {
  options_.max_concurrent_jobs = 2;
  Start();

  // A job that only checkpoints when it stops, and one that checkpoints every 5 steps.
  GAN_ASSERT_OK_AND_ASSIGN(const gan::v1::Job beside, Submit(LongJob()));
  gan::v1::JobSpec spec = TinyJob(100'000);
  spec.set_checkpoint_every(5);
  GAN_ASSERT_OK_AND_ASSIGN(const gan::v1::Job victim, Submit(spec));
  ASSERT_THAT(
      WaitFor(victim.job_id(), [](const gan::v1::Job& j) { return j.latest_checkpoint_step() > 0; })
          .status(),
      IsOk());
  ASSERT_THAT(WaitFor(beside.job_id(), [](const gan::v1::Job& j) { return j.step() > 0; }).status(),
              IsOk());

  // The next atomic write in the process (the victim's next checkpoint: the other job writes
  // none until it stops) fails after its bytes went to the temp file.
  SetAtomicWriteFaultForTesting(AtomicWriteStage::kAfterWrite);
  GAN_ASSERT_OK_AND_ASSIGN(const gan::v1::Job failed, WaitFor(victim.job_id(), Ended));
  ASSERT_EQ(failed.state(), gan::v1::JOB_STATE_FAILED) << failed.ShortDebugString();
  // The failed write is the one after the last recorded checkpoint; written in the background, it
  // ends the job at a step boundary after the write (so training may have gone a little further).
  const int64_t previous = failed.latest_checkpoint_step();
  const int64_t step = previous + 5;
  EXPECT_EQ(previous % 5, 0);
  EXPECT_GE(failed.step(), step);
  EXPECT_THAT(
      failed.error_message(),
      AllOf(HasSubstr(absl::StrCat("checkpoint at step ", step, " not written")),
            HasSubstr(CheckpointFile(victim.job_id(), step)), HasSubstr("injected fault"),
            HasSubstr(absl::StrCat("the previous checkpoint ",
                                   CheckpointFile(victim.job_id(), previous), " is intact"))));

  // On disk: the previous checkpoint, whole; nothing of the failed write.
  EXPECT_FALSE(std::filesystem::exists(CheckpointFile(victim.job_id(), step)));
  for (const std::string& name : gan::testing::DirectoryNames(
           absl::StrCat(options_.data_dir, "/jobs/", victim.job_id(), "/checkpoints"))) {
    EXPECT_FALSE(absl::StrContains(name, ".tmp.")) << name;
  }
  GAN_ASSERT_OK_AND_ASSIGN(const SafeTensors kept,
                           ReadSafeTensorsFile(CheckpointFile(victim.job_id(), previous)));
  EXPECT_THAT(VerifyCheckpointChecksum(kept), IsOk());
  EXPECT_EQ(kept.metadata.at("step"), absl::StrCat(previous));

  // Score answers from it: the store names the checkpoint that is on disk.
  grpc::ClientContext score_context;
  SetDeadline(&score_context);
  gan::v1::ScoreRequest score;
  score.set_job_id(victim.job_id());
  for (int64_t d : {2, 28, 28, 1}) score.add_shape(d);
  score.set_uint8_pixels(std::string(2 * 784, '\x80'));
  gan::v1::ScoreResponse scored;
  const grpc::Status scored_status = scoring_->Score(&score_context, score, &scored);
  ASSERT_TRUE(scored_status.ok()) << scored_status.error_message();
  EXPECT_EQ(scored.checkpoint_step(), previous);

  // The server is SERVING, the other job trains on, and a new job runs to the end.
  GAN_ASSERT_OK_AND_ASSIGN(const int health,
                           CheckServerHealth(channel_, absl::Now() + absl::Seconds(30)));
  EXPECT_EQ(health, kServing);
  GAN_ASSERT_OK_AND_ASSIGN(const gan::v1::Job beside_then, Get(beside.job_id()));
  ASSERT_EQ(beside_then.state(), gan::v1::JOB_STATE_RUNNING);
  EXPECT_THAT(WaitFor(beside.job_id(),
                      [&](const gan::v1::Job& j) { return j.step() > beside_then.step() + 10; })
                  .status(),
              IsOk());
  GAN_ASSERT_OK_AND_ASSIGN(const gan::v1::Job next, Submit(TinyJob(12)));
  GAN_ASSERT_OK_AND_ASSIGN(const gan::v1::Job next_done, WaitFor(next.job_id(), Ended));
  EXPECT_EQ(next_done.state(), gan::v1::JOB_STATE_SUCCEEDED) << next_done.error_message();
  EXPECT_EQ(next_done.latest_checkpoint_step(), 12);

  // Stopping the other job writes its checkpoint: writes work again.
  ASSERT_THAT(Cancel(beside.job_id()).status(), IsOk());
  GAN_ASSERT_OK_AND_ASSIGN(const gan::v1::Job beside_done, WaitFor(beside.job_id(), Ended));
  EXPECT_EQ(beside_done.state(), gan::v1::JOB_STATE_CANCELLED);
  EXPECT_GT(beside_done.latest_checkpoint_step(), 0);
}

}  // namespace
}  // namespace gan::server
