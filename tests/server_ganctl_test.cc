// End-to-end tests of ganctl (build/bin/ganctl) against a real gan-server (build/bin/gan-server):
// every test starts the server on a free loopback port with a fresh --data_dir and runs ganctl as
// a subprocess, checking what a shell user relies on: stdout (so `id=$(ganctl submit ...)` works),
// stderr, exit codes (README: 0 ok, 1 server error or unreachable, 2 bad command line, 3 the
// watched job ended other than SUCCEEDED, 4 an unusable file), JSON output, and that `watch`
// survives the server being killed and restarted on the same port.
//
// Jobs are tiny (seed-dcgan, batch 8, synthetic data, a few steps) because the CPU is shared.
// Processes are spawned and stopped with tests/child_process.h.

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "io/png.h"
#include "nlohmann/json.hpp"
#include "tests/child_process.h"
#include "tests/test_util.h"

namespace gan {
namespace {

using ::gan::testing::BinaryNextToTests;
using ::gan::testing::ChildOptions;
using ::gan::testing::ChildProcess;
using ::gan::testing::GanServer;
using ::gan::testing::IsOk;
using ::gan::testing::MakeTempDir;
using ::gan::testing::StartGanServer;
using ::gan::testing::WaitStatusString;
using ::testing::HasSubstr;
using ::testing::MatchesRegex;
using ::testing::StartsWith;

constexpr absl::Duration kStartTimeout = absl::Seconds(30);
constexpr absl::Duration kCommandTimeout = absl::Seconds(60);
constexpr absl::Duration kJobTimeout = absl::Seconds(180);

// build/tests/server_ganctl_test -> build/bin/ganctl.
std::string GanctlBinary() { return BinaryNextToTests("ganctl"); }

ChildOptions PipedOptions(const std::string& cwd = "") {
  ChildOptions options;
  options.capture_stderr = true;
  options.null_stdin = true;
  options.cwd = cwd;
  options.check_executable = true;
  return options;
}

// A child process with stdout and stderr on pipes (so neither is a tty), optionally run in `cwd`.
absl::StatusOr<std::unique_ptr<ChildProcess>> Spawn(const std::vector<std::string>& args,
                                                    const std::string& cwd = "") {
  return ChildProcess::Start(args, PipedOptions(cwd));
}

struct Outcome {
  int exit_code = -1;  // -1: did not exit normally (see `how`)
  std::string how;     // "exit code N", "killed by signal S" or a spawn/wait error
  std::string out, err;
  absl::Duration took;
};

std::string Describe(const Outcome& run) {
  return absl::StrCat(run.how, " after ", absl::FormatDuration(run.took), "\n--- stdout:\n",
                      run.out, "--- stderr:\n", run.err);
}

Outcome RunProcess(const std::vector<std::string>& args, const std::string& cwd,
                   absl::Duration timeout) {
  Outcome run;
  const absl::Time start = absl::Now();
  absl::StatusOr<std::unique_ptr<ChildProcess>> child = Spawn(args, cwd);
  if (!child.ok()) {
    run.how = child.status().ToString();
    return run;
  }
  absl::StatusOr<int> status = (*child)->Wait(start + timeout);
  run.took = absl::Now() - start;
  run.out = (*child)->out();
  run.err = (*child)->err();
  if (!status.ok()) {
    run.how = status.status().ToString();
    return run;
  }
  run.how = WaitStatusString(*status);
  if (WIFEXITED(*status)) run.exit_code = WEXITSTATUS(*status);
  return run;
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines = absl::StrSplit(text, '\n');
  if (!lines.empty() && lines.back().empty()) lines.pop_back();
  return lines;
}

// A row of `watch`, "      3/12    0.6931 ..." -> 3 (and the total); false for any other line.
bool ParseStepLine(const std::string& line, int64_t* step, int64_t* total) {
  const std::vector<std::string> columns = absl::StrSplit(line, ' ', absl::SkipEmpty());
  if (columns.size() < 2) return false;
  const std::vector<std::string> fraction = absl::StrSplit(columns[0], '/');
  double d_loss;
  return fraction.size() == 2 && absl::SimpleAtoi(fraction[0], step) &&
         absl::SimpleAtoi(fraction[1], total) && absl::SimpleAtod(columns[1], &d_loss);
}

std::vector<int64_t> StepsPrinted(const std::string& out, int64_t* total = nullptr) {
  std::vector<int64_t> steps;
  for (const std::string& line : Lines(out)) {
    int64_t step, t;
    if (ParseStepLine(line, &step, &t)) {
      steps.push_back(step);
      if (total != nullptr) *total = t;
    }
  }
  return steps;
}

void WriteFile(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

std::vector<std::string> SubmitArgs(int steps) {
  return {"submit",    "--preset",  "seed-dcgan", "--steps", std::to_string(steps), "--batch", "8",
          "--dataset", "synthetic", "--seed",     "11"};
}

class GanctlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    data_dir_ = MakeTempDir("data");
    work_dir_ = MakeTempDir("work");
  }

