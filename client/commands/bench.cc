// `ganctl bench score`: a closed-loop load generator for scoring. N client threads, each on its
// own connection, send requests back to back for the given duration (after one warm-up request
// that loads the model), over gan.v1 Score or the Open Inference Protocol's ModelInfer, and the
// command prints throughput and latency percentiles.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/commands/commands.h"
#include "client/output.h"
#include "gan/v1/service.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "inference/grpc_service.grpc.pb.h"

namespace gan::ganctl {
namespace {

using Clock = std::chrono::steady_clock;

// Deterministic pixels for request `seed`: N x H x W x C bytes.
std::string Pixels(int64_t bytes, uint64_t seed) {
  std::string pixels(static_cast<size_t>(bytes), '\0');
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  for (char& b : pixels) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    b = static_cast<char>(x >> 56);
  }
  return pixels;
}

// One worker's connection and its prepared request.
class Caller {
 public:
  Caller(const BenchOptions& options, const Connection& connection, int index)
      : connection_(connection) {
    // A channel argument of its own keeps gRPC from sharing one connection between workers.
    grpc::ChannelArguments args;
    args.SetInt("ganctl.bench.worker", index);
    channel_ =
        grpc::CreateCustomChannel(connection.options().server, connection.credentials(), args);
    const std::vector<int64_t> shape = {options.images_per_request, options.height, options.width,
                                        options.channels};
    const std::string pixels =
        Pixels(options.images_per_request * options.height * options.width * options.channels,
               static_cast<uint64_t>(index));
    if (options.protocol == "oip") {
      oip_ = inference::GRPCInferenceService::NewStub(channel_);
      infer_.set_model_name(options.job_id);
      if (options.checkpoint_step > 0) {
        infer_.set_model_version(absl::StrCat(options.checkpoint_step));
      }
      auto* input = infer_.add_inputs();
      input->set_name("images");
      input->set_datatype("UINT8");
      for (int64_t d : shape) input->add_shape(d);
      infer_.add_raw_input_contents(pixels);
    } else {
      gan_ = gan::v1::ScoringService::NewStub(channel_);
      score_.set_job_id(options.job_id);
      score_.set_checkpoint_step(options.checkpoint_step);
      for (int64_t d : shape) score_.add_shape(d);
      score_.set_uint8_pixels(pixels);
    }
  }

  grpc::Status Call() {
    grpc::ClientContext context;
    connection_.PrepareCall(&context);
    if (oip_ != nullptr) {
      inference::ModelInferResponse response;
      return oip_->ModelInfer(&context, infer_, &response);
    }
    gan::v1::ScoreResponse response;
    return gan_->Score(&context, score_, &response);
  }

 private:
  const Connection& connection_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<gan::v1::ScoringService::Stub> gan_;
  std::unique_ptr<inference::GRPCInferenceService::Stub> oip_;
  gan::v1::ScoreRequest score_;
  inference::ModelInferRequest infer_;
};

struct WorkerResult {
  std::vector<double> latencies_ms;  // successful calls
  std::map<grpc::StatusCode, int64_t> errors;
  std::string first_error;
};

double Percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  const size_t index = static_cast<size_t>(p * static_cast<double>(sorted.size() - 1) + 0.5);
  return sorted[std::min(index, sorted.size() - 1)];
}

}  // namespace

