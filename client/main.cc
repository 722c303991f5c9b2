// ganctl: command-line client of gan-server.
//
//   ganctl [--server ADDR] [--deadline_seconds S] [--json] COMMAND ...
//   ganctl submit --preset seed --steps 200 --dataset synthetic [--watch]   (prints the job id)
//   ganctl get|cancel|watch JOB_ID
//   ganctl list [--state running] [--page_size 20] [--page_token T]
//   ganctl score JOB_ID FILE...        (PNG files, IDX image files or *.raw NHWC uint8 bytes)
//   ganctl sample JOB_ID --count 64 --seed 1 --out samples.png
//   ganctl export JOB_ID --model generator|discriminator [--checkpoint_step N] --out FILE.onnx
//   ganctl health
//   ganctl bench score --job JOB_ID --concurrency 32 --duration 10 --images_per_request 1
//                      [--protocol gan|oip]   (requests/s, images/s, latency percentiles)
//
// The global options may also follow the command (ganctl get JOB --json). A string option takes
// the next argument only when it does not start with '-'; write --name=VALUE for one that does,
// and --name= for the empty value (client/string_options.h).
//
// Exit codes: 0 success; 1 the server answered with an error (printed as "CODE: message") or
// could not be reached; 2 bad command line; 3 the watched job ended other than SUCCEEDED;
// 4 an input or output file could not be used.
//
// This file only declares the command line and dispatches; each command is a function in
// client/commands/.

#include <cstdlib>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "client/commands/commands.h"
#include "client/connection.h"
#include "client/output.h"
#include "client/string_options.h"