  void TearDown() override {
    if (server_ != nullptr && server_->running()) {
      absl::StatusOr<int> status = server_->Terminate(absl::Seconds(30));
      EXPECT_THAT(status.status(), IsOk());
      if (status.ok()) {
        EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0)
            << WaitStatusString(*status) << "\n"
            << server_->err();
      }
    }
    server_.reset();
    std::error_code error;
    if (!HasFailure()) {
      std::filesystem::remove_all(data_dir_, error);
      std::filesystem::remove_all(work_dir_, error);
    }
  }

  absl::Status StartServer(const std::string& listen = "127.0.0.1:0") {
    // One gan-server: its stdout/stderr on pipes, ready once it printed its "listening" line.
    absl::StatusOr<GanServer> server = StartGanServer(
        {{"--listen", listen}, {"--data_dir", data_dir_}}, kStartTimeout, PipedOptions());
    if (!server.ok()) return server.status();
    server_ = std::move(server->process);
    server_port_ = server->port;
    return absl::OkStatus();
  }

  std::string ServerAddress() const { return absl::StrCat("127.0.0.1:", server_port_); }

  // ganctl --server <this test's server> ARGS..., run in work_dir_.
  Outcome Ganctl(const std::vector<std::string>& args, absl::Duration timeout = kCommandTimeout) {
    std::vector<std::string> all = {GanctlBinary(), "--server", ServerAddress()};
    all.insert(all.end(), args.begin(), args.end());
    return RunProcess(all, work_dir_, timeout);
  }

  // A job of `steps` steps trained to the end with `submit --watch`; returns its id.
  std::string TrainedJob(int steps) {
    std::vector<std::string> args = SubmitArgs(steps);
    args.push_back("--watch");
    const Outcome run = Ganctl(args, kJobTimeout);
    EXPECT_EQ(run.exit_code, 0) << Describe(run);
    const std::vector<std::string> lines = Lines(run.out);
    return lines.empty() ? "" : lines.front();
  }

  std::string data_dir_, work_dir_;
  std::unique_ptr<ChildProcess> server_;
  int server_port_ = 0;
};

// --- health, submit, watch -------------------------------------------------------------------

TEST_F(GanctlTest, HealthPrintsServing) {
  ASSERT_THAT(StartServer(), IsOk());
  const Outcome run = Ganctl({"health"});
  EXPECT_EQ(run.exit_code, 0) << Describe(run);
  EXPECT_EQ(run.out, "SERVING\n") << Describe(run);
  EXPECT_EQ(run.err, "") << Describe(run);
}

TEST_F(GanctlTest, SubmitPrintsOnlyTheJobId) {
  ASSERT_THAT(StartServer(), IsOk());
  const Outcome run = Ganctl(SubmitArgs(2));
  EXPECT_EQ(run.exit_code, 0) << Describe(run);
  // Exactly one line, the id: `id=$(ganctl submit ...)` must work.
  EXPECT_THAT(run.out, MatchesRegex("job-[A-Za-z0-9_-]+\n")) << Describe(run);
  EXPECT_EQ(run.err, "") << Describe(run);

  const std::string id = Lines(run.out).empty() ? "" : Lines(run.out).front();
  const Outcome get = Ganctl({"--json", "get", id});
  EXPECT_EQ(get.exit_code, 0) << Describe(get);
}

