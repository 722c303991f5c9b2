// kill -9 at pseudo-random moments, 20 times in a row on one data directory: gan-server trains a
// job that checkpoints after every step and is SIGKILLed at a seeded random delay after it
// resumed training. A step spends a good part of its time in its checkpoint, so many kills land
// inside one: while its file is written (its temp file is left), or between the file's rename
// and its row in the store. After every kill jobs.sqlite passes `PRAGMA integrity_check`, and the
// restarted server resumes the job from the newest intact checkpoint within the stored history
// (what the test computes from the directory and the store matches the server's "job resumed"
// log line). After the 20th restart the job runs to the end and its history has every step
// exactly once.
//
// The seed is printed; GAN_CRASH_SEED=<n> repeats a run's delays (the moments they hit depend on
// the machine's timing).

#include <sqlite3.h>
#include <sys/wait.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "core/checkpoint.h"
#include "core/safetensors.h"
#include "gan/v1/service.grpc.pb.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tests/child_process.h"
#include "tests/grpc_test_util.h"
#include "tests/test_jobs.h"
#include "tests/test_util.h"

namespace gan::server {
namespace {

using ::gan::testing::ChildOptions;
using ::gan::testing::ChildProcess;
using ::gan::testing::GanServer;
using ::gan::testing::IsOk;
using ::gan::testing::MakeTempDir;
using ::gan::testing::StartGanServer;
using ::gan::testing::TinyJob;
using ::gan::testing::WaitStatusString;

constexpr int kKills = 20;
constexpr int64_t kCheckpointEvery = 1;
// Kill delays are uniform in [0, kDelaySpan * the measured time of one step], counted from the
// moment the job was seen training; a kill comes early when the job got kMaxStepsPerRun steps
// further before the delay ran out (steps faster than measured), so the 20 runs train at most
// about 20 * kMaxStepsPerRun steps.
constexpr int kDelaySpan = 3 * kCheckpointEvery;
constexpr int64_t kMaxStepsPerRun = 8;
// Room for 20 runs, and a final run of a few seconds.
constexpr int64_t kSteps = 400;
constexpr uint64_t kDefaultSeed = 20240611;
constexpr absl::Duration kTimeout = absl::Seconds(60);

class Client {
 public:
  explicit Client(const std::string& address)
      : channel_(grpc::CreateChannel(address, grpc::InsecureChannelCredentials())),
        training_(gan::v1::TrainingService::NewStub(channel_)) {}

  absl::StatusOr<gan::v1::Job> Submit(const gan::v1::JobSpec& spec) {
    grpc::ClientContext context;
    SetDeadline(&context, absl::Seconds(30));
    gan::v1::SubmitJobRequest request;
    *request.mutable_spec() = spec;
    gan::v1::Job job;
    const grpc::Status status = training_->SubmitJob(&context, request, &job);
    if (!status.ok()) return ToAbsl(status);
    return job;
  }

  absl::StatusOr<gan::v1::Job> Get(const std::string& job_id) {
    grpc::ClientContext context;
    SetDeadline(&context, absl::Seconds(30));
    gan::v1::GetJobRequest request;
    request.set_job_id(job_id);
    gan::v1::Job job;
    const grpc::Status status = training_->GetJob(&context, request, &job);
    if (!status.ok()) return ToAbsl(status);
    return job;
  }

  // The job's whole history, from step 0 to the `finished` event.
  absl::StatusOr<std::vector<gan::v1::MetricEvent>> History(const std::string& job_id) {
    grpc::ClientContext context;
    SetDeadline(&context, kTimeout);
    gan::v1::StreamMetricsRequest request;
    request.set_job_id(job_id);
    auto reader = training_->StreamMetrics(&context, request);
    std::vector<gan::v1::MetricEvent> events;
    gan::v1::MetricEvent event;
    while (reader->Read(&event)) events.push_back(event);
    const grpc::Status status = reader->Finish();
    if (!status.ok()) return ToAbsl(status);
    return events;
  }

