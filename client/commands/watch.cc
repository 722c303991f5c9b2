#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "client/commands/commands.h"
#include "client/health_warnings.h"
#include "client/output.h"
#include "gan/v1/service.grpc.pb.h"

namespace gan::ganctl {
namespace {

constexpr double kFirstBackoffSeconds = 0.5;
constexpr double kMaxBackoffSeconds = 8.0;

}  // namespace

int Watch(Connection& connection, const std::string& job_id, int64_t every) {
  // The job's total steps, for the progress line and its ETA.
  gan::v1::Job job;
  {
    gan::v1::GetJobRequest request;
    request.set_job_id(job_id);
    grpc::ClientContext context;
    connection.PrepareCall(&context);
    const grpc::Status status = connection.training().GetJob(&context, request, &job);
    if (!status.ok()) return ReportRpcError(status);
  }
  const bool json = connection.options().json;
  const bool tty = isatty(STDOUT_FILENO) && !json;
  int64_t next_step = 0;  // the first step not printed yet
  double backoff = kFirstBackoffSeconds;
  const auto start = std::chrono::steady_clock::now();
  int64_t first_step_seen = -1;
  HealthWarnings health;  // flags of the events seen so far, across reconnections
  bool header_printed = false;
  int64_t last_kept = 0;        // the step of the last row that stays
  bool transient_line = false;  // a tty's live line is showing and ends without a newline
  while (true) {
    grpc::ClientContext context;  // no deadline: a stream lasts as long as the job
    connection.PrepareStream(&context);
    gan::v1::StreamMetricsRequest request;
    request.set_job_id(job_id);
    request.set_from_step(next_step);
    auto reader = connection.training().StreamMetrics(&context, request);
    gan::v1::MetricEvent event;
    while (reader->Read(&event)) {
      backoff = kFirstBackoffSeconds;
      if (event.has_finished()) {
        const gan::v1::Job& done = event.finished();
        if (transient_line) std::printf("\n");
        if (json) {
          PrintMessage(/*json=*/true, done);
        } else {
          std::printf("job %s %s at step %lld%s%s\n", job_id.c_str(),
                      JobStateName(done.state()).c_str(), static_cast<long long>(done.step()),
                      done.error_message().empty() ? "" : ": ", done.error_message().c_str());
        }
        return done.state() == gan::v1::JOB_STATE_SUCCEEDED ? kExitOk : kExitJobNotSucceeded;
      }
      if (event.has_resumed_from_step()) {
        if (!tty) {
          std::printf("resumed from step %lld\n",
                      static_cast<long long>(event.resumed_from_step()));
        }
        continue;
      }
      if (!event.has_step()) continue;
      const gan::v1::StepMetrics& m = event.step();
      next_step = m.step() + 1;
      if (json) {
        PrintMessage(/*json=*/true, m);
        continue;
      }
      // A line when a gradient-health flag turns on or off, before the step's row.
      for (const std::string& line : health.Update(m)) {
        std::printf("%s%s\n", transient_line ? "\n" : "", line.c_str());
        transient_line = false;
      }
      if (first_step_seen < 0) first_step_seen = m.step();
      // Rows that stay: the first event, the first at or past each multiple of `every`, the last,
      // or every event off a terminal when `every` is 0. A terminal also shows each event on one
      // live line that the next overwrites.
      const bool keep = every > 0 ? !header_printed || next_step / every > last_kept / every ||
                                        next_step == job.total_steps()
                                  : !tty;
      if (keep) last_kept = next_step;
      if (!keep && !tty) continue;
      if (!header_printed) {
        std::printf("%s%15s  %8s  %8s  %6s  %7s  %6s  %7s\n", transient_line ? "\r" : "", "step",
                    "d_loss", "g_loss", "D(x)", "D(G(z))", "img/s", "ETA");
        header_printed = true;
      }
      const double elapsed =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      const double rate = elapsed > 0 ? (m.step() - first_step_seen + 1) / elapsed : 0;
      const double eta = rate > 0 ? (job.total_steps() - next_step) / rate : 0;
      const std::string step = absl::StrCat(next_step, "/", job.total_steps());
      std::printf("%s%15s  %8.4f  %8.4f  %6.3f  %7.3f  %6.0f  %6.0fs%s", tty ? "\r" : "",
                  step.c_str(), m.d_loss(), m.g_loss(), m.d_real(), m.d_fake(),
                  m.images_per_second(), eta, keep ? "\n" : "   ");
      transient_line = !keep;
      std::fflush(stdout);
    }
    const grpc::Status status = reader->Finish();
    if (status.error_code() == grpc::StatusCode::NOT_FOUND ||
        status.error_code() == grpc::StatusCode::INVALID_ARGUMENT) {
      return ReportRpcError(status);
    }
    // A dropped connection: reconnect with backoff and resume after the last step printed.
    std::fprintf(stderr, "%sganctl: stream interrupted (%s); reconnecting in %.1fs\n",
                 transient_line ? "\n" : "", StatusCodeName(status.error_code()), backoff);
    std::this_thread::sleep_for(std::chrono::milliseconds(static_cast<int>(backoff * 1000)));
    backoff = std::min(backoff * 2, kMaxBackoffSeconds);
  }
}

}  // namespace gan::ganctl