TEST_F(GanctlTest, SubmitStartsFromAnotherJobsCheckpointWithPytorchDefaults) {
  ASSERT_THAT(StartServer(), IsOk());
  const std::string source = TrainedJob(2);
  ASSERT_FALSE(source.empty());

  std::vector<std::string> args = SubmitArgs(2);
  for (const char* arg : {"--init_from", "", "--init_optimizer", "--pytorch_defaults"}) {
    args.push_back(*arg == '\0' ? absl::StrCat(source, "@2") : arg);
  }
  const Outcome run = Ganctl(args);
  ASSERT_EQ(run.exit_code, 0) << Describe(run);
  const Outcome get = Ganctl({"--json", "get", Lines(run.out).front()});
  ASSERT_EQ(get.exit_code, 0) << Describe(get);
  const nlohmann::json job = nlohmann::json::parse(get.out, nullptr, false);
  ASSERT_TRUE(job.is_object() && job["spec"].is_object() && job["spec"]["init_from"].is_object())
      << Describe(get);
  EXPECT_EQ(job["spec"]["init_from"]["job_id"], source) << Describe(get);
  EXPECT_EQ(job["spec"]["init_from"]["checkpoint_step"], "2") << Describe(get);
  EXPECT_EQ(job["spec"]["init_from"]["init_optimizer"], true) << Describe(get);
  EXPECT_EQ(job["spec"]["pytorch_defaults"], true) << Describe(get);

  // A step the source never wrote: the server's NOT_FOUND (exit 1); a malformed value and
  // --init_optimizer alone are usage errors (exit 2) caught before any call.
  args = SubmitArgs(2);
  args.insert(args.end(), {"--init_from", absl::StrCat(source, "@999")});
  const Outcome missing = Ganctl(args);
  EXPECT_EQ(missing.exit_code, 1) << Describe(missing);
  EXPECT_THAT(missing.err, HasSubstr("NOT_FOUND")) << Describe(missing);
  for (const std::vector<std::string>& extra :
       {std::vector<std::string>{"--init_from", absl::StrCat(source, "@x")},
        std::vector<std::string>{"--init_from", "@3"},
        std::vector<std::string>{"--init_optimizer"}}) {
    args = SubmitArgs(2);
    args.insert(args.end(), extra.begin(), extra.end());
    const Outcome refused = Ganctl(args);
    EXPECT_EQ(refused.exit_code, 2) << Describe(refused);
  }
}

TEST_F(GanctlTest, SubmitWatchPrintsPlainProgressAndExitsZero) {
  ASSERT_THAT(StartServer(), IsOk());
  constexpr int kSteps = 3;
  std::vector<std::string> args = SubmitArgs(kSteps);
  args.push_back("--watch");
  const Outcome run = Ganctl(args, kJobTimeout);
  EXPECT_EQ(run.exit_code, 0) << Describe(run);
  RecordProperty("submit_watch_seconds", absl::StrCat(absl::ToDoubleSeconds(run.took)));

  // stdout is a pipe: no carriage returns, one line per step.
  EXPECT_EQ(run.out.find('\r'), std::string::npos) << Describe(run);
  const std::vector<std::string> lines = Lines(run.out);
  ASSERT_GE(lines.size(), 2u) << Describe(run);
  EXPECT_THAT(lines.front(), MatchesRegex("job-[A-Za-z0-9_-]+")) << Describe(run);
  int64_t total = -1;
  EXPECT_EQ(StepsPrinted(run.out, &total), (std::vector<int64_t>{1, 2, 3})) << Describe(run);
  EXPECT_EQ(total, kSteps) << Describe(run);
  // One column header, before the first row.
  ASSERT_GE(lines.size(), 3u) << Describe(run);
  EXPECT_THAT(lines[1], MatchesRegex(" *step +d_loss +g_loss +D\\(x\\) +D\\(G\\(z\\)\\) .*"))
      << Describe(run);
  EXPECT_EQ(
      std::count_if(lines.begin(), lines.end(),
                    [](const std::string& line) { return absl::StrContains(line, "d_loss"); }),
      1)
      << Describe(run);
  EXPECT_EQ(lines.back(), absl::StrCat("job ", lines.front(), " SUCCEEDED at step ", kSteps))
      << Describe(run);
}

