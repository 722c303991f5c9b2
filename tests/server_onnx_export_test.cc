// End-to-end proof of ExportModel: for every preset a real gan-server (build/bin/gan-server)
// trains a few steps on synthetic data, both networks are exported through the service (ganctl
// export for `seed`, the ExportModel stream directly for the others), ONNX Runtime runs them
// (tests/onnx/run_onnx.mjs under Node.js, onnxruntime-node from tests/onnx/package-lock.json) on
// the same inputs the service gets, and the answers must agree within 1e-4: the discriminator's
// probability and logit against gan.v1 Score, the generator's images against the inference
// protocol's "<job>-generator" model. The batches differ from the training batch, so the models'
// batch dimension is exercised as dynamic. Without Node.js or tests/onnx/node_modules the tests
// fail, saying to run `bash scripts/setup.sh --tests`; when set-up ran but npm could not reach its
// registry (it then leaves tests/onnx/npm-unavailable.txt), they skip and print why.

#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <ostream>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gan/v1/service.grpc.pb.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "inference/grpc_service.grpc.pb.h"
#include "nlohmann/json.hpp"
#include "tests/child_process.h"
#include "tests/test_jobs.h"
#include "tests/test_util.h"

namespace gan {
namespace {

using ::gan::testing::BinaryNextToTests;
using ::gan::testing::ChildOptions;
using ::gan::testing::ChildProcess;
using ::gan::testing::GanServer;
using ::gan::testing::MakeTempDir;
using ::gan::testing::StartGanServer;
using ::gan::testing::WaitStatusString;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr int64_t kChunkBytes = int64_t{1} << 20;
constexpr int64_t kOpset = 13;
constexpr double kTolerance = 1e-4;
constexpr int kSteps = 3;
constexpr int kImages = 5;     // discriminator batch (training used 8)
constexpr int kNoiseRows = 3;  // generator batch
constexpr char kSetupHint[] =
    "ONNX Runtime for Node.js is needed: run `bash scripts/setup.sh --tests` (it installs nodejs "
    "and npm and runs `npm ci --ignore-scripts` in tests/onnx)";

std::string OnnxDir() {
  return std::filesystem::weakly_canonical(gan::testing::TestDataPath("../onnx")).string();
}

// The path of `name` on PATH; empty when absent.
std::string FindOnPath(const std::string& name) {
  const char* path = std::getenv("PATH");
  if (path == nullptr) return "";
  for (const absl::string_view dir : absl::StrSplit(path, ':')) {
    if (dir.empty()) continue;
    const std::string candidate = absl::StrCat(dir, "/", name);
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

// Node.js and tests/onnx/node_modules/onnxruntime-node, or why they cannot be used.
absl::StatusOr<std::string> NodeBinary() {
  const std::string node = FindOnPath("node");
  if (node.empty())
    return absl::FailedPreconditionError(absl::StrCat("no `node` on PATH. ", kSetupHint));
  const std::string runtime = OnnxDir() + "/node_modules/onnxruntime-node/package.json";
  if (!std::filesystem::exists(runtime)) {
    return absl::FailedPreconditionError(absl::StrCat(runtime, " is missing. ", kSetupHint));
  }
  return node;
}

std::string RawFloats(const std::vector<float>& values) {
  std::string raw(values.size() * sizeof(float), '\0');
  std::memcpy(raw.data(), values.data(), raw.size());
  return raw;
}

std::vector<float> Floats(const std::string& raw) {
  std::vector<float> values(raw.size() / sizeof(float));
  std::memcpy(values.data(), raw.data(), values.size() * sizeof(float));
  return values;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream contents;
  contents << in.rdbuf();
  return contents.str();
}

void WriteFile(const std::string& path, const std::string& contents) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << contents;
  ASSERT_TRUE(out.good()) << path;
}

struct OrtResult {
  nlohmann::json summary;                             // run_onnx.mjs's JSON line
  std::map<std::string, std::vector<float>> outputs;  // by output name
};

// Runs `model` in ONNX Runtime on one float32 input.
absl::StatusOr<OrtResult> RunOnnxRuntime(const std::string& model, const std::string& input_name,
                                         const std::vector<float>& values,
                                         const std::vector<int64_t>& dims, const std::string& dir) {
  absl::StatusOr<std::string> node = NodeBinary();
  if (!node.ok()) return node.status();
  const std::string input_file = absl::StrCat(dir, "/", input_name, ".input.f32");
  {
    std::ofstream out(input_file, std::ios::binary | std::ios::trunc);
    out << RawFloats(values);
    if (!out.good()) return absl::InternalError(absl::StrCat("cannot write ", input_file));
  }
  std::vector<std::string> dim_text;
  for (int64_t d : dims) dim_text.push_back(absl::StrCat(d));
  ChildOptions options;
  options.capture_stderr = true;
  options.null_stdin = true;
  absl::StatusOr<std::unique_ptr<ChildProcess>> child = ChildProcess::Start(
      {*node, OnnxDir() + "/run_onnx.mjs", "--model", model, "--input",
       absl::StrCat(input_name, "=", input_file, ":", absl::StrJoin(dim_text, ",")), "--out", dir},
      options);
  if (!child.ok()) return child.status();
  absl::StatusOr<int> status = (*child)->Wait(absl::Now() + absl::Seconds(120));
  if (!status.ok()) return status.status();
  if (!WIFEXITED(*status) || WEXITSTATUS(*status) != 0) {
    return absl::InternalError(
        absl::StrCat("run_onnx.mjs ended with ", WaitStatusString(*status), ": ", (*child)->err()));
  }
  OrtResult result;
  result.summary = nlohmann::json::parse((*child)->out(), nullptr, /*allow_exceptions=*/false);
  if (result.summary.is_discarded() || !result.summary.contains("results")) {
    return absl::InternalError(absl::StrCat("run_onnx.mjs printed no result: ", (*child)->out()));
  }
  for (const auto& [name, output] : result.summary["results"].items()) {
    result.outputs[name] = Floats(ReadFile(output["file"].get<std::string>()));
  }
  return result;
}

// `n` values in [-1, 1] that differ from sample to sample.
std::vector<float> Wave(int64_t n, float frequency, float phase) {
  std::vector<float> values(n);
  for (int64_t i = 0; i < n; ++i) values[i] = std::sin(frequency * i + phase);
  return values;
}

struct PresetCase {
  std::string preset;
  bool through_ganctl;  // ganctl export instead of the RPC
};

void PrintTo(const PresetCase& c, std::ostream* os) {
  *os << c.preset << (c.through_ganctl ? " (ganctl)" : " (RPC)");
}

class OnnxExportEndToEndTest : public ::testing::TestWithParam<PresetCase> {
 protected:
  static void SetUpTestSuite() {
    const std::filesystem::path dir(gan::testing::MakeSuiteTempDir("OnnxExportEndToEndTest"));
    dir_ = new std::string(dir.string());
    absl::StatusOr<GanServer> server = StartGanServer({{"--data_dir", (dir / "data").string()},
                                                       {"--metrics_listen", ""},
                                                       {"--max_concurrent_jobs", "2"}},
                                                      absl::Seconds(30));
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = new GanServer(*std::move(server));
  }

  static void TearDownTestSuite() {
    if (server_ != nullptr) server_->process->Terminate(absl::Seconds(30)).IgnoreError();
    delete server_;
    server_ = nullptr;
    if (dir_ != nullptr) std::filesystem::remove_all(*dir_);
    delete dir_;
    dir_ = nullptr;
  }

  void SetUp() override {
    ASSERT_NE(server_, nullptr) << "gan-server did not start";
    channel_ = grpc::CreateChannel(server_->address(), grpc::InsecureChannelCredentials());
    training_ = gan::v1::TrainingService::NewStub(channel_);
    scoring_ = gan::v1::ScoringService::NewStub(channel_);
    inference_ = inference::GRPCInferenceService::NewStub(channel_);
  }

  static void SetDeadline(grpc::ClientContext* context, int seconds = 60) {
    context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(seconds));
  }

  gan::v1::Job Submit(const gan::v1::JobSpec& spec) {
    gan::v1::SubmitJobRequest request;
    *request.mutable_spec() = spec;
    gan::v1::Job job;
    grpc::ClientContext context;
    SetDeadline(&context);
    const grpc::Status status = training_->SubmitJob(&context, request, &job);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return job;
  }

  // Follows the job's metrics to its end; returns the final Job.
  gan::v1::Job WaitForEnd(const std::string& job_id) {
    grpc::ClientContext context;
    SetDeadline(&context, 300);
    gan::v1::StreamMetricsRequest request;
    request.set_job_id(job_id);
    auto reader = training_->StreamMetrics(&context, request);
    gan::v1::MetricEvent event;
    gan::v1::Job finished;
    while (reader->Read(&event)) {
      if (event.has_finished()) finished = event.finished();
    }
    const grpc::Status status = reader->Finish();
    EXPECT_TRUE(status.ok()) << status.error_message();
    return finished;
  }

  // The ExportModel stream's metadata and bytes, checking the chunking on the way.
  grpc::Status Export(const gan::v1::ExportModelRequest& request,
                      gan::v1::ExportModelMetadata* metadata, std::string* model,
                      int* messages = nullptr) {
    grpc::ClientContext context;
    SetDeadline(&context, 120);
    auto reader = training_->ExportModel(&context, request);
    gan::v1::ExportModelResponse response;
    int count = 0;
    while (reader->Read(&response)) {
      EXPECT_EQ(response.has_metadata(), count == 0) << "message " << count;
      if (count == 0) *metadata = response.metadata();
      EXPECT_LE(static_cast<int64_t>(response.data().size()), kChunkBytes);
      EXPECT_FALSE(response.data().empty()) << "message " << count;
      *model += response.data();
      ++count;
    }
    if (messages != nullptr) *messages = count;
    return reader->Finish();
  }

  static gan::v1::ExportModelRequest ExportRequest(const std::string& job_id,
                                                   gan::v1::ExportModelRequest::Model model,
                                                   int64_t step = 0) {
    gan::v1::ExportModelRequest request;
    request.set_job_id(job_id);
    request.set_model(model);
    request.set_checkpoint_step(step);
    return request;
  }

  // Writes the job's `model` ("generator" or "discriminator") to `path`, through ganctl or the RPC.
  void ExportTo(const gan::v1::Job& job, const std::string& model, bool through_ganctl,
                const std::string& path) {
    if (through_ganctl) {
      ChildOptions options;
      options.capture_stderr = true;
      options.null_stdin = true;
      options.check_executable = true;
      auto ganctl =
          ChildProcess::Start({BinaryNextToTests("ganctl"), "--server", server_->address(),
                               "export", job.job_id(), "--model", model, "--out", path},
                              options);
      ASSERT_TRUE(ganctl.ok()) << ganctl.status();
      absl::StatusOr<int> status = (*ganctl)->Wait(absl::Now() + absl::Seconds(120));
      ASSERT_TRUE(status.ok()) << status.status();
      ASSERT_EQ(*status, 0) << WaitStatusString(*status) << ": " << (*ganctl)->err();
      EXPECT_THAT((*ganctl)->out(),
                  HasSubstr(absl::StrCat(path, ": ", model, " of job ", job.job_id(), " at step ",
                                         job.latest_checkpoint_step(), ", ONNX opset 13")));
      return;
    }
    gan::v1::ExportModelMetadata metadata;
    std::string bytes;
    int messages = 0;
    const grpc::Status status =
        Export(ExportRequest(job.job_id(), model == "generator"
                                               ? gan::v1::ExportModelRequest::MODEL_GENERATOR
                                               : gan::v1::ExportModelRequest::MODEL_DISCRIMINATOR),
               &metadata, &bytes, &messages);
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(metadata.checkpoint_step(), job.latest_checkpoint_step());
    EXPECT_EQ(metadata.opset_version(), kOpset);
    EXPECT_EQ(metadata.total_bytes(), static_cast<int64_t>(bytes.size()));
    EXPECT_EQ(messages, (metadata.total_bytes() + kChunkBytes - 1) / kChunkBytes);
    WriteFile(path, bytes);
  }

  static GanServer* server_;
  static std::string* dir_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<gan::v1::TrainingService::Stub> training_;
  std::unique_ptr<gan::v1::ScoringService::Stub> scoring_;
  std::unique_ptr<inference::GRPCInferenceService::Stub> inference_;
};

GanServer* OnnxExportEndToEndTest::server_ = nullptr;
std::string* OnnxExportEndToEndTest::dir_ = nullptr;

TEST_P(OnnxExportEndToEndTest, OnnxRuntimeAgreesWithTheService) {
  if (const absl::StatusOr<std::string> node = NodeBinary(); !node.ok()) {
    const std::string unavailable = ReadFile(OnnxDir() + "/npm-unavailable.txt");
    if (!unavailable.empty()) {
      GTEST_SKIP() << "ONNX Runtime could not be installed on this machine, so the comparison is "
                      "skipped: "
                   << unavailable;
    }
    FAIL() << node.status();
  }
  const PresetCase& param = GetParam();
  gan::v1::JobSpec spec;
  spec.set_preset(param.preset);
  spec.set_dataset("synthetic");
  spec.set_batch_size(8);
  spec.set_steps(kSteps);
  spec.set_seed(11);
  const gan::v1::Job submitted = Submit(spec);
  ASSERT_FALSE(submitted.job_id().empty());
  const gan::v1::Job job = WaitForEnd(submitted.job_id());
  ASSERT_EQ(job.state(), gan::v1::JOB_STATE_SUCCEEDED) << job.error_message();
  ASSERT_EQ(job.latest_checkpoint_step(), kSteps);
  const std::string dir = MakeTempDir("onnx_" + param.preset);

  // Discriminator: ONNX Runtime and gan.v1 Score on the same float images.
  const std::string discriminator = dir + "/discriminator.onnx";
  ExportTo(job, "discriminator", param.through_ganctl, discriminator);
  const std::vector<float> images = Wave(kImages * 28 * 28, 0.37f, 0.5f);
  GAN_ASSERT_OK_AND_ASSIGN(
      OrtResult scored, RunOnnxRuntime(discriminator, "images", images, {kImages, 28, 28, 1}, dir));
  EXPECT_EQ(scored.summary["inputs"], nlohmann::json::array({"images"}));
  EXPECT_EQ(scored.summary["outputs"], nlohmann::json::array({"probability", "logit"}));
  EXPECT_EQ(scored.summary["results"]["logit"]["dims"], nlohmann::json::array({kImages, 1}));
  gan::v1::ScoreRequest score;
  score.set_job_id(job.job_id());
  for (int64_t d : {int64_t{kImages}, int64_t{28}, int64_t{28}, int64_t{1}}) score.add_shape(d);
  score.set_float_pixels(RawFloats(images));
  gan::v1::ScoreResponse expected;
  {
    grpc::ClientContext context;
    SetDeadline(&context);
    const grpc::Status status = scoring_->Score(&context, score, &expected);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }
  ASSERT_EQ(expected.checkpoint_step(), kSteps);
  gan::testing::ExpectAllClose(param.preset + " logit", scored.outputs["logit"],
                               {expected.logits().begin(), expected.logits().end()}, kTolerance, 0);
  gan::testing::ExpectAllClose(param.preset + " probability", scored.outputs["probability"],
                               {expected.probabilities().begin(), expected.probabilities().end()},
                               kTolerance, 0);

  // Generator: ONNX Runtime and the inference protocol's generator model on the same noise.
  const std::string generator = dir + "/generator.onnx";
  ExportTo(job, "generator", param.through_ganctl, generator);
  const std::vector<float> noise = Wave(kNoiseRows * 100, 0.71f, 0.2f);
  GAN_ASSERT_OK_AND_ASSIGN(OrtResult generated,
                           RunOnnxRuntime(generator, "noise", noise, {kNoiseRows, 100}, dir));
  EXPECT_EQ(generated.summary["inputs"], nlohmann::json::array({"noise"}));
  EXPECT_EQ(generated.summary["outputs"], nlohmann::json::array({"images"}));
  EXPECT_EQ(generated.summary["results"]["images"]["dims"],
            nlohmann::json::array({kNoiseRows, 28, 28, 1}));
  inference::ModelInferRequest infer;
  infer.set_model_name(job.job_id() + "-generator");
  auto* input = infer.add_inputs();
  input->set_name("noise");
  input->set_datatype("FP32");
  input->add_shape(kNoiseRows);
  input->add_shape(100);
  infer.add_raw_input_contents(RawFloats(noise));
  inference::ModelInferResponse inferred;
  {
    grpc::ClientContext context;
    SetDeadline(&context);
    const grpc::Status status = inference_->ModelInfer(&context, infer, &inferred);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }
  ASSERT_EQ(inferred.outputs_size(), 1);
  ASSERT_EQ(inferred.outputs(0).name(), "images");
  EXPECT_THAT(inferred.outputs(0).shape(), ElementsAre(kNoiseRows, 28, 28, 1));
  ASSERT_EQ(inferred.raw_output_contents_size(), 1);
  gan::testing::ExpectAllClose(param.preset + " images", generated.outputs["images"],
                               Floats(inferred.raw_output_contents(0)), kTolerance, 0);
}

INSTANTIATE_TEST_SUITE_P(Presets, OnnxExportEndToEndTest,
                         ::testing::Values(PresetCase{"seed", true},
                                           PresetCase{"seed-dcgan", false},
                                           PresetCase{"tf-dcgan", false}),
                         [](const ::testing::TestParamInfo<PresetCase>& info) {
                           std::string name = info.param.preset;
                           for (char& c : name) {
                             if (c == '-') c = '_';
                           }
                           return name;
                         });

TEST_F(OnnxExportEndToEndTest, BadRequestsNameTheFieldAndChangeNothing) {
  const gan::v1::Job job = WaitForEnd(Submit(testing::TinyJob(2)).job_id());
  ASSERT_EQ(job.state(), gan::v1::JOB_STATE_SUCCEEDED);
  gan::v1::ExportModelMetadata metadata;
  std::string bytes;
  const auto kGenerator = gan::v1::ExportModelRequest::MODEL_GENERATOR;

  grpc::Status status = Export(ExportRequest("", kGenerator), &metadata, &bytes);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("job_id"));
  status = Export(ExportRequest(job.job_id(), gan::v1::ExportModelRequest::MODEL_UNSPECIFIED),
                  &metadata, &bytes);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("model"));
  status = Export(ExportRequest(job.job_id(), kGenerator, -1), &metadata, &bytes);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("checkpoint_step"));
  status = Export(ExportRequest("no-such-job", kGenerator), &metadata, &bytes);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  status = Export(ExportRequest(job.job_id(), kGenerator, 999), &metadata, &bytes);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(status.error_message(), HasSubstr("checkpoint_step"));
  EXPECT_TRUE(bytes.empty());

  // A chosen checkpoint (step 2 of 2) exports like the latest, byte for byte.
  std::string latest, chosen;
  ASSERT_TRUE(Export(ExportRequest(job.job_id(), kGenerator), &metadata, &latest).ok());
  EXPECT_EQ(metadata.checkpoint_step(), 2);
  EXPECT_EQ(metadata.model(), kGenerator);
  ASSERT_TRUE(Export(ExportRequest(job.job_id(), kGenerator, 2), &metadata, &chosen).ok());
  EXPECT_EQ(latest, chosen);

  // A running job without a checkpoint yet: FAILED_PRECONDITION.
  const gan::v1::Job running = Submit(testing::LongJob());
  bytes.clear();
  status = Export(ExportRequest(running.job_id(), kGenerator), &metadata, &bytes);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << status.error_message();
  EXPECT_THAT(status.error_message(), HasSubstr("no checkpoint"));
  gan::v1::CancelJobRequest cancel;
  cancel.set_job_id(running.job_id());
  gan::v1::Job cancelled;
  grpc::ClientContext context;
  SetDeadline(&context);
  EXPECT_TRUE(training_->CancelJob(&context, cancel, &cancelled).ok());
  EXPECT_EQ(WaitForEnd(running.job_id()).state(), gan::v1::JOB_STATE_CANCELLED);
}

}  // namespace
}  // namespace gan
