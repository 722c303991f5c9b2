// ganctl: command-line client of gan-server.
//
//   ganctl [--server ADDR] [--deadline_seconds S] [--json] COMMAND ...
//   ganctl submit --preset seed --steps 200 --dataset synthetic [--watch]   (prints the job id)
//   ganctl get|cancel|watch JOB_ID
//   ganctl list [--state running] [--page_size 20] [--page_token T]
//   ganctl score JOB_ID FILE...        (PNG files, IDX image files or *.raw NHWC uint8 bytes)
//   ganctl sample JOB_ID --count 64 --seed 1 --out samples.png
//   ganctl health
//
// Exit codes: 0 success; 1 the server answered with an error (printed as "CODE: message") or
// could not be reached; 2 bad command line; 3 the watched job ended other than SUCCEEDED;
// 4 an input or output file could not be used.

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/strip.h"
#include "absl/strings/str_cat.h"
#include "io/idx_reader.h"
#include "io/png_grid.h"
#include "gan/v1/service.grpc.pb.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/util/json_util.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "stb/stb_image.h"
#include "stb/stb_image_resize.h"

namespace {

constexpr int kRpcError = 1;
constexpr int kJobNotSucceeded = 3;
constexpr int kFileError = 4;

struct Global {
  std::string server = "127.0.0.1:50051";
  double deadline_seconds = 30;
  bool json = false;
};

class Client {
 public:
  explicit Client(const Global& g)
      : global_(g),
        channel_(grpc::CreateChannel(g.server, grpc::InsecureChannelCredentials())),
        training_(gan::v1::TrainingService::NewStub(channel_)),
        scoring_(gan::v1::ScoringService::NewStub(channel_)),
        health_(grpc::health::v1::Health::NewStub(channel_)) {}

  void SetDeadline(grpc::ClientContext* context) const {
    context->set_deadline(std::chrono::system_clock::now() +
                          std::chrono::milliseconds(
                              static_cast<int64_t>(global_.deadline_seconds * 1000)));
  }