TEST_F(GanctlTest, WatchOfACancelledJobExitsThree) {
  ASSERT_THAT(StartServer(), IsOk());
  const Outcome submit = Ganctl(SubmitArgs(1000));
  ASSERT_EQ(submit.exit_code, 0) << Describe(submit);
  const std::string id = Lines(submit.out).front();
  const Outcome cancel = Ganctl({"cancel", id});
  EXPECT_EQ(cancel.exit_code, 0) << Describe(cancel);

  const Outcome watch = Ganctl({"watch", id});
  EXPECT_EQ(watch.exit_code, 3) << Describe(watch);
  const std::vector<std::string> lines = Lines(watch.out);
  ASSERT_FALSE(lines.empty()) << Describe(watch);
  EXPECT_THAT(lines.back(), StartsWith(absl::StrCat("job ", id, " CANCELLED at step ")))
      << Describe(watch);
}

// --- JSON output -------------------------------------------------------------------------------

TEST_F(GanctlTest, GetAndListPrintJson) {
  ASSERT_THAT(StartServer(), IsOk());
  const Outcome submit = Ganctl(SubmitArgs(2));
  ASSERT_EQ(submit.exit_code, 0) << Describe(submit);
  const std::string id = Lines(submit.out).front();

  const Outcome get = Ganctl({"--json", "get", id});
  ASSERT_EQ(get.exit_code, 0) << Describe(get);
  const nlohmann::json job = nlohmann::json::parse(get.out, nullptr, /*allow_exceptions=*/false);
  ASSERT_FALSE(job.is_discarded()) << Describe(get);
  ASSERT_TRUE(job.is_object()) << Describe(get);
  EXPECT_EQ(job.value("job_id", ""), id) << Describe(get);
  EXPECT_THAT(job.value("state", ""), StartsWith("JOB_STATE_")) << Describe(get);

  const Outcome list = Ganctl({"--json", "list"});
  ASSERT_EQ(list.exit_code, 0) << Describe(list);
  const nlohmann::json jobs = nlohmann::json::parse(list.out, nullptr, false);
  ASSERT_FALSE(jobs.is_discarded()) << Describe(list);
  ASSERT_TRUE(jobs.is_object() && jobs.contains("jobs") && jobs["jobs"].is_array())
      << Describe(list);
  ASSERT_EQ(jobs["jobs"].size(), 1u) << Describe(list);
  EXPECT_EQ(jobs["jobs"][0].value("job_id", ""), id) << Describe(list);

  // The plain list: "<id>  <STATE>  step/total".
  const Outcome plain = Ganctl({"list"});
  ASSERT_EQ(plain.exit_code, 0) << Describe(plain);
  EXPECT_THAT(plain.out, StartsWith(id + "  ")) << Describe(plain);
}

// --- score and sample --------------------------------------------------------------------------

