// End-to-end tests of JobSpec.init_from against the real gan-server binary: a job warm-started from
// another job's checkpoint continues from that checkpoint's losses (and not from a fresh
// network's), and every bad warm start is refused at SubmitJob with its code and message, creating
// no job. The server runs with tokens for two trainers, alice and bob, who cannot see each other's
// jobs.

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gan/v1/service.grpc.pb.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "server/auth.h"
#include "tests/child_process.h"
#include "tests/test_jobs.h"
#include "tests/test_util.h"

namespace gan::server {
namespace {

using ::gan::testing::ChildProcess;
using ::gan::testing::GanServer;
using ::gan::testing::MakeTempDir;
using ::gan::testing::StartGanServer;
using ::gan::testing::TinyJob;
using ::testing::AllOf;
using ::testing::HasSubstr;

constexpr absl::Duration kStartTimeout = absl::Seconds(30);

// One principal's view of the server.
class Client {
 public:
  Client(const std::string& address, std::string token)
      : token_(std::move(token)),
        stub_(gan::v1::TrainingService::NewStub(
            grpc::CreateChannel(address, grpc::InsecureChannelCredentials()))) {}

  grpc::Status Submit(const gan::v1::JobSpec& spec, gan::v1::Job* job) {
    grpc::ClientContext context;
    Prepare(&context, absl::Seconds(60));
    gan::v1::SubmitJobRequest request;
    *request.mutable_spec() = spec;
    return stub_->SubmitJob(&context, request, job);
  }

  grpc::Status Cancel(const std::string& job_id) {
    grpc::ClientContext context;
    Prepare(&context, absl::Seconds(60));
    gan::v1::CancelJobRequest request;
    request.set_job_id(job_id);
    gan::v1::Job job;
    return stub_->CancelJob(&context, request, &job);
  }

  int CountJobs() {
    grpc::ClientContext context;
    Prepare(&context, absl::Seconds(60));
    gan::v1::ListJobsRequest request;
    request.set_page_size(100);
    gan::v1::ListJobsResponse response;
    const grpc::Status status = stub_->ListJobs(&context, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.jobs_size();
  }

  // The job's step metrics until it ends; its final state in *final.
  std::vector<gan::v1::StepMetrics> Watch(const std::string& job_id, gan::v1::Job* final) {
    grpc::ClientContext context;
    Prepare(&context, absl::Seconds(300));
    gan::v1::StreamMetricsRequest request;
    request.set_job_id(job_id);
    auto reader = stub_->StreamMetrics(&context, request);
    std::vector<gan::v1::StepMetrics> steps;
    gan::v1::MetricEvent event;
    while (reader->Read(&event)) {
      if (event.has_step()) steps.push_back(event.step());
      if (event.has_finished()) *final = event.finished();
    }
    const grpc::Status status = reader->Finish();
    EXPECT_TRUE(status.ok()) << status.error_message();
    return steps;
  }

  // Submits, watches to the end and expects success.
  std::vector<gan::v1::StepMetrics> Train(const gan::v1::JobSpec& spec, gan::v1::Job* final) {
    gan::v1::Job job;
    const grpc::Status status = Submit(spec, &job);
    EXPECT_TRUE(status.ok()) << status.error_message();
    std::vector<gan::v1::StepMetrics> steps = Watch(job.job_id(), final);
    EXPECT_EQ(final->state(), gan::v1::JOB_STATE_SUCCEEDED) << final->error_message();
    return steps;
  }

 private:
  void Prepare(grpc::ClientContext* context, absl::Duration timeout) const {
    context->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
    context->AddMetadata("authorization", "Bearer " + token_);
  }

  std::string token_;
  std::unique_ptr<gan::v1::TrainingService::Stub> stub_;
};

class ServerWarmStartTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir(::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::ofstream(dir_ + "/tokens")
        << "trainer alice " << absl::BytesToHexString(Sha256("t-alice")) << "\n"
        << "trainer bob " << absl::BytesToHexString(Sha256("t-bob")) << "\n";
    absl::StatusOr<GanServer> server = StartGanServer(
        {{"--data_dir", dir_ + "/data"}, {"--auth_tokens", dir_ + "/tokens"}}, kStartTimeout);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(server->process);
    alice_ = std::make_unique<Client>(server->address(), "t-alice");
    bob_ = std::make_unique<Client>(server->address(), "t-bob");
  }

