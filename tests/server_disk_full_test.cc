// A real "disk full" for gan-server: the process runs with RLIMIT_FSIZE lowered (SIGXFSZ
// ignored), so a write past the limit fails with EFBIG as it would on a full disk. The limit
// (12 MiB) leaves room for the SQLite store (the database and its WAL stay a few MB) and the
// checkpoints of a small job (~0.9 MB), but not for the ~20 MB checkpoint of a job with a wide
// generator. That job, resumed from a checkpoint written before the limit, fails at its next
// checkpoint: the job fails naming the checkpoint and the cause, the previous checkpoint stays
// intact, the log says so, health stays SERVING and the other jobs run to the end.

#include <sys/wait.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "core/checkpoint.h"
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

using ::gan::testing::BinaryNextToTests;
using ::gan::testing::ChildOptions;
using ::gan::testing::ChildProcess;
using ::gan::testing::IsOk;
using ::gan::testing::MakeTempDir;
using ::gan::testing::TinyJob;
using ::gan::testing::WaitStatusString;
using ::testing::AllOf;
using ::testing::HasSubstr;

constexpr int64_t kMaxFileBytes = 12 << 20;
constexpr absl::Duration kJobTimeout = absl::Seconds(120);

// gan-server on a free loopback port through /bin/sh, which lowers RLIMIT_FSIZE to
// `max_file_bytes` (0: unlimited) and ignores SIGXFSZ before exec keeps its pid for gan-server.
// stderr (the log) on a pipe.
struct LimitedServer {
  std::unique_ptr<ChildProcess> process;
  int port = 0;
};

absl::StatusOr<LimitedServer> StartLimitedServer(const std::string& data_dir,
                                                 int64_t max_file_bytes) {
  // dash's `ulimit -f` counts 512-byte blocks.
  std::vector<std::string> args = {
      "/bin/sh",
      "-c",
      "trap '' XFSZ; ulimit -f \"$1\" && shift && exec \"$@\"",
      "sh",
      max_file_bytes > 0 ? absl::StrCat(max_file_bytes / 512) : "unlimited",
      BinaryNextToTests("gan-server"),
      "--listen=127.0.0.1:0",
      "--metrics_listen=",
      absl::StrCat("--data_dir=", data_dir),
      "--default_dataset=synthetic",
      "--checkpoint_every=2",
      "--threads_per_job=1",
      "--max_concurrent_jobs=2"};
  ChildOptions options;
  options.capture_stderr = true;
  absl::StatusOr<std::unique_ptr<ChildProcess>> process = ChildProcess::Start(args, options);
  if (!process.ok()) return process.status();
  LimitedServer server{*std::move(process)};
  // "gan-server listening on 127.0.0.1:0 (port 41235), data in /tmp/..."
  absl::StatusOr<std::string> line = server.process->ReadLine(absl::Now() + absl::Seconds(30));
  if (!line.ok()) {
    return absl::Status(line.status().code(),
                        absl::StrCat("no 'listening' line: ", line.status().message()));
  }
  const size_t at = line->find("(port ");
  const size_t end = at == std::string::npos ? at : line->find(')', at);
  if (end == std::string::npos ||
      !absl::SimpleAtoi(line->substr(at + 6, end - at - 6), &server.port)) {
    return absl::InternalError(absl::StrCat("unexpected first line: '", *line, "'"));
  }
  return server;
}

class Client {
 public:
  explicit Client(int port)
      : channel_(grpc::CreateChannel(absl::StrCat("127.0.0.1:", port),
                                     grpc::InsecureChannelCredentials())),
        training_(gan::v1::TrainingService::NewStub(channel_)) {}

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