 private:
  static void SetDeadline(grpc::ClientContext* context, absl::Duration timeout) {
    context->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  }

  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<gan::v1::TrainingService::Stub> training_;
};

// What a kill left behind, read from the data directory and jobs.sqlite.
struct AfterKill {
  std::string integrity;                                        // PRAGMA integrity_check's rows
  int64_t state = 0, stored_step = 0, recorded_checkpoint = 0;  // the job's row
  std::vector<int64_t> files;                                   // step-<N>.safetensors, ascending
  std::vector<std::string> temp_files;  // *.safetensors.tmp.*: a write the kill interrupted
  std::vector<int64_t> damaged;         // files that do not read back whole
  int64_t newest_intact = 0;            // within the stored history; 0: none
};

absl::Status Sqlite(sqlite3* db, const std::string& sql, const std::string& job_id,
                    const std::function<void(sqlite3_stmt*)>& row) {
  sqlite3_stmt* statement = nullptr;
  if (sqlite3_prepare_v2(db, sql.c_str(), -1, &statement, nullptr) != SQLITE_OK) {
    return absl::InternalError(absl::StrCat(sql, ": ", sqlite3_errmsg(db)));
  }
  if (!job_id.empty()) sqlite3_bind_text(statement, 1, job_id.c_str(), -1, SQLITE_TRANSIENT);
  int rc;
  while ((rc = sqlite3_step(statement)) == SQLITE_ROW) row(statement);
  sqlite3_finalize(statement);
  if (rc != SQLITE_DONE) return absl::InternalError(absl::StrCat(sql, ": ", sqlite3_errmsg(db)));
  return absl::OkStatus();
}

absl::StatusOr<AfterKill> Inspect(const std::string& data_dir, const std::string& job_id) {
  AfterKill after;
  sqlite3* db = nullptr;
  const std::string path = data_dir + "/jobs.sqlite";
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) {
    const std::string error = db != nullptr ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close(db);
    return absl::InternalError(absl::StrCat("open ", path, ": ", error));
  }
  absl::Status status = Sqlite(db, "PRAGMA integrity_check", "", [&](sqlite3_stmt* s) {
    absl::StrAppend(&after.integrity, after.integrity.empty() ? "" : "; ",
                    reinterpret_cast<const char*>(sqlite3_column_text(s, 0)));
  });
  if (status.ok()) {
    status = Sqlite(db, "SELECT state, step, latest_checkpoint_step FROM jobs WHERE job_id = ?",
                    job_id, [&](sqlite3_stmt* s) {
                      after.state = sqlite3_column_int64(s, 0);
                      after.stored_step = sqlite3_column_int64(s, 1);
                      after.recorded_checkpoint = sqlite3_column_int64(s, 2);
                    });
  }
  sqlite3_close(db);
  if (!status.ok()) return status;