TEST_F(GanctlTest, ScoresPngAndIdxFilesAndRefusesABadPng) {
  ASSERT_THAT(StartServer(), IsOk());
  const std::string id = TrainedJob(2);
  ASSERT_FALSE(id.empty());

  // A 40x30 RGB image: ganctl converts it to grey and resizes it to 28x28.
  std::vector<uint8_t> rgb(30 * 40 * 3);
  for (size_t i = 0; i < rgb.size(); ++i) rgb[i] = static_cast<uint8_t>((i * 7) % 251);
  ASSERT_THAT(WritePngGrid(work_dir_ + "/a.png", rgb, 1, 30, 40, 3, 1), IsOk());

  const Outcome score = Ganctl({"score", id, "a.png"});
  ASSERT_EQ(score.exit_code, 0) << Describe(score);
  const std::vector<std::string> lines = Lines(score.out);
  ASSERT_EQ(lines.size(), 1u) << Describe(score);
  const std::vector<std::string> fields = absl::StrSplit(lines[0], '\t');
  ASSERT_EQ(fields.size(), 2u) << Describe(score);
  EXPECT_EQ(fields[0], "a.png");
  double p = -1;
  ASSERT_TRUE(absl::SimpleAtod(fields[1], &p)) << Describe(score);
  EXPECT_GT(p, 0.0);
  EXPECT_LT(p, 1.0);

  const Outcome json = Ganctl({"--json", "score", id, "a.png"});
  ASSERT_EQ(json.exit_code, 0) << Describe(json);
  const nlohmann::json response = nlohmann::json::parse(json.out, nullptr, false);
  ASSERT_FALSE(response.is_discarded()) << Describe(json);
  ASSERT_TRUE(response.contains("probabilities") && response["probabilities"].is_array())
      << Describe(json);
  ASSERT_EQ(response["probabilities"].size(), 1u) << Describe(json);
  EXPECT_NEAR(response["probabilities"][0].get<double>(), p, 1e-5) << Describe(json);

  // A text file named .png is refused before anything is sent: exit 4, one line on stderr.
  WriteFile(work_dir_ + "/bad.png", "this is not a PNG\n");
  const Outcome bad = Ganctl({"score", id, "bad.png"});
  EXPECT_EQ(bad.exit_code, 4) << Describe(bad);
  EXPECT_EQ(bad.out, "") << Describe(bad);
  EXPECT_THAT(bad.err, StartsWith("ganctl: bad.png")) << Describe(bad);
  EXPECT_EQ(Lines(bad.err).size(), 1u) << Describe(bad);
  EXPECT_EQ(bad.err.back(), '\n') << Describe(bad);

  // An IDX file of 2 images of 28x28 (idx3, unsigned byte).
  std::string idx = {0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 28, 0, 0, 0, 28};
  for (int i = 0; i < 2 * 28 * 28; ++i) idx.push_back(static_cast<char>((i * 13) % 256));
  WriteFile(work_dir_ + "/x.idx", idx);
  const Outcome scored_idx = Ganctl({"score", id, "x.idx", "a.png"});
  ASSERT_EQ(scored_idx.exit_code, 0) << Describe(scored_idx);
  const std::vector<std::string> idx_lines = Lines(scored_idx.out);
  ASSERT_EQ(idx_lines.size(), 3u) << Describe(scored_idx);
  const char* names[] = {"x.idx[0]", "x.idx[1]", "a.png"};
  for (int i = 0; i < 3; ++i) {
    const std::vector<std::string> f = absl::StrSplit(idx_lines[i], '\t');
    ASSERT_EQ(f.size(), 2u) << idx_lines[i];
    EXPECT_EQ(f[0], names[i]);
    double q = -1;
    ASSERT_TRUE(absl::SimpleAtod(f[1], &q)) << idx_lines[i];
    EXPECT_GT(q, 0.0) << idx_lines[i];
    EXPECT_LT(q, 1.0) << idx_lines[i];
  }
  // The PNG scores the same in a batch as alone.
  EXPECT_EQ(idx_lines[2], lines[0]);

  // Raw NHWC bytes: the IDX file's pixels score the same; a partial image is refused.
  WriteFile(work_dir_ + "/x.raw", idx.substr(16));
  const Outcome scored_raw = Ganctl({"score", id, "x.raw"});
  ASSERT_EQ(scored_raw.exit_code, 0) << Describe(scored_raw);
  const std::vector<std::string> raw_lines = Lines(scored_raw.out);
  ASSERT_EQ(raw_lines.size(), 2u) << Describe(scored_raw);
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(raw_lines[i].substr(raw_lines[i].find('\t')),
              idx_lines[i].substr(idx_lines[i].find('\t')));
  }
  WriteFile(work_dir_ + "/short.raw", idx.substr(16, 100));
  const Outcome short_raw = Ganctl({"score", id, "short.raw"});
  EXPECT_EQ(short_raw.exit_code, 4) << Describe(short_raw);
  EXPECT_THAT(short_raw.err, StartsWith("ganctl: short.raw")) << Describe(short_raw);
}