namespace gan::ganctl {
namespace {

int Run(int argc, const char* const* argv) {
  GlobalOptions global;
  StringOptions strings;
  CLI::App app{"Client of gan-server: submit and watch GAN training jobs, score and sample"};
  app.require_subcommand(1);
  // Before the subcommands are added, which copy it: global options may follow the command.
  app.fallthrough();
  strings.Add(&app, "--server", &global.server, "gan-server address")
      ->capture_default_str()
      ->check(CLI::Validator(
          [](std::string& value) { return value.empty() ? "must not be empty" : std::string(); },
          /*validator_desc=*/""));
  app.add_option("--deadline_seconds", global.deadline_seconds, "deadline of every unary call")
      ->capture_default_str()
      ->check(CLI::Range(0.001, 86400.0));
  app.add_flag("--json", global.json, "machine-readable JSON output");
  if (const char* token = std::getenv("GAN_TOKEN")) global.token = token;
  strings.Add(&app, "--token", &global.token,
              "bearer token sent with every call (default: $GAN_TOKEN; prefer the variable: "
              "command lines are visible to other users)");
  strings.Add(&app, "--tls_ca", &global.tls_ca, "CA certificate (PEM) of the server: use TLS");
  strings.Add(&app, "--tls_cert", &global.tls_cert, "client certificate (PEM) for mutual TLS");
  strings.Add(&app, "--tls_key", &global.tls_key, "client private key (PEM) for mutual TLS");

  SubmitOptions submit_options;
  auto* submit = app.add_subcommand("submit", "create a training job; prints its id");
  strings.Add(submit, "--preset", &submit_options.preset, "seed, seed-dcgan or tf-dcgan")
      ->capture_default_str();
  strings.Add(submit, "--spec", &submit_options.spec_file,
              "a JobSpec in protobuf JSON or text format");
  submit->add_option("--steps", submit_options.steps, "iterations")->check(CLI::PositiveNumber);
  submit->add_option("--epochs", submit_options.epochs, "epochs")->check(CLI::PositiveNumber);
  strings.Add(submit, "--dataset", &submit_options.dataset,
              "fashion-mnist, synthetic or a server dataset name");
  submit->add_option("--batch", submit_options.batch, "batch size")->check(CLI::PositiveNumber);
  submit->add_option("--seed", submit_options.seed, "seed");
  strings.Add(submit, "--hidden_activation", &submit_options.hidden_activation,
              "discriminator hidden activations: leaky_relu, relu, tanh, sigmoid");
  strings.Add(submit, "--request_id", &submit_options.request_id, "idempotency key");
  strings.Add(submit, "--init_from", &submit_options.init_from,
              "JOB or JOB@STEP: start from that job's checkpoint (default step: its newest)");
  submit->add_flag("--init_optimizer", submit_options.init_optimizer,
                   "with --init_from: also start from its Adam state");
  submit->add_flag("--pytorch_defaults", submit_options.pytorch_defaults,
                   "PyTorch's initialization, BatchNorm eps/momentum and Adam eps (not Keras')");
  submit->add_flag("--watch", submit_options.watch, "follow the job until it ends");

  std::string job_id;
  auto* get = app.add_subcommand("get", "show a job");
  get->add_option("job_id", job_id)->required();
  auto* cancel = app.add_subcommand("cancel", "cancel a job");
  cancel->add_option("job_id", job_id)->required();
  auto* watch = app.add_subcommand("watch", "follow a job's metrics until it ends");
  watch->add_option("job_id", job_id)->required();
  int64_t watch_every = 0;
  watch
      ->add_option("--every", watch_every,
                   "keep a row every N steps (0: every event off a terminal, one live row on it)")
      ->check(CLI::NonNegativeNumber);

  ListOptions list_options;
  auto* list = app.add_subcommand("list", "list jobs, newest first");
  strings.Add(list, "--state", &list_options.state,
              "queued, running, succeeded, failed or cancelled");
  list->add_option("--page_size", list_options.page_size)
      ->capture_default_str()
      ->check(CLI::Range(1, 100));
  strings.Add(list, "--page_token", &list_options.page_token);

  ScoreOptions score_options;
  auto* score = app.add_subcommand("score", "score PNG or IDX images with a job's discriminator");
  score->add_option("job_id", score_options.job_id)->required();
  score
      ->add_option("files", score_options.files,
                   "PNG, IDX or .raw (N x H x W x C uint8) image files")
      ->required();
  score->add_option("--checkpoint_step", score_options.checkpoint_step, "0: the latest");
  score->add_option("--height", score_options.height, "model image height")->capture_default_str();
  score->add_option("--width", score_options.width, "model image width")->capture_default_str();
  score->add_option("--channels", score_options.channels, "model image channels (1 or 3)")
      ->capture_default_str();
  score
      ->add_option("--first", score_options.first,
                   "score only the first N images of each IDX or raw file (0: all)")
      ->check(CLI::NonNegativeNumber);
  score->add_flag("--summary", score_options.summary,
                  "one line per file: image count and the mean, min and max probability");

  SampleOptions sample_options;
  auto* sample = app.add_subcommand(
      "sample", "draw images from a job's generator into a PNG grid or an IDX file");
  sample->add_option("job_id", sample_options.job_id)->required();
  sample->add_option("--count", sample_options.count)
      ->capture_default_str()
      ->check(CLI::Range(1, 4096));
  sample->add_option("--seed", sample_options.seed)->capture_default_str();
  sample->add_option("--checkpoint_step", sample_options.checkpoint_step, "0: the latest");
  sample->add_option("--columns", sample_options.columns)
      ->capture_default_str()
      ->check(CLI::Range(1, 256));
  strings
      .Add(sample, "--out", &sample_options.out,
           "*.idx: an IDX file of the images (one-channel generators), which `ganctl score` "
           "reads; anything else: a PNG grid")
      ->capture_default_str();

  ExportOptions export_options;
  auto* export_model =
      app.add_subcommand("export", "write a job's generator or discriminator as an ONNX model");
  export_model->add_option("job_id", export_options.job_id)->required();
  strings.Add(export_model, "--model", &export_options.model, "generator or discriminator")
      ->required()
      ->check(CLI::IsMember({"generator", "discriminator"}));
  export_model->add_option("--checkpoint_step", export_options.checkpoint_step, "0: the latest")
      ->check(CLI::NonNegativeNumber);
  strings.Add(export_model, "--out", &export_options.out, "ONNX file")->required();

  auto* health = app.add_subcommand("health", "check that the server is SERVING");

  BenchOptions bench_options;
  auto* bench = app.add_subcommand("bench", "load tests");
  bench->require_subcommand(1);
  auto* bench_score = bench->add_subcommand(
      "score", "closed-loop load on scoring: requests/s, images/s and latency percentiles");
  strings.Add(bench_score, "--job", &bench_options.job_id, "job whose discriminator scores")
      ->required();
  bench_score->add_option("--checkpoint_step", bench_options.checkpoint_step, "0: the latest");
  bench_score->add_option("--concurrency", bench_options.concurrency, "client threads")
      ->capture_default_str()
      ->check(CLI::Range(1, 4096));
  bench_score->add_option("--duration", bench_options.duration_seconds, "seconds of load")
      ->capture_default_str()
      ->check(CLI::Range(0.001, 86400.0));
  bench_score->add_option("--images_per_request", bench_options.images_per_request)
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  strings
      .Add(bench_score, "--protocol", &bench_options.protocol,
           "gan (gan.v1 Score) or oip (Open Inference Protocol ModelInfer)")
      ->capture_default_str()
      ->check(CLI::IsMember({"gan", "oip"}));
  bench_score->add_option("--height", bench_options.height, "model image height")
      ->capture_default_str()
      ->check(CLI::Range(1, 4096));
  bench_score->add_option("--width", bench_options.width, "model image width")
      ->capture_default_str()
      ->check(CLI::Range(1, 4096));
  bench_score->add_option("--channels", bench_options.channels, "model image channels")
      ->capture_default_str()
      ->check(CLI::Range(1, 4));

  try {
    const std::vector<std::string> args = strings.Rewrite(argc, argv);
    std::vector<const char*> arg_pointers;
    for (const std::string& arg : args) arg_pointers.push_back(arg.c_str());
    app.parse(static_cast<int>(arg_pointers.size()), arg_pointers.data());
  } catch (const CLI::ParseError& e) {
    app.exit(e);  // prints --help or the error
    return e.get_exit_code() == 0 ? kExitOk : kExitUsage;
  }

  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> credentials =
      ChannelCredentialsFor(global);
  if (!credentials.ok()) {
    ReportError(std::string(credentials.status().message()));
    return credentials.status().code() == absl::StatusCode::kInvalidArgument ? kExitUsage
                                                                             : kExitFileError;
  }
  Connection connection(global, *credentials);
  if (*health) return Health(connection);
  if (*submit) return Submit(connection, submit_options);
  if (*get) return GetJob(connection, job_id);
  if (*cancel) return CancelJob(connection, job_id);
  if (*watch) return Watch(connection, job_id, watch_every);
  if (*list) return ListJobs(connection, list_options);
  if (*score) return Score(connection, score_options);
  if (*sample) return Sample(connection, sample_options);
  if (*export_model) return Export(connection, export_options);
  if (*bench_score) return BenchScore(connection, bench_options);
  return kExitUsage;
}

}  // namespace
}  // namespace gan::ganctl

int main(int argc, char** argv) { return gan::ganctl::Run(argc, argv); }