  // Polls GetJob until `done` holds, reading the server's log meanwhile (its pipe must not fill).
  template <typename Done>
  absl::StatusOr<gan::v1::Job> WaitFor(ChildProcess* server, const std::string& job_id, Done done) {
    const absl::Time deadline = absl::Now() + kJobTimeout;
    while (true) {
      absl::StatusOr<gan::v1::Job> job = Get(job_id);
      if (!job.ok() || done(*job)) return job;
      if (absl::Now() > deadline) {
        return absl::DeadlineExceededError(absl::StrCat("job still ", job->ShortDebugString()));
      }
      server->Pump(absl::Milliseconds(10));
    }
  }

  absl::StatusOr<int> Health() {
    return CheckServerHealth(channel_, absl::Now() + absl::Seconds(30));
  }

 private:
  static void SetDeadline(grpc::ClientContext* context) {
    context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  }

  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<gan::v1::TrainingService::Stub> training_;
};

bool Ended(const gan::v1::Job& job) {
  return job.state() == gan::v1::JOB_STATE_SUCCEEDED || job.state() == gan::v1::JOB_STATE_FAILED ||
         job.state() == gan::v1::JOB_STATE_CANCELLED;
}

// TinyJob with a 2048-unit first generator layer: ~1.67 M parameters, ~20 MB per checkpoint
// (weights and both Adam moments), and still a few milliseconds per step.
gan::v1::JobSpec WideJob(int64_t steps) {
  gan::v1::JobSpec spec = TinyJob(steps);
  spec.mutable_gan()->mutable_generator()->mutable_layers(0)->mutable_dense()->set_units(2048);
  spec.set_checkpoint_every(5);
  return spec;
}

// The log lines (stderr) that mention `text`.
std::string LinesWith(const std::string& log, const std::string& text) {
  std::string lines;
  for (absl::string_view line : absl::StrSplit(log, '\n')) {
    if (absl::StrContains(line, text)) absl::StrAppend(&lines, line, "\n");
  }
  return lines;
}

