#ifndef GAN_CLIENT_COMMANDS_COMMANDS_H_
#define GAN_CLIENT_COMMANDS_COMMANDS_H_

// ganctl's commands, one function each. A command makes its calls on `connection`, prints its
// result on stdout (protobuf JSON with --json), prints errors on stderr as one line
// "ganctl: ...", and returns the process's exit code (client/output.h).

#include <cstdint>
#include <string>
#include <vector>

#include "client/connection.h"

namespace gan::ganctl {

// `submit`: what the command line sets in the JobSpec; zero or empty means "not given".
struct SubmitOptions {
  std::string preset = "seed";  // used when spec_file is empty
  std::string spec_file;        // a JobSpec in protobuf JSON or text format
  int64_t steps = 0;
  int64_t epochs = 0;
  std::string dataset;
  int batch = 0;
  uint64_t seed = 0;
  std::string hidden_activation;  // leaky_relu (alpha 0.2), relu, tanh or sigmoid
  std::string request_id;         // idempotency key
  std::string init_from;          // "JOB" or "JOB@STEP": start from that job's checkpoint
  bool init_optimizer = false;    // with init_from: also its Adam state
  bool pytorch_defaults = false;  // PyTorch's initialization, BatchNorm and Adam defaults
  bool watch = false;             // follow the job after printing its id
};

// Creates a job and prints its id alone (the Job with --json); with `watch`, then runs Watch.
// Exit codes: 4 for an unreadable or unparsable spec file, 2 for an unknown hidden activation.
int Submit(Connection& connection, const SubmitOptions& options);

// `get` / `cancel`: prints the job (after cancelling it).
int GetJob(Connection& connection, const std::string& job_id);
int CancelJob(Connection& connection, const std::string& job_id);

// `list`: one page of jobs, newest first.
struct ListOptions {
  std::string state;  // empty: every state; else queued, running, succeeded, failed or cancelled
  int page_size = 20;
  std::string page_token;
};

// Prints "<id>  <STATE>  <step>/<total>" per job and "next page: --page_token T" when more
// remain (the ListJobsResponse with --json). Exit code 2 for an unknown state.
int ListJobs(Connection& connection, const ListOptions& options);

// `watch`: follows the job's metrics until it ends, printing a column header and a row per metric
// event (on a terminal, one live row that each event rewrites), or with every > 0 rows that stay
// for the first event, at each multiple of `every` steps and at the last step; "resumed from step
// N" markers (not on a terminal) and "job <id> <STATE> at step N[: error]" at the end; with --json,
// each StepMetrics and the final Job. A dropped stream is reopened with backoff (0.5 s doubling to
// 8 s) from the step after the last one printed, so every step is printed once. Returns 0 when the
// job SUCCEEDED, 3 when it ended otherwise, 1 when the job cannot be read or the stream is refused
// (NOT_FOUND, INVALID_ARGUMENT).
int Watch(Connection& connection, const std::string& job_id, int64_t every = 0);

// `score`: the probabilities that a job's discriminator gives images.
struct ScoreOptions {
  std::string job_id;
  std::vector<std::string> files;  // see LoadImages (client/image_files.h)
  int64_t checkpoint_step = 0;     // 0: the latest
  int height = 28;                 // the model's image shape
  int width = 28;
  int channels = 1;
  int64_t first = 0;     // > 0: only the first N images of each IDX or raw file
  bool summary = false;  // one line per file (count, mean, min, max) instead of one per image
};

// Prints "<image name>\t<probability>" per image (the ScoreResponse with --json). Exit code 2 for
// a shape that is not positive or exceeds 2^30 bytes per image, 4 for an unusable file.
int Score(Connection& connection, const ScoreOptions& options);

// `sample`: images drawn by a job's generator, written as one PNG grid.
struct SampleOptions {
  std::string job_id;
  int count = 64;
  uint64_t seed = 0;
  int64_t checkpoint_step = 0;  // 0: the latest
  int columns = 8;
  std::string out = "samples.png";
};

// Writes the grid atomically to `out` and prints its path. Exit code 4 when it cannot be written.
int Sample(Connection& connection, const SampleOptions& options);

// `export`: a job's generator or discriminator as an ONNX model file.
struct ExportOptions {
  std::string job_id;
  std::string model;            // generator or discriminator
  int64_t checkpoint_step = 0;  // 0: the latest
  std::string out;              // the .onnx file
};

// Streams the model (ExportModel), checks that it has the size its first message announced,
// writes it atomically to `out` and prints "<out>: <model> of job <id> at step N, ONNX opset O,
// B bytes" (the ExportModelMetadata with --json). Exit code 4 when it cannot be written.
int Export(Connection& connection, const ExportOptions& options);

// `health`: prints the server's serving status; exit code 0 only for SERVING.
int Health(Connection& connection);

// `bench score`: a closed-loop load test of scoring.
struct BenchOptions {
  std::string job_id;
  int64_t checkpoint_step = 0;  // 0: the latest
  int concurrency = 8;          // client threads, each with its own connection, one call at a time
  double duration_seconds = 10;
  int64_t images_per_request = 1;
  std::string protocol = "gan";  // gan: gan.v1 Score; oip: the Open Inference Protocol ModelInfer
  int height = 28;               // the model's image shape (random uint8 pixels are sent)
  int width = 28;
  int channels = 1;
};

// After one warm-up call, sends requests back to back from every thread for the duration and
// prints requests/s, images/s and the latency p50/p90/p99/max of successful calls (one JSON
// object with --json); errors are counted by code. Exit code 1 when the warm-up fails or every
// request failed, 2 for bad options.
int BenchScore(Connection& connection, const BenchOptions& options);

}  // namespace gan::ganctl

#endif  // GAN_CLIENT_COMMANDS_COMMANDS_H_
