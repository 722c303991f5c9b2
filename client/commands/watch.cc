#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>
#include <thread>

#include "client/commands/commands.h"
#include "client/output.h"
#include "gan/v1/service.grpc.pb.h"

namespace gan::ganctl {
namespace {

constexpr double kFirstBackoffSeconds = 0.5;
constexpr double kMaxBackoffSeconds = 8.0;

}  // namespace

int Watch(Connection& connection, const std::string& job_id) {
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
        if (tty) std::printf("\n");
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
      if (first_step_seen < 0) first_step_seen = m.step();
      const double elapsed =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      const double rate = elapsed > 0 ? (m.step() - first_step_seen + 1) / elapsed : 0;
      const double eta = rate > 0 ? (job.total_steps() - next_step) / rate : 0;
      std::printf(
          "%sstep %lld/%lld (%.0f%%)  d_loss %.4f  g_loss %.4f  D(x) %.3f  D(G(z)) %.3f  "
          "%.0f img/s  ETA %.0fs%s",
          tty ? "\r" : "", static_cast<long long>(next_step),
          static_cast<long long>(job.total_steps()),
          100.0 * next_step / std::max<int64_t>(job.total_steps(), 1), m.d_loss(), m.g_loss(),
          m.d_real(), m.d_fake(), m.images_per_second(), eta, tty ? "   " : "\n");
      std::fflush(stdout);
    }
    const grpc::Status status = reader->Finish();
    if (status.error_code() == grpc::StatusCode::NOT_FOUND ||
        status.error_code() == grpc::StatusCode::INVALID_ARGUMENT) {
      return ReportRpcError(status);
    }
    // A dropped connection: reconnect with backoff and resume after the last step printed.
    std::fprintf(stderr, "%sganctl: stream interrupted (%s); reconnecting in %.1fs\n",
                 tty ? "\n" : "", StatusCodeName(status.error_code()), backoff);
    std::this_thread::sleep_for(std::chrono::milliseconds(static_cast<int>(backoff * 1000)));
    backoff = std::min(backoff * 2, kMaxBackoffSeconds);
  }
}

}  // namespace gan::ganctl