TEST_F(GanctlTest, SampleWritesAPng) {
  ASSERT_THAT(StartServer(), IsOk());
  const std::string id = TrainedJob(2);
  ASSERT_FALSE(id.empty());
  const Outcome run = Ganctl({"sample", id, "--count", "4", "--out", "s.png"});
  EXPECT_EQ(run.exit_code, 0) << Describe(run);
  EXPECT_EQ(run.out, "s.png\n") << Describe(run);
  const std::string png = ReadFile(work_dir_ + "/s.png");
  ASSERT_GE(png.size(), 8u);
  EXPECT_EQ(png.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
}

TEST_F(GanctlTest, SampleWritesIdxThatScoreReadsWithFirstAndSummary) {
  ASSERT_THAT(StartServer(), IsOk());
  const std::string id = TrainedJob(2);
  ASSERT_FALSE(id.empty());
  const Outcome run = Ganctl({"sample", id, "--count", "5", "--seed", "3", "--out", "g.idx"});
  ASSERT_EQ(run.exit_code, 0) << Describe(run);
  EXPECT_EQ(run.out, "g.idx\n") << Describe(run);
  // idx3 header: 5 x 28 x 28 unsigned bytes, then the pixels.
  const std::string idx = ReadFile(work_dir_ + "/g.idx");
  ASSERT_EQ(idx.size(), 16u + 5 * 28 * 28);
  EXPECT_EQ(idx.substr(0, 16), std::string({0, 0, 8, 3, 0, 0, 0, 5, 0, 0, 0, 28, 0, 0, 0, 28}));

  // Every image, one line each; then only the first 3 of the file.
  const Outcome all = Ganctl({"score", id, "g.idx"});
  ASSERT_EQ(all.exit_code, 0) << Describe(all);
  const std::vector<std::string> lines = Lines(all.out);
  ASSERT_EQ(lines.size(), 5u) << Describe(all);
  const Outcome first = Ganctl({"score", id, "g.idx", "--first", "3"});
  ASSERT_EQ(first.exit_code, 0) << Describe(first);
  EXPECT_EQ(Lines(first.out), std::vector<std::string>(lines.begin(), lines.begin() + 3));

  // --summary: one line per file with the count and the mean, min and max of those 3 scores.
  std::vector<double> p(3);
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(absl::SimpleAtod(lines[i].substr(lines[i].find('\t') + 1), &p[i])) << lines[i];
  }
  const Outcome summary = Ganctl({"score", id, "g.idx", "--first", "3", "--summary"});
  ASSERT_EQ(summary.exit_code, 0) << Describe(summary);
  EXPECT_EQ(summary.out,
            absl::StrFormat("g.idx: 3 images, probability real: mean %.3f (min %.3f, max %.3f)\n",
                            (p[0] + p[1] + p[2]) / 3, *std::min_element(p.begin(), p.end()),
                            *std::max_element(p.begin(), p.end())))
      << Describe(summary);
}

// --- errors ------------------------------------------------------------------------------------

TEST_F(GanctlTest, ServerErrorsExitOneWithTheCode) {
  ASSERT_THAT(StartServer(), IsOk());
  const Outcome run = Ganctl({"get", "nope"});
  EXPECT_EQ(run.exit_code, 1) << Describe(run);
  EXPECT_EQ(run.out, "") << Describe(run);
  EXPECT_THAT(run.err, StartsWith("ganctl: NOT_FOUND: ")) << Describe(run);
  EXPECT_EQ(Lines(run.err).size(), 1u) << Describe(run);
}

TEST_F(GanctlTest, AnUnreachableServerExitsOne) {
  const Outcome run =
      RunProcess({GanctlBinary(), "--server", "127.0.0.1:1", "--deadline_seconds", "2", "health"},
                 "", absl::Seconds(30));
  EXPECT_EQ(run.exit_code, 1) << Describe(run);
  EXPECT_EQ(run.out, "") << Describe(run);
  EXPECT_TRUE(absl::StartsWith(run.err, "ganctl: UNAVAILABLE: ") ||
              absl::StartsWith(run.err, "ganctl: DEADLINE_EXCEEDED: "))
      << Describe(run);
  EXPECT_LT(run.took, absl::Seconds(10)) << Describe(run);
}

// README: "2 bad command line".
TEST_F(GanctlTest, BadUsageExitsTwo) {
  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
           {"frobnicate"}, {}, {"get"}, {"list", "--page_size", "0"}}) {
    std::vector<std::string> all = {GanctlBinary()};
    all.insert(all.end(), args.begin(), args.end());
    const Outcome run = RunProcess(all, "", absl::Seconds(30));
    EXPECT_EQ(run.exit_code, 2) << "ganctl " << absl::StrJoin(args, " ") << ": " << Describe(run);
    EXPECT_EQ(run.out, "") << Describe(run);
    EXPECT_FALSE(run.err.empty()) << Describe(run);
  }
}