  void TearDown() override {
    alice_.reset();
    bob_.reset();
    if (server_ != nullptr) (void)server_->Terminate(absl::Seconds(30));
    std::error_code error;
    if (!HasFailure()) std::filesystem::remove_all(dir_, error);
  }

  std::string dir_;
  std::unique_ptr<ChildProcess> server_;
  std::unique_ptr<Client> alice_, bob_;
};

gan::v1::JobSpec WarmJob(int64_t steps, const std::string& source, int64_t checkpoint_step,
                         bool init_optimizer) {
  gan::v1::JobSpec spec = TinyJob(steps);
  spec.set_seed(5);
  spec.mutable_init_from()->set_job_id(source);
  spec.mutable_init_from()->set_checkpoint_step(checkpoint_step);
  spec.mutable_init_from()->set_init_optimizer(init_optimizer);
  return spec;
}

// Mean d_loss and g_loss of steps [begin, end) of a job's metrics.
struct Losses {
  double d = 0, g = 0;
};
Losses MeanLosses(const std::vector<gan::v1::StepMetrics>& steps, size_t begin, size_t end) {
  Losses mean;
  EXPECT_LE(end, steps.size());
  for (size_t i = begin; i < end && i < steps.size(); ++i) {
    mean.d += steps[i].d_loss() / (end - begin);
    mean.g += steps[i].g_loss() / (end - begin);
  }
  return mean;
}
double Distance(const Losses& a, const Losses& b) {
  return std::abs(a.d - b.d) + std::abs(a.g - b.g);
}

TEST_F(ServerWarmStartTest, AWarmStartedJobContinuesFromTheSourceCheckpointsLosses) {
  // A trains long enough for its losses to move well away from a fresh network's.
  constexpr int64_t kSourceSteps = 200;
  constexpr size_t kWindow = 10;
  gan::v1::JobSpec source_spec = TinyJob(kSourceSteps);
  source_spec.set_checkpoint_every(100);
  gan::v1::Job a;
  const std::vector<gan::v1::StepMetrics> a_steps = alice_->Train(source_spec, &a);
  ASSERT_EQ(a_steps.size(), kSourceSteps);
  EXPECT_EQ(a.latest_checkpoint_step(), kSourceSteps);

  // B starts from A's newest checkpoint (with Adam's state), C from scratch; both with another
  // seed (other noise, data order and dropout masks than A's).
  gan::v1::Job b, c;
  const std::vector<gan::v1::StepMetrics> b_steps =
      alice_->Train(WarmJob(kWindow, a.job_id(), 0, true), &b);
  EXPECT_EQ(b.spec().init_from().job_id(), a.job_id());
  gan::v1::JobSpec fresh = TinyJob(kWindow);
  fresh.set_seed(5);
  const std::vector<gan::v1::StepMetrics> c_steps = alice_->Train(fresh, &c);
  ASSERT_EQ(b_steps.size(), kWindow);
  ASSERT_EQ(c_steps.size(), kWindow);

  const Losses a_last = MeanLosses(a_steps, kSourceSteps - kWindow, kSourceSteps);
  const Losses b_first = MeanLosses(b_steps, 0, kWindow);
  const Losses c_first = MeanLosses(c_steps, 0, kWindow);
  const std::string losses =
      absl::StrCat("mean d_loss / g_loss: A's last ", kWindow, " steps ", a_last.d, " / ", a_last.g,
                   "; warm-started B's first ", b_first.d, " / ", b_first.g, "; fresh C's first ",
                   c_first.d, " / ", c_first.g);
  RecordProperty("losses", losses);
  // The test means something only if training moved A's losses away from a fresh start ...
  ASSERT_GT(Distance(c_first, a_last), 0.3) << losses;
  // ... and B, one step after A's checkpoint, is where A was: far closer to A's last losses than
  // a fresh network is.
  EXPECT_LT(Distance(b_first, a_last), 0.25 * Distance(c_first, a_last)) << losses;

  // From A's earlier checkpoint (step 100), weights only: B's first step sees A's step-100
  // networks, so its losses are near A's around step 100 and not a fresh network's.
  gan::v1::Job b100;
  const std::vector<gan::v1::StepMetrics> b100_steps =
      alice_->Train(WarmJob(kWindow, a.job_id(), 100, false), &b100);
  ASSERT_EQ(b100_steps.size(), kWindow);
  const Losses a_100 = MeanLosses(a_steps, 100 - kWindow / 2, 100 + kWindow / 2);
  const Losses b100_first = MeanLosses(b100_steps, 0, 1);
  const std::string losses_100 = absl::StrCat(
      "A around step 100: ", a_100.d, " / ", a_100.g, "; B100's first step ", b100_first.d, " / ",
      b100_first.g, "; fresh C's first steps ", c_first.d, " / ", c_first.g);
  RecordProperty("losses_100", losses_100);
  EXPECT_LT(Distance(b100_first, a_100), 0.5 * Distance(c_first, a_100)) << losses_100;
}

TEST_F(ServerWarmStartTest, BadWarmStartsAreRefusedAtSubmissionAndCreateNoJob) {
  gan::v1::JobSpec source_spec = TinyJob(4);
  source_spec.set_checkpoint_every(2);
  gan::v1::Job a, bobs;
  alice_->Train(source_spec, &a);
  bob_->Train(TinyJob(2), &bobs);
  const int alice_jobs = alice_->CountJobs();
  ASSERT_EQ(alice_jobs, 1);

  auto refused = [&](const gan::v1::JobSpec& spec) {
    gan::v1::Job job;
    const grpc::Status status = alice_->Submit(spec, &job);
    EXPECT_FALSE(status.ok()) << "created " << job.job_id();
    return status;
  };
  // Another principal's job is NOT_FOUND in exactly an unknown job's words.
  const std::string unknown_id = "job-00000000deadbeef";
  const grpc::Status unknown = refused(WarmJob(2, unknown_id, 0, false));
  const grpc::Status others = refused(WarmJob(2, bobs.job_id(), 0, false));
  EXPECT_EQ(unknown.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(others.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(unknown.error_message(), AllOf(HasSubstr("init_from"), HasSubstr(unknown_id)));
  EXPECT_EQ(absl::StrReplaceAll(others.error_message(), {{bobs.job_id(), "JOB"}}),
            absl::StrReplaceAll(unknown.error_message(), {{unknown_id, "JOB"}}));

  // A step the source job has no checkpoint at.
  const grpc::Status no_step = refused(WarmJob(2, a.job_id(), 3, false));
  EXPECT_EQ(no_step.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(no_step.error_message(), AllOf(HasSubstr("init_from"), HasSubstr("step 3")));

  // A job with no durable checkpoint yet: a long job before its first checkpoint.
  gan::v1::Job running;
  ASSERT_TRUE(alice_->Submit(gan::testing::LongJob(), &running).ok());
  const grpc::Status none = refused(WarmJob(2, running.job_id(), 0, false));
  EXPECT_EQ(none.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(none.error_message(), AllOf(HasSubstr("init_from"), HasSubstr("no checkpoint")));
  EXPECT_TRUE(alice_->Cancel(running.job_id()).ok());

  // Networks that do not match the checkpoint: the first such tensor, with both shapes.
  gan::v1::JobSpec wider = WarmJob(2, a.job_id(), 0, true);
  wider.mutable_gan()->mutable_discriminator()->mutable_layers(1)->mutable_dense()->set_units(48);
  const grpc::Status mismatch = refused(wider);
  EXPECT_EQ(mismatch.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(mismatch.error_message(),
              AllOf(HasSubstr("init_from"), HasSubstr("'discriminator.1.weight'"),
                    HasSubstr("(32,784)"), HasSubstr("(48,784)")));

  // Fields checked before anything is looked up.
  const grpc::Status no_id = refused(WarmJob(2, "", 0, false));
  EXPECT_EQ(no_id.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(no_id.error_message(), HasSubstr("init_from.job_id"));
  const grpc::Status negative = refused(WarmJob(2, a.job_id(), -1, false));
  EXPECT_EQ(negative.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(negative.error_message(), HasSubstr("init_from.checkpoint_step"));

  // Nothing was created but the long job.
  EXPECT_EQ(alice_->CountJobs(), alice_jobs + 1);
}

}  // namespace
}  // namespace gan::server