TEST(ServerDiskFullTest, ACheckpointThatDoesNotFitFailsItsJobAndTheServerTrainsOn) {
  const std::string data_dir = MakeTempDir("data");

  // 1. No limit: the wide job writes checkpoints (~20 MB each); SIGTERM pauses it after one more.
  GAN_ASSERT_OK_AND_ASSIGN(LimitedServer first, StartLimitedServer(data_dir, 0));
  std::string wide_id;
  {
    Client client(first.port);
    GAN_ASSERT_OK_AND_ASSIGN(const gan::v1::Job wide, client.Submit(WideJob(100'000)));
    wide_id = wide.job_id();
    ASSERT_THAT(client
                    .WaitFor(first.process.get(), wide_id,
                             [](const gan::v1::Job& j) { return j.latest_checkpoint_step() >= 5; })
                    .status(),
                IsOk());
  }
  GAN_ASSERT_OK_AND_ASSIGN(const int first_exit, first.process->Terminate(absl::Seconds(60)));
  ASSERT_TRUE(WIFEXITED(first_exit) && WEXITSTATUS(first_exit) == 0)
      << WaitStatusString(first_exit) << "\n"
      << first.process->err();

  // 2. Files limited to 12 MiB: the job resumes, and its next checkpoint does not fit.
  GAN_ASSERT_OK_AND_ASSIGN(LimitedServer server, StartLimitedServer(data_dir, kMaxFileBytes));
  Client client(server.port);
  GAN_ASSERT_OK_AND_ASSIGN(const gan::v1::Job small, client.Submit(TinyJob(40)));
  GAN_ASSERT_OK_AND_ASSIGN(const gan::v1::Job failed,
                           client.WaitFor(server.process.get(), wide_id, Ended));
  ASSERT_EQ(failed.state(), gan::v1::JOB_STATE_FAILED) << failed.ShortDebugString();
  const std::string dir = absl::StrCat(data_dir, "/jobs/", wide_id, "/checkpoints");
  const int64_t previous = failed.latest_checkpoint_step();
  // The failed write is the first periodic checkpoint after the resume; written in the background,
  // it ends the job at a step boundary after the write (training may have gone a little further).
  const int64_t failed_step = (previous / 5 + 1) * 5;
  const std::string previous_file = absl::StrCat(dir, "/step-", previous, ".safetensors");
  const std::string failed_file = absl::StrCat(dir, "/step-", failed_step, ".safetensors");
  EXPECT_GE(failed.step(), failed_step);
  EXPECT_THAT(
      failed.error_message(),
      AllOf(HasSubstr(absl::StrCat("checkpoint at step ", failed_step, " not written")),
            HasSubstr(failed_file), HasSubstr("File too large"),
            HasSubstr(absl::StrCat("the previous checkpoint ", previous_file, " is intact"))));

  // The previous checkpoint is whole; nothing of the failed write is left.
  GAN_ASSERT_OK_AND_ASSIGN(const SafeTensors kept, ReadSafeTensorsFile(previous_file));
  EXPECT_THAT(VerifyCheckpointChecksum(kept), IsOk());
  EXPECT_EQ(kept.metadata.at("step"), absl::StrCat(previous));
  EXPECT_GT(std::filesystem::file_size(previous_file), static_cast<uintmax_t>(kMaxFileBytes));
  for (const std::string& name : gan::testing::DirectoryNames(dir)) {
    EXPECT_FALSE(absl::StrContains(name, ".tmp.")) << name;
  }
  EXPECT_FALSE(std::filesystem::exists(failed_file));

  // SERVING; the small job beside it and one submitted after it run to the end.
  GAN_ASSERT_OK_AND_ASSIGN(const int health, client.Health());
  EXPECT_EQ(health, kServing);
  GAN_ASSERT_OK_AND_ASSIGN(const gan::v1::Job small_done,
                           client.WaitFor(server.process.get(), small.job_id(), Ended));
  EXPECT_EQ(small_done.state(), gan::v1::JOB_STATE_SUCCEEDED) << small_done.error_message();
  EXPECT_EQ(small_done.latest_checkpoint_step(), 40);
  GAN_ASSERT_OK_AND_ASSIGN(const gan::v1::Job after, client.Submit(TinyJob(10)));
  GAN_ASSERT_OK_AND_ASSIGN(const gan::v1::Job after_done,
                           client.WaitFor(server.process.get(), after.job_id(), Ended));
  EXPECT_EQ(after_done.state(), gan::v1::JOB_STATE_SUCCEEDED) << after_done.error_message();

  GAN_ASSERT_OK_AND_ASSIGN(const int exit, server.process->Terminate(absl::Seconds(60)));
  EXPECT_TRUE(WIFEXITED(exit) && WEXITSTATUS(exit) == 0) << WaitStatusString(exit);
  // What the log says about the job: one line when it resumed, one when it failed.
  const std::string log = LinesWith(server.process->err(), wide_id);
  std::printf("gan-server's log about %s:\n%s", wide_id.c_str(), log.c_str());
  EXPECT_THAT(log, HasSubstr("job resumed"));
  EXPECT_THAT(LinesWith(log, "job failed"),
              AllOf(HasSubstr("File too large"), HasSubstr("is intact")));
  // No error line at all: the SQLite store kept working under the limit.
  EXPECT_THAT(server.process->err(), ::testing::Not(HasSubstr("Z error ")));

  GAN_ASSERT_OK_AND_ASSIGN(std::unique_ptr<SqliteJobStore> store,
                           SqliteJobStore::Open(data_dir + "/jobs.sqlite"));
  EXPECT_THAT(store->CheckIntegrity(), IsOk());
  GAN_ASSERT_OK_AND_ASSIGN(const JobRecord record, store->GetJob(wide_id));
  EXPECT_EQ(record.state, gan::v1::JOB_STATE_FAILED);
  EXPECT_EQ(record.latest_checkpoint_step, previous);
  store.reset();
  std::error_code error;
  if (!::testing::Test::HasFailure()) std::filesystem::remove_all(data_dir, error);
}

}  // namespace
}  // namespace gan::server