// A string option never takes the next option or the command as its value (CLI11 2.1 would:
// `--server= list` drops the empty value and takes "list"): `--name=` is the empty value,
// `--name -x` is a usage error, `--name=-x` is the value "-x". Global options may follow the
// command.
TEST_F(GanctlTest, StringOptionsDoNotSwallowTheNextArgument) {
  ASSERT_THAT(StartServer(), IsOk());
  const Outcome submit = Ganctl(SubmitArgs(2));
  ASSERT_EQ(submit.exit_code, 0) << Describe(submit);
  const std::string id = Lines(submit.out).front();

  // Usage errors: exit 2, nothing on stdout, stderr names the option; nothing reaches a server.
  const std::vector<std::vector<std::string>> refused = {
      {"--server=", "list"},           // the empty address
      {"--server", "--json", "list"},  // "--json" is not an address
      {"--server", ServerAddress(), "list", "--state", "--json"},
      {"--server", ServerAddress(), "get", id, "--server", "--json"},
      {"--server", ServerAddress(), "submit", "--preset", "seed-dcgan", "--request_id", "--watch"},
  };
  for (const std::vector<std::string>& args : refused) {
    std::vector<std::string> all = {GanctlBinary()};
    all.insert(all.end(), args.begin(), args.end());
    const Outcome run = RunProcess(all, work_dir_, kCommandTimeout);
    EXPECT_EQ(run.exit_code, 2) << "ganctl " << absl::StrJoin(args, " ") << ": " << Describe(run);
    EXPECT_EQ(run.out, "") << Describe(run);
    EXPECT_THAT(run.err, HasSubstr("--")) << Describe(run);
  }
  const Outcome swallowed = Ganctl({"list", "--state", "--json"});
  EXPECT_THAT(swallowed.err, HasSubstr("--state needs a value")) << Describe(swallowed);
  const Outcome empty_server =
      RunProcess({GanctlBinary(), "--server=", "list"}, "", kCommandTimeout);
  EXPECT_THAT(empty_server.err, HasSubstr("--server: must not be empty")) << Describe(empty_server);

  // The refused submit created nothing; `--state=` is the empty filter, and --json after the
  // command is the global flag.
  const Outcome list = Ganctl({"list", "--state=", "--json"});
  ASSERT_EQ(list.exit_code, 0) << Describe(list);
  const nlohmann::json jobs = nlohmann::json::parse(list.out, nullptr, false);
  ASSERT_TRUE(jobs.is_object() && jobs.contains("jobs")) << Describe(list);
  ASSERT_EQ(jobs["jobs"].size(), 1u) << Describe(list);
  EXPECT_EQ(jobs["jobs"][0].value("job_id", ""), id) << Describe(list);

  const Outcome get = Ganctl({"get", id, "--json"});
  ASSERT_EQ(get.exit_code, 0) << Describe(get);
  const nlohmann::json job = nlohmann::json::parse(get.out, nullptr, false);
  ASSERT_TRUE(job.is_object()) << Describe(get);
  EXPECT_EQ(job.value("job_id", ""), id) << Describe(get);

  // --name=VALUE passes a value that starts with '-': the server sees (and refuses) the token.
  const Outcome token = Ganctl({"list", "--page_token=-x"});
  EXPECT_EQ(token.exit_code, 1) << Describe(token);
  EXPECT_THAT(token.err, StartsWith("ganctl: INVALID_ARGUMENT: ")) << Describe(token);
  EXPECT_THAT(token.err, HasSubstr("\"-x\"")) << Describe(token);
}

// --- watch across a server crash ---------------------------------------------------------------