  const Global& global_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<gan::v1::TrainingService::Stub> training_;
  std::unique_ptr<gan::v1::ScoringService::Stub> scoring_;
  std::unique_ptr<grpc::health::v1::Health::Stub> health_;
};

const char* CodeName(grpc::StatusCode code) {
  static const char* kNames[] = {"OK",
                                 "CANCELLED",
                                 "UNKNOWN",
                                 "INVALID_ARGUMENT",
                                 "DEADLINE_EXCEEDED",
                                 "NOT_FOUND",
                                 "ALREADY_EXISTS",
                                 "PERMISSION_DENIED",
                                 "RESOURCE_EXHAUSTED",
                                 "FAILED_PRECONDITION",
                                 "ABORTED",
                                 "OUT_OF_RANGE",
                                 "UNIMPLEMENTED",
                                 "INTERNAL",
                                 "UNAVAILABLE",
                                 "DATA_LOSS",
                                 "UNAUTHENTICATED"};
  const int i = static_cast<int>(code);
  return i >= 0 && i < 17 ? kNames[i] : "UNKNOWN";
}

int RpcFailed(const grpc::Status& status) {
  std::fprintf(stderr, "ganctl: %s: %s\n", CodeName(status.error_code()),
               status.error_message().c_str());
  return kRpcError;
}

void Print(const Global& g, const google::protobuf::Message& message) {
  std::string out;
  if (g.json) {
    google::protobuf::util::JsonPrintOptions options;
    options.preserve_proto_field_names = true;
    (void)google::protobuf::util::MessageToJsonString(message, &out, options);
    out += "\n";
  } else {
    google::protobuf::TextFormat::PrintToString(message, &out);
  }
  std::fputs(out.c_str(), stdout);
}

std::string StateName(gan::v1::JobState state) {
  return std::string(absl::StripPrefix(gan::v1::JobState_Name(state), "JOB_STATE_"));
}

// --- watch ---------------------------------------------------------------------------------

int Watch(Client& client, const std::string& job_id) {
  gan::v1::Job job;
  {
    grpc::ClientContext context;
    client.SetDeadline(&context);
    gan::v1::GetJobRequest request;
    request.set_job_id(job_id);
    grpc::Status status = client.training_->GetJob(&context, request, &job);
    if (!status.ok()) return RpcFailed(status);
  }
  const bool tty = isatty(STDOUT_FILENO) && !client.global_.json;
  int64_t next_step = 0;
  double backoff = 0.5;
  const auto start = std::chrono::steady_clock::now();
  int64_t first_step_seen = -1;
  while (true) {
    grpc::ClientContext context;  // no deadline: a stream lasts as long as the job
    gan::v1::StreamMetricsRequest request;
    request.set_job_id(job_id);
    request.set_from_step(next_step);
    auto reader = client.training_->StreamMetrics(&context, request);
    gan::v1::MetricEvent event;
    while (reader->Read(&event)) {
      backoff = 0.5;
      if (event.has_finished()) {
        const gan::v1::Job& done = event.finished();
        if (tty) std::printf("\n");
        if (client.global_.json) {
          Print(client.global_, done);
        } else {
          std::printf("job %s %s at step %lld%s%s\n", job_id.c_str(),
                      StateName(done.state()).c_str(), static_cast<long long>(done.step()),
                      done.error_message().empty() ? "" : ": ", done.error_message().c_str());
        }
        return done.state() == gan::v1::JOB_STATE_SUCCEEDED ? 0 : kJobNotSucceeded;
      }
      if (event.has_resumed_from_step()) {
        if (!tty) std::printf("resumed from step %lld\n", (long long)event.resumed_from_step());
        continue;
      }
      if (!event.has_step()) continue;
      const gan::v1::StepMetrics& m = event.step();
      next_step = m.step() + 1;
      if (client.global_.json) {
        Print(client.global_, m);
        continue;
      }
      if (first_step_seen < 0) first_step_seen = m.step();
      const double elapsed =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      const double rate = elapsed > 0 ? (m.step() - first_step_seen + 1) / elapsed : 0;
      const double eta = rate > 0 ? (job.total_steps() - next_step) / rate : 0;
      std::printf("%sstep %lld/%lld (%.0f%%)  d_loss %.4f  g_loss %.4f  D(x) %.3f  D(G(z)) %.3f  "
                  "%.0f img/s  ETA %.0fs%s",
                  tty ? "\r" : "", static_cast<long long>(next_step),
                  static_cast<long long>(job.total_steps()),
                  100.0 * next_step / std::max<int64_t>(job.total_steps(), 1), m.d_loss(),
                  m.g_loss(), m.d_real(), m.d_fake(), m.images_per_second(), eta,
                  tty ? "   " : "\n");
      std::fflush(stdout);
    }
    const grpc::Status status = reader->Finish();
    if (status.error_code() == grpc::StatusCode::NOT_FOUND ||
        status.error_code() == grpc::StatusCode::INVALID_ARGUMENT) {
      return RpcFailed(status);
    }
    // A dropped connection: reconnect with backoff and resume after the last step printed.
    std::fprintf(stderr, "%sganctl: stream interrupted (%s); reconnecting in %.1fs\n",
                 tty ? "\n" : "", CodeName(status.error_code()), backoff);
    std::this_thread::sleep_for(std::chrono::milliseconds(static_cast<int>(backoff * 1000)));
    backoff = std::min(backoff * 2, 8.0);
  }
}

// --- score ---------------------------------------------------------------------------------

struct Images {
  std::vector<std::string> names;
  std::vector<uint8_t> pixels;  // NHWC
};

// Loads PNG (any size and colour: converted to grey by luminance, or to RGB, and resized to the
// model's H x W with stb's resampler), raw files (*.raw: N x H x W x C uint8, N from the size)
// or IDX image files (must already be H x W, one channel).
bool LoadImages(const std::vector<std::string>& files, int h, int w, int c, Images* out,
                std::string* error) {
  for (const std::string& file : files) {
    if (absl::EndsWith(file, ".png") || absl::EndsWith(file, ".PNG")) {
      int width, height, channels;
      unsigned char* data = stbi_load(file.c_str(), &width, &height, &channels, c);
      if (data == nullptr) {
        *error = absl::StrCat(file, ": not a readable PNG (", stbi_failure_reason(), ")");
        return false;
      }
      std::vector<uint8_t> resized(static_cast<size_t>(h) * w * c);
      const bool ok = stbir_resize_uint8(data, width, height, 0, resized.data(), w, h, 0, c) != 0;
      stbi_image_free(data);
      if (!ok) {
        *error = absl::StrCat(file, ": could not be resized to ", w, "x", h);
        return false;
      }
      out->names.push_back(file);
      out->pixels.insert(out->pixels.end(), resized.begin(), resized.end());
      continue;
    }
    if (absl::EndsWith(file, ".raw")) {
      std::FILE* f = std::fopen(file.c_str(), "rb");
      if (f == nullptr) {
        *error = absl::StrCat(file, ": cannot be read");
        return false;
      }
      std::string bytes;
      char buffer[65536];
      for (size_t n; (n = std::fread(buffer, 1, sizeof(buffer), f)) > 0;) bytes.append(buffer, n);
      std::fclose(f);
      const size_t image = static_cast<size_t>(h) * w * c;
      if (bytes.empty() || bytes.size() % image != 0) {
        *error = absl::StrCat(file, ": ", bytes.size(), " bytes is not a whole number of ", h, "x",
                              w, "x", c, " uint8 images");
        return false;
      }
      for (size_t i = 0; i < bytes.size() / image; ++i) {
        out->names.push_back(absl::StrCat(file, "[", i, "]"));
      }
      out->pixels.insert(out->pixels.end(), bytes.begin(), bytes.end());
      continue;
    }
    auto idx = gan::ReadIdxFile(file);
    if (!idx.ok()) {
      *error = std::string(idx.status().message());
      return false;
    }
    if (idx->dims.size() != 3 || idx->dims[1] != h || idx->dims[2] != w || c != 1) {
      *error = absl::StrCat(file, ": IDX images must be N x ", h, " x ", w, " (one channel)");
      return false;
    }
    for (int64_t i = 0; i < idx->dims[0]; ++i) out->names.push_back(absl::StrCat(file, "[", i, "]"));
    out->pixels.insert(out->pixels.end(), idx->data.begin(), idx->data.end());
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  Global g;
  CLI::App app{"Client of gan-server: submit and watch GAN training jobs, score and sample"};
  app.require_subcommand(1);
  app.add_option("--server", g.server, "gan-server address")->capture_default_str();
  app.add_option("--deadline_seconds", g.deadline_seconds, "deadline of every unary call")
      ->capture_default_str()
      ->check(CLI::Range(0.001, 86400.0));
  app.add_flag("--json", g.json, "machine-readable JSON output");

  gan::v1::JobSpec spec;
  std::string spec_file, request_id, hidden_activation;
  int64_t steps = 0, epochs = 0;
  int batch = 0;
  uint64_t seed = 0;
  bool watch_after_submit = false;
  std::string preset = "seed";
  std::string dataset;
  auto* submit = app.add_subcommand("submit", "create a training job; prints its id");
  submit->add_option("--preset", preset, "seed, seed-dcgan or tf-dcgan")->capture_default_str();
  submit->add_option("--spec", spec_file, "a JobSpec in protobuf JSON or text format");
  submit->add_option("--steps", steps, "iterations")->check(CLI::PositiveNumber);
  submit->add_option("--epochs", epochs, "epochs")->check(CLI::PositiveNumber);
  submit->add_option("--dataset", dataset, "fashion-mnist, synthetic or a server dataset name");
  submit->add_option("--batch", batch, "batch size")->check(CLI::PositiveNumber);
  submit->add_option("--seed", seed, "seed");
  submit->add_option("--hidden_activation", hidden_activation,
                     "discriminator hidden activations: leaky_relu, relu, tanh, sigmoid");
  submit->add_option("--request_id", request_id, "idempotency key");
  submit->add_flag("--watch", watch_after_submit, "follow the job until it ends");

  std::string job_id;
  auto* get = app.add_subcommand("get", "show a job");
  get->add_option("job_id", job_id)->required();
  auto* cancel = app.add_subcommand("cancel", "cancel a job");
  cancel->add_option("job_id", job_id)->required();
  auto* watch = app.add_subcommand("watch", "follow a job's metrics until it ends");
  watch->add_option("job_id", job_id)->required();

  std::string state, page_token;
  int page_size = 20;
  auto* list = app.add_subcommand("list", "list jobs, newest first");
  list->add_option("--state", state, "queued, running, succeeded, failed or cancelled");
  list->add_option("--page_size", page_size)->capture_default_str()->check(CLI::Range(1, 100));
  list->add_option("--page_token", page_token);

  std::vector<std::string> files;
  int height = 28, width = 28, channels = 1;
  int64_t checkpoint_step = 0;
  auto* score = app.add_subcommand("score", "score PNG or IDX images with a job's discriminator");
  score->add_option("job_id", job_id)->required();
  score->add_option("files", files, "PNG, IDX or .raw (N x H x W x C uint8) image files")
      ->required();
  score->add_option("--checkpoint_step", checkpoint_step, "0: the latest");
  score->add_option("--height", height, "model image height")->capture_default_str();
  score->add_option("--width", width, "model image width")->capture_default_str();
  score->add_option("--channels", channels, "model image channels (1 or 3)")
      ->capture_default_str();

  int count = 64, columns = 8;
  std::string out = "samples.png";
  auto* sample = app.add_subcommand("sample", "draw images from a job's generator into a PNG");
  sample->add_option("job_id", job_id)->required();
  sample->add_option("--count", count)->capture_default_str()->check(CLI::Range(1, 4096));
  sample->add_option("--seed", seed)->capture_default_str();
  sample->add_option("--checkpoint_step", checkpoint_step, "0: the latest");
  sample->add_option("--columns", columns)->capture_default_str()->check(CLI::Range(1, 256));
  sample->add_option("--out", out, "PNG file")->capture_default_str();

  auto* health = app.add_subcommand("health", "check that the server is SERVING");
  app.fallthrough();  // global options may follow the command: ganctl get JOB --json
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    app.exit(e);  // prints --help or the error
    return e.get_exit_code() == 0 ? 0 : 2;
  }

  Client client(g);
  grpc::ClientContext context;
  client.SetDeadline(&context);

  if (*health) {
    grpc::health::v1::HealthCheckResponse response;
    grpc::Status status = client.health_->Check(&context, {}, &response);
    if (!status.ok()) return RpcFailed(status);
    std::printf("%s\n", grpc::health::v1::HealthCheckResponse::ServingStatus_Name(
                            response.status()).c_str());
    return response.status() == grpc::health::v1::HealthCheckResponse::SERVING ? 0 : kRpcError;
  }
  if (*submit) {
    if (!spec_file.empty()) {
      std::FILE* f = std::fopen(spec_file.c_str(), "rb");
      if (f == nullptr) {
        std::fprintf(stderr, "ganctl: cannot read %s\n", spec_file.c_str());
        return kFileError;
      }
      std::string text;
      char buffer[4096];
      for (size_t n; (n = std::fread(buffer, 1, sizeof(buffer), f)) > 0;) text.append(buffer, n);
      std::fclose(f);
      if (!google::protobuf::util::JsonStringToMessage(text, &spec).ok() &&
          !google::protobuf::TextFormat::ParseFromString(text, &spec)) {
        std::fprintf(stderr, "ganctl: %s is neither a JSON nor a text-format JobSpec\n",
                     spec_file.c_str());
        return kFileError;
      }
    } else {
      spec.set_preset(preset);
    }
    if (steps > 0) spec.set_steps(steps);
    if (epochs > 0) spec.set_epochs(epochs);
    if (!dataset.empty()) spec.set_dataset(dataset);
    if (batch > 0) spec.set_batch_size(batch);
    if (seed > 0) spec.set_seed(seed);
    if (!hidden_activation.empty()) {
      gan::v1::Activation* a = spec.mutable_discriminator_hidden_activation();
      const std::string upper = absl::AsciiStrToUpper(hidden_activation);
      gan::v1::ActivationFunction function;
      if (!gan::v1::ActivationFunction_Parse("ACTIVATION_FUNCTION_" + upper, &function)) {
        std::fprintf(stderr, "ganctl: unknown --hidden_activation %s\n",
                     hidden_activation.c_str());
        return 2;
      }
      a->set_function(function);
      if (function == gan::v1::ACTIVATION_FUNCTION_LEAKY_RELU) a->set_alpha(0.2f);
    }
    gan::v1::SubmitJobRequest request;
    *request.mutable_spec() = spec;
    request.set_request_id(request_id);
    gan::v1::Job job;
    grpc::Status status = client.training_->SubmitJob(&context, request, &job);
    if (!status.ok()) return RpcFailed(status);
    if (g.json) {
      Print(g, job);
    } else {
      std::printf("%s\n", job.job_id().c_str());
    }
    std::fflush(stdout);
    return watch_after_submit ? Watch(client, job.job_id()) : 0;
  }
  if (*get || *cancel) {
    gan::v1::Job job;
    grpc::Status status;
    if (*get) {
      gan::v1::GetJobRequest request;
      request.set_job_id(job_id);
      status = client.training_->GetJob(&context, request, &job);
    } else {
      gan::v1::CancelJobRequest request;
      request.set_job_id(job_id);
      status = client.training_->CancelJob(&context, request, &job);
    }
    if (!status.ok()) return RpcFailed(status);
    Print(g, job);
    return 0;
  }
  if (*watch) return Watch(client, job_id);
  if (*list) {
    gan::v1::ListJobsRequest request;
    request.set_page_size(page_size);
    request.set_page_token(page_token);
    if (!state.empty()) {
      gan::v1::JobState parsed;
      if (!gan::v1::JobState_Parse("JOB_STATE_" + absl::AsciiStrToUpper(state), &parsed)) {
        std::fprintf(stderr, "ganctl: unknown --state %s\n", state.c_str());
        return 2;
      }
      request.set_state(parsed);
    }
    gan::v1::ListJobsResponse response;
    grpc::Status status = client.training_->ListJobs(&context, request, &response);
    if (!status.ok()) return RpcFailed(status);
    if (g.json) {
      Print(g, response);
      return 0;
    }
    for (const gan::v1::Job& job : response.jobs()) {
      std::printf("%s  %-9s  %lld/%lld\n", job.job_id().c_str(), StateName(job.state()).c_str(),
                  static_cast<long long>(job.step()), static_cast<long long>(job.total_steps()));
    }
    if (!response.next_page_token().empty()) {
      std::printf("next page: --page_token %s\n", response.next_page_token().c_str());
    }
    return 0;
  }
  if (*score) {
    Images images;
    std::string error;
    if (!LoadImages(files, height, width, channels, &images, &error)) {
      std::fprintf(stderr, "ganctl: %s\n", error.c_str());
      return kFileError;
    }
    gan::v1::ScoreRequest request;
    request.set_job_id(job_id);
    request.set_checkpoint_step(checkpoint_step);
    for (int64_t d : {static_cast<int64_t>(images.names.size()), int64_t{height}, int64_t{width},
                      int64_t{channels}}) {
      request.add_shape(d);
    }
    request.set_uint8_pixels(images.pixels.data(), images.pixels.size());
    gan::v1::ScoreResponse response;
    grpc::Status status = client.scoring_->Score(&context, request, &response);
    if (!status.ok()) return RpcFailed(status);
    if (g.json) {
      Print(g, response);
      return 0;
    }
    for (int i = 0; i < response.probabilities_size(); ++i) {
      std::printf("%s\t%.6f\n", images.names[i].c_str(), response.probabilities(i));
    }
    return 0;
  }
  if (*sample) {
    gan::v1::SampleImagesRequest request;
    request.set_job_id(job_id);
    request.set_count(count);
    request.set_seed(seed);
    request.set_checkpoint_step(checkpoint_step);
    gan::v1::SampleImagesResponse response;
    grpc::Status status = client.training_->SampleImages(&context, request, &response);
    if (!status.ok()) return RpcFailed(status);
    const std::string& p = response.pixels();
    const absl::Status written = gan::WritePngGrid(
        out, absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(p.data()), p.size()),
        response.count(), response.height(), response.width(), response.channels(), columns);
    if (!written.ok()) {
      std::fprintf(stderr, "ganctl: %s\n", std::string(written.message()).c_str());
      return kFileError;
    }
    std::printf("%s\n", out.c_str());
    return 0;
  }
  return 2;
}