int BenchScore(Connection& connection, const BenchOptions& options) {
  if (options.job_id.empty() || options.concurrency < 1 || options.duration_seconds <= 0 ||
      options.images_per_request < 1 || options.height < 1 || options.width < 1 ||
      options.channels < 1 || (options.protocol != "gan" && options.protocol != "oip")) {
    ReportError(
        "bench score: needs --job, --concurrency >= 1, --duration > 0, "
        "--images_per_request >= 1 and --protocol gan or oip");
    return kExitUsage;
  }
  const GlobalOptions& global = connection.options();
  std::vector<std::unique_ptr<Caller>> callers;
  for (int i = 0; i < options.concurrency; ++i) {
    callers.push_back(std::make_unique<Caller>(options, connection, i));
  }
  // Warm-up: loads the model (and fails fast on a wrong job or shape).
  if (grpc::Status status = callers.front()->Call(); !status.ok()) {
    return ReportRpcError(status);
  }

  std::vector<WorkerResult> results(options.concurrency);
  const Clock::time_point start = Clock::now();
  const Clock::time_point end =
      start + std::chrono::microseconds(static_cast<int64_t>(options.duration_seconds * 1e6));
  std::vector<std::thread> threads;
  for (int i = 0; i < options.concurrency; ++i) {
    threads.emplace_back([&, i] {
      WorkerResult& result = results[i];
      while (Clock::now() < end) {
        const Clock::time_point sent = Clock::now();
        const grpc::Status status = callers[i]->Call();
        const double ms = std::chrono::duration<double, std::milli>(Clock::now() - sent).count();
        if (status.ok()) {
          result.latencies_ms.push_back(ms);
        } else {
          if (result.errors.empty()) {
            result.first_error =
                absl::StrCat(StatusCodeName(status.error_code()), ": ", status.error_message());
          }
          ++result.errors[status.error_code()];
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();

  std::vector<double> latencies;
  std::map<grpc::StatusCode, int64_t> errors;
  std::string first_error;
  for (const WorkerResult& r : results) {
    latencies.insert(latencies.end(), r.latencies_ms.begin(), r.latencies_ms.end());
    for (const auto& [code, count] : r.errors) errors[code] += count;
    if (first_error.empty()) first_error = r.first_error;
  }
  std::sort(latencies.begin(), latencies.end());
  const int64_t ok = static_cast<int64_t>(latencies.size());
  int64_t failed = 0;
  for (const auto& [code, count] : errors) failed += count;
  const double requests_per_s = static_cast<double>(ok) / seconds;
  const double images_per_s = requests_per_s * static_cast<double>(options.images_per_request);
  const double p50 = Percentile(latencies, 0.50), p90 = Percentile(latencies, 0.90),
               p99 = Percentile(latencies, 0.99), max = latencies.empty() ? 0 : latencies.back();

  if (global.json) {
    std::string error_json;
    for (const auto& [code, count] : errors) {
      absl::StrAppend(&error_json, error_json.empty() ? "" : ", ", "\"", StatusCodeName(code),
                      "\": ", count);
    }
    std::printf(
        "{\"protocol\": \"%s\", \"job_id\": \"%s\", \"concurrency\": %d, "
        "\"images_per_request\": %ld, \"duration_s\": %.3f, \"requests\": %ld, "
        "\"errors\": {%s}, \"requests_per_s\": %.2f, \"images_per_s\": %.2f, "
        "\"latency_ms\": {\"p50\": %.3f, \"p90\": %.3f, \"p99\": %.3f, \"max\": %.3f}}\n",
        options.protocol.c_str(), options.job_id.c_str(), options.concurrency,
        static_cast<long>(options.images_per_request), seconds, static_cast<long>(ok),
        error_json.c_str(), requests_per_s, images_per_s, p50, p90, p99, max);
  } else {
    std::printf("protocol %s, concurrency %d, %ld images/request, %.1f s\n",
                options.protocol.c_str(), options.concurrency,
                static_cast<long>(options.images_per_request), seconds);
    std::printf("requests     %ld ok, %ld failed\n", static_cast<long>(ok),
                static_cast<long>(failed));
    std::printf("throughput   %.1f requests/s, %.1f images/s\n", requests_per_s, images_per_s);
    std::printf("latency ms   p50 %.2f  p90 %.2f  p99 %.2f  max %.2f\n", p50, p90, p99, max);
    if (failed > 0) std::printf("first error  %s\n", first_error.c_str());
  }
  if (ok == 0 && failed > 0) {
    ReportError(absl::StrCat("every request failed; first: ", first_error));
    return kExitRpcError;
  }
  return kExitOk;
}

}  // namespace gan::ganctl