  const std::string dir = absl::StrCat(data_dir, "/jobs/", job_id, "/checkpoints");
  for (const std::string& name : gan::testing::DirectoryNames(dir)) {
    absl::string_view rest = name;
    int64_t step;
    if (absl::StrContains(name, ".safetensors.tmp.")) {
      after.temp_files.push_back(name);
    } else if (absl::ConsumePrefix(&rest, "step-") && absl::ConsumeSuffix(&rest, ".safetensors") &&
               absl::SimpleAtoi(rest, &step)) {
      after.files.push_back(step);
    }
  }
  std::sort(after.files.begin(), after.files.end());
  for (int64_t step : after.files) {
    absl::StatusOr<SafeTensors> read =
        ReadSafeTensorsFile(absl::StrCat(dir, "/step-", step, ".safetensors"));
    if (!read.ok() || !VerifyCheckpointChecksum(*read).ok()) {
      after.damaged.push_back(step);
    } else if (step <= after.stored_step) {
      after.newest_intact = step;
    }
  }
  return after;
}

// The from_step of the server's "job resumed" line for `job_id`, reading its log (stderr) until
// the line appears.
absl::StatusOr<int64_t> ResumedFrom(ChildProcess* server, const std::string& job_id) {
  const absl::Time deadline = absl::Now() + kTimeout;
  while (true) {
    for (absl::string_view line : absl::StrSplit(server->err(), '\n')) {
      if (!absl::StrContains(line, "job resumed") || !absl::StrContains(line, job_id)) continue;
      const size_t at = line.find("from_step=");
      int64_t step;
      if (at != absl::string_view::npos &&
          absl::SimpleAtoi(line.substr(at + 10, line.find(' ', at) - at - 10), &step)) {
        return step;
      }
      return absl::InternalError(absl::StrCat("unexpected line: ", line));
    }
    if (absl::Now() > deadline || !server->Pump(absl::Milliseconds(20))) {
      return absl::DeadlineExceededError(
          absl::StrCat("no 'job resumed' line for ", job_id, " in: ", server->err()));
    }
  }
}

struct Seen {
  absl::Time at;
  int64_t step = 0;
};

// Polls the job (reading the log meanwhile, so its pipe never fills) until its step passes
// `step`; returns when that was seen, and the step.
absl::StatusOr<Seen> WaitPast(Client* client, ChildProcess* server, const std::string& job_id,
                              int64_t step) {
  const absl::Time deadline = absl::Now() + kTimeout;
  while (true) {
    absl::StatusOr<gan::v1::Job> job = client->Get(job_id);
    if (!job.ok()) return job.status();
    if (job->state() != gan::v1::JOB_STATE_RUNNING && job->state() != gan::v1::JOB_STATE_QUEUED) {
      return absl::FailedPreconditionError(
          absl::StrCat("the job ended: ", job->ShortDebugString()));
    }
    if (job->step() > step) return Seen{absl::Now(), job->step()};
    if (absl::Now() > deadline) {
      return absl::DeadlineExceededError(absl::StrCat("job still at step ", job->step()));
    }
    server->Pump(absl::Milliseconds(1));
  }
}

std::string Steps(const std::vector<int64_t>& steps) { return absl::StrJoin(steps, " "); }

TEST(ServerCrashRecoveryTest, TwentyKillsInARowLoseNothing) {
  uint64_t seed = kDefaultSeed;
  if (const char* env = std::getenv("GAN_CRASH_SEED"); env != nullptr) {
    ASSERT_TRUE(absl::SimpleAtoi(env, &seed)) << "GAN_CRASH_SEED=" << env;
  }
  std::printf("kill delays seeded with %llu (GAN_CRASH_SEED)\n",
              static_cast<unsigned long long>(seed));
  std::mt19937_64 random(seed);
  const absl::Time start = absl::Now();
  const std::string data_dir = MakeTempDir("data");
  const std::map<std::string, std::string> flags = {{"--data_dir", data_dir}};
  ChildOptions options;
  options.capture_stderr = true;

  GAN_ASSERT_OK_AND_ASSIGN(GanServer server, StartGanServer(flags, kTimeout, options));
  auto client = std::make_unique<Client>(server.address());
  gan::v1::JobSpec spec = TinyJob(kSteps);
  spec.set_checkpoint_every(kCheckpointEvery);
  spec.set_metrics_every(1);
  GAN_ASSERT_OK_AND_ASSIGN(const gan::v1::Job job, client->Submit(spec));
  const std::string& id = job.job_id();

  // One step's time, measured over 20 steps of the first run (checkpoints included), scales the
  // kill delays to this machine.
  GAN_ASSERT_OK_AND_ASSIGN(const Seen first, WaitPast(client.get(), server.process.get(), id, 1));
  GAN_ASSERT_OK_AND_ASSIGN(const Seen later,
                           WaitPast(client.get(), server.process.get(), id, first.step + 19));
  const absl::Duration step_time = (later.at - first.at) / (later.step - first.step);
  std::uniform_int_distribution<int64_t> delay_us(
      0, absl::ToInt64Microseconds(step_time) * kDelaySpan);
  std::printf("one step takes %s here: kill delays up to %s after training resumed\n",
              absl::FormatDuration(step_time).c_str(),
              absl::FormatDuration(step_time * kDelaySpan).c_str());

  int mid_write = 0, unrecorded = 0, integrity_ok = 0, early_kills = 0;
  std::vector<int64_t> resumes;
  int64_t resumed_from = 0;
  for (int kill = 1; kill <= kKills; ++kill) {
    SCOPED_TRACE(absl::StrCat("kill ", kill));
    GAN_ASSERT_OK_AND_ASSIGN(const Seen training,
                             WaitPast(client.get(), server.process.get(), id, resumed_from));
    const absl::Duration delay = absl::Microseconds(delay_us(random));
    bool early = false;
    while (absl::Now() < training.at + delay && !early) {
      absl::StatusOr<gan::v1::Job> now = client->Get(id);
      early = now.ok() && now->step() >= training.step + kMaxStepsPerRun;
      server.process->Pump(absl::Microseconds(200));
    }
    early_kills += early;
    server.process->Kill();
    client.reset();

    GAN_ASSERT_OK_AND_ASSIGN(const AfterKill after, Inspect(data_dir, id));
    ASSERT_EQ(after.state, static_cast<int64_t>(gan::v1::JOB_STATE_RUNNING))
        << "the job ended before kill " << kill << " (make kSteps larger)";
    EXPECT_EQ(after.integrity, "ok");
    integrity_ok += after.integrity == "ok";
    EXPECT_TRUE(after.damaged.empty()) << "damaged checkpoints: " << Steps(after.damaged);
    // Inside a checkpoint: its temp file is there (the kill came while it was written), or its
    // file is newer than the store's row (the kill came between the rename and the row).
    const bool in_write = !after.temp_files.empty();
    const bool before_row = !after.files.empty() && after.files.back() > after.recorded_checkpoint;
    mid_write += in_write;
    unrecorded += before_row;
    std::printf(
        "kill %2d after %7s%s: store step %3lld, recorded checkpoint %3lld, files [%s]%s%s, "
        "integrity_check %s -> expect resume from %lld\n",
        kill, absl::FormatDuration(delay).c_str(), early ? " (early)" : "",
        static_cast<long long>(after.stored_step),
        static_cast<long long>(after.recorded_checkpoint), Steps(after.files).c_str(),
        in_write ? ", mid-write (temp file left)" : "",
        before_row ? ", newest file not yet recorded" : "", after.integrity.c_str(),
        static_cast<long long>(after.newest_intact));

    GAN_ASSERT_OK_AND_ASSIGN(server, StartGanServer(flags, kTimeout, options));
    client = std::make_unique<Client>(server.address());
    GAN_ASSERT_OK_AND_ASSIGN(resumed_from, ResumedFrom(server.process.get(), id));
    EXPECT_EQ(resumed_from, after.newest_intact) << server.process->err();
    resumes.push_back(resumed_from);
  }

  // The 20th restart trains the job to the end.
  absl::StatusOr<gan::v1::Job> done;
  const absl::Time deadline = absl::Now() + kTimeout;
  do {
    server.process->Pump(absl::Milliseconds(10));
    done = client->Get(id);
  } while (done.ok() && done->state() == gan::v1::JOB_STATE_RUNNING && absl::Now() < deadline);
  ASSERT_THAT(done.status(), IsOk());
  EXPECT_EQ(done->state(), gan::v1::JOB_STATE_SUCCEEDED) << done->ShortDebugString();
  EXPECT_EQ(done->step(), kSteps);

  // Every step exactly once, in order; a resume marker before the first step after each resume
  // (markers of resumes that a later one went back before were replaced by it).
  GAN_ASSERT_OK_AND_ASSIGN(const std::vector<gan::v1::MetricEvent> history, client->History(id));
  std::vector<int64_t> steps, markers;
  int64_t expected = 0;
  for (const gan::v1::MetricEvent& event : history) {
    if (event.has_step()) {
      EXPECT_EQ(event.step().step(), expected) << "after " << Steps(markers);
      expected = event.step().step() + 1;
      steps.push_back(event.step().step());
    } else if (event.has_resumed_from_step()) {
      EXPECT_EQ(event.resumed_from_step(), expected) << "a marker not where training resumed";
      markers.push_back(event.resumed_from_step());
    }
  }
  EXPECT_EQ(steps.size(), static_cast<size_t>(kSteps));
  ASSERT_FALSE(history.empty());
  EXPECT_TRUE(history.back().has_finished());
  std::vector<int64_t> distinct = resumes;
  distinct.erase(std::unique(distinct.begin(), distinct.end()), distinct.end());
  EXPECT_EQ(markers, distinct) << "resumes seen: " << Steps(resumes);

  client.reset();
  GAN_ASSERT_OK_AND_ASSIGN(const int exit, server.process->Terminate(absl::Seconds(30)));
  EXPECT_TRUE(WIFEXITED(exit) && WEXITSTATUS(exit) == 0) << WaitStatusString(exit);
  GAN_ASSERT_OK_AND_ASSIGN(const AfterKill end, Inspect(data_dir, id));
  EXPECT_EQ(end.integrity, "ok");
  // Older checkpoints were pruned across the restarts (the default keeps 3); nothing damaged,
  // no temp file.
  EXPECT_LE(end.files.size(), 3u) << Steps(end.files);
  EXPECT_EQ(end.files.back(), kSteps);
  EXPECT_TRUE(end.damaged.empty() && end.temp_files.empty());
  // Far more than one in 20 land inside a checkpoint (a third to a half on a 2-core VM).
  EXPECT_GT(mid_write + unrecorded, 0) << "no kill landed inside a checkpoint";

  const absl::Duration took = absl::Now() - start;
  std::printf(
      "%d kills (%d early): %d mid-write, %d between a checkpoint's rename and its row, %d of %d "
      "integrity_check ok; resumed from steps %s; %lld steps, each once; %s in all\n",
      kKills, early_kills, mid_write, unrecorded, integrity_ok, kKills, Steps(resumes).c_str(),
      static_cast<long long>(kSteps), absl::FormatDuration(took).c_str());
  ::testing::Test::RecordProperty("kills", kKills);
  ::testing::Test::RecordProperty("mid_write", mid_write);
  ::testing::Test::RecordProperty("before_row", unrecorded);
  ::testing::Test::RecordProperty("seconds", static_cast<int>(absl::ToInt64Seconds(took)));
  std::error_code error;
  if (!::testing::Test::HasFailure()) std::filesystem::remove_all(data_dir, error);
}

}  // namespace
}  // namespace gan::server