// `watch` keeps following a job while the server is killed (-9) and restarted on the same port.
// The restarted server drops the events after the job's last checkpoint and trains those steps
// again; the client resumes after the last step it printed, so every step is printed once.
TEST_F(GanctlTest, WatchSurvivesAServerKillAndPrintsEveryStepOnce) {
  ASSERT_THAT(StartServer(), IsOk());
  const int port = server_port_;
  constexpr int kSteps = 12;
  const Outcome submit = Ganctl(SubmitArgs(kSteps));
  ASSERT_EQ(submit.exit_code, 0) << Describe(submit);
  const std::string id = Lines(submit.out).front();

  absl::StatusOr<std::unique_ptr<ChildProcess>> spawned =
      Spawn({GanctlBinary(), "--server", ServerAddress(), "watch", id}, work_dir_);
  ASSERT_THAT(spawned.status(), IsOk());
  std::unique_ptr<ChildProcess> watch = *std::move(spawned);

  const absl::Time start = absl::Now();
  while (StepsPrinted(watch->out()).size() < 3 && absl::Now() < start + kJobTimeout) {
    if (!watch->Pump(absl::Milliseconds(100))) break;
  }
  const std::vector<int64_t> before = StepsPrinted(watch->out());
  ASSERT_GE(before.size(), 3u) << "watch printed:\n" << watch->out() << "\n" << watch->err();
  server_->Kill();
  const absl::Time killed = absl::Now();
  RecordProperty("steps_printed_before_kill", static_cast<int>(before.size()));
  ASSERT_LT(before.back(), kSteps) << "the job ended before the kill; nothing was tested";

  // Same data directory, same port.
  server_.reset();
  ASSERT_THAT(StartServer(absl::StrCat("127.0.0.1:", port)), IsOk());
  ASSERT_EQ(server_port_, port);
  const absl::Duration restart = absl::Now() - killed;

  absl::StatusOr<int> status = watch->Wait(absl::Now() + kJobTimeout);
  ASSERT_THAT(status.status(), IsOk()) << watch->out() << "\n" << watch->err();
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0)
      << WaitStatusString(*status) << "\n--- stdout:\n"
      << watch->out() << "--- stderr:\n"
      << watch->err();
  RecordProperty("restart_seconds", absl::StrCat(absl::ToDoubleSeconds(restart)));
  RecordProperty("watch_seconds", absl::StrCat(absl::ToDoubleSeconds(absl::Now() - start)));

  std::vector<int64_t> expected;
  for (int64_t step = 1; step <= kSteps; ++step) expected.push_back(step);
  EXPECT_EQ(StepsPrinted(watch->out()), expected) << "--- stdout:\n"
                                                  << watch->out() << "--- stderr:\n"
                                                  << watch->err();
  EXPECT_THAT(watch->err(), HasSubstr("reconnecting")) << watch->err();
  const std::vector<std::string> lines = Lines(watch->out());
  ASSERT_FALSE(lines.empty());
  EXPECT_EQ(lines.back(), absl::StrCat("job ", id, " SUCCEEDED at step ", kSteps)) << watch->out();

  // A replay of the ended job shows where training resumed; when that is before the last step
  // printed before the kill, the watcher has seen steps that the server trained again.
  const Outcome replay = Ganctl({"watch", id});
  EXPECT_EQ(replay.exit_code, 0) << Describe(replay);
  EXPECT_EQ(StepsPrinted(replay.out), expected) << Describe(replay);
  int64_t resumed_from = -1;
  for (const std::string& line : Lines(replay.out)) {
    if (absl::StartsWith(line, "resumed from step ")) {
      EXPECT_EQ(resumed_from, -1) << "two resume markers\n" << Describe(replay);
      EXPECT_TRUE(absl::SimpleAtoi(line.substr(18), &resumed_from)) << line;
    }
  }
  EXPECT_GE(resumed_from, 0) << "no resume marker\n" << Describe(replay);
  RecordProperty("resumed_from_step", static_cast<int>(resumed_from));
  std::printf(
      "watch across the kill: %zu steps printed before it, resumed from step %lld "
      "(%s), restart took %s\n%s%s",
      before.size(), static_cast<long long>(resumed_from),
      resumed_from < before.back() ? "printed steps were trained again"
                                   : "no printed step was trained again",
      absl::FormatDuration(restart).c_str(), watch->out().c_str(), watch->err().c_str());
}

}  // namespace
}  // namespace gan
