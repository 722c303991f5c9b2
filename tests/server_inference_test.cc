// The Open Inference Protocol (inference.GRPCInferenceService, server/inference_service.h) served
// by an in-process Server, driven by a client written from the specification: health and
// metadata, ModelInfer on the discriminator equal to gan.v1 Score for the same images (raw and
// typed contents, UINT8 and FP32), the generator run on the client's noise, and bad tensors
// refused with INVALID_ARGUMENT naming the tensor.

#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gan/v1/service.grpc.pb.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "inference/grpc_service.grpc.pb.h"
#include "server/server.h"
#include "tests/test_jobs.h"
#include "tests/test_util.h"

namespace gan::server {
namespace {

using ::gan::testing::TinyJob;
using ::inference::GRPCInferenceService;
using ::inference::ModelInferRequest;
using ::inference::ModelInferResponse;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr int kSteps = 12;  // checkpoints at 5, 10 and 12

std::string RandomPixels(int64_t n, uint64_t seed) {
  std::string bytes(n * 784, '\0');
  uint64_t x = seed;
  for (char& b : bytes) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    b = static_cast<char>(x >> 56);
  }
  return bytes;
}

std::vector<float> Floats(const std::string& raw) {
  std::vector<float> values(raw.size() / 4);
  std::memcpy(values.data(), raw.data(), values.size() * 4);  // x86-64: little-endian
  return values;
}

std::string RawFloats(const std::vector<float>& values) {
  std::string raw(values.size() * 4, '\0');
  std::memcpy(raw.data(), values.data(), raw.size());
  return raw;
}

// The one shared server: a TinyJob trained once for every test.
class InferenceServiceTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    Options options;
    options.listen = "127.0.0.1:0";
    options.metrics_listen = "";
    const std::filesystem::path dir(gan::testing::MakeSuiteTempDir("InferenceServiceTest"));
    dir_ = new std::string(dir.string());
    options.data_dir = (dir / "data").string();
    options.default_dataset = "synthetic";
    options.threads_per_job = 1;
    options.checkpoint_every = 5;
    options.max_score_batch = 32;
    options.max_sample_count = 16;
    auto server = Server::BuildAndStart(options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = server->release();
    channel_ = new std::shared_ptr<grpc::Channel>(grpc::CreateChannel(
        absl::StrCat("127.0.0.1:", server_->port()), grpc::InsecureChannelCredentials()));
    auto training = gan::v1::TrainingService::NewStub(*channel_);
    gan::v1::SubmitJobRequest submit;
    *submit.mutable_spec() = TinyJob(kSteps);
    gan::v1::Job job;
    {
      grpc::ClientContext context;
      ASSERT_TRUE(training->SubmitJob(&context, submit, &job).ok());
    }
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
    gan::v1::StreamMetricsRequest stream;
    stream.set_job_id(job.job_id());
    auto reader = training->StreamMetrics(&context, stream);
    gan::v1::MetricEvent event;
    while (reader->Read(&event)) {
    }
    ASSERT_TRUE(reader->Finish().ok());
    job_id_ = new std::string(job.job_id());
  }

  static void TearDownTestSuite() {
    delete channel_;
    delete server_;
    delete job_id_;
    if (dir_ != nullptr) std::filesystem::remove_all(*dir_);
    delete dir_;
  }

  void SetUp() override {
    ASSERT_NE(server_, nullptr);
    stub_ = GRPCInferenceService::NewStub(*channel_);
    scoring_ = gan::v1::ScoringService::NewStub(*channel_);
  }

  static void SetDeadline(grpc::ClientContext* context) {
    context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  }

  grpc::Status Infer(const ModelInferRequest& request, ModelInferResponse* response) {
    grpc::ClientContext context;
    SetDeadline(&context);
    return stub_->ModelInfer(&context, request, response);
  }

  // A discriminator request for n images as raw UINT8.
  ModelInferRequest ImagesRequest(const std::string& pixels) {
    ModelInferRequest request;
    request.set_model_name(*job_id_);
    auto* input = request.add_inputs();
    input->set_name("images");
    input->set_datatype("UINT8");
    for (int64_t d :
         {static_cast<int64_t>(pixels.size() / 784), int64_t{28}, int64_t{28}, int64_t{1}}) {
      input->add_shape(d);
    }
    request.add_raw_input_contents(pixels);
    return request;
  }

  gan::v1::ScoreResponse ScoreV1(const std::string& pixels) {
    gan::v1::ScoreRequest request;
    request.set_job_id(*job_id_);
    for (int64_t d :
         {static_cast<int64_t>(pixels.size() / 784), int64_t{28}, int64_t{28}, int64_t{1}}) {
      request.add_shape(d);
    }
    request.set_uint8_pixels(pixels);
    gan::v1::ScoreResponse response;
    grpc::ClientContext context;
    SetDeadline(&context);
    EXPECT_TRUE(scoring_->Score(&context, request, &response).ok());
    return response;
  }

  // The raw FP32 output `name` of a response.
  static std::vector<float> Output(const ModelInferResponse& response, const std::string& name) {
    for (int i = 0; i < response.outputs_size(); ++i) {
      if (response.outputs(i).name() == name) {
        EXPECT_EQ(response.outputs(i).datatype(), "FP32");
        EXPECT_EQ(response.raw_output_contents_size(), response.outputs_size());
        return Floats(response.raw_output_contents(i));
      }
    }
    ADD_FAILURE() << "no output " << name;
    return {};
  }

  static Server* server_;
  static std::shared_ptr<grpc::Channel>* channel_;
  static std::string* job_id_;
  static std::string* dir_;
  std::unique_ptr<GRPCInferenceService::Stub> stub_;
  std::unique_ptr<gan::v1::ScoringService::Stub> scoring_;
};

Server* InferenceServiceTest::server_ = nullptr;
std::shared_ptr<grpc::Channel>* InferenceServiceTest::channel_ = nullptr;
std::string* InferenceServiceTest::job_id_ = nullptr;
std::string* InferenceServiceTest::dir_ = nullptr;

TEST_F(InferenceServiceTest, HealthAndServerMetadata) {
  {
    grpc::ClientContext context;
    SetDeadline(&context);
    inference::ServerLiveResponse live;
    ASSERT_TRUE(stub_->ServerLive(&context, {}, &live).ok());
    EXPECT_TRUE(live.live());
  }
  {
    grpc::ClientContext context;
    SetDeadline(&context);
    inference::ServerReadyResponse ready;
    ASSERT_TRUE(stub_->ServerReady(&context, {}, &ready).ok());
    EXPECT_TRUE(ready.ready());
  }
  grpc::ClientContext context;
  SetDeadline(&context);
  inference::ServerMetadataResponse metadata;
  ASSERT_TRUE(stub_->ServerMetadata(&context, {}, &metadata).ok());
  EXPECT_EQ(metadata.name(), "gan-server");
}

TEST_F(InferenceServiceTest, ModelReadyForBothModelsAndKnownVersionsOnly) {
  auto ready = [&](const std::string& name, const std::string& version, bool* is_ready) {
    grpc::ClientContext context;
    SetDeadline(&context);
    inference::ModelReadyRequest request;
    request.set_name(name);
    request.set_version(version);
    inference::ModelReadyResponse response;
    const grpc::Status status = stub_->ModelReady(&context, request, &response);
    *is_ready = response.ready();
    return status;
  };
  bool is_ready = false;
  ASSERT_TRUE(ready(*job_id_, "", &is_ready).ok());
  EXPECT_TRUE(is_ready);
  ASSERT_TRUE(ready(*job_id_ + "-generator", "", &is_ready).ok());
  EXPECT_TRUE(is_ready);
  ASSERT_TRUE(ready(*job_id_, "10", &is_ready).ok());
  EXPECT_TRUE(is_ready);
  ASSERT_TRUE(ready(*job_id_, "7", &is_ready).ok());
  EXPECT_FALSE(is_ready);
  EXPECT_EQ(ready("job-0000000000000000", "", &is_ready).error_code(), grpc::StatusCode::NOT_FOUND);
  const grpc::Status bad = ready(*job_id_, "v1", &is_ready);
  EXPECT_EQ(bad.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(bad.error_message(), HasSubstr("version"));
}

TEST_F(InferenceServiceTest, ModelMetadataDescribesTensorsAndVersions) {
  grpc::ClientContext context;
  SetDeadline(&context);
  inference::ModelMetadataRequest request;
  request.set_name(*job_id_);
  inference::ModelMetadataResponse metadata;
  ASSERT_TRUE(stub_->ModelMetadata(&context, request, &metadata).ok());
  EXPECT_EQ(metadata.name(), *job_id_);
  EXPECT_THAT(metadata.versions(), ElementsAre("5", "10", "12"));
  ASSERT_EQ(metadata.inputs_size(), 1);
  EXPECT_EQ(metadata.inputs(0).name(), "images");
  EXPECT_THAT(metadata.inputs(0).shape(), ElementsAre(-1, 28, 28, 1));
  ASSERT_EQ(metadata.outputs_size(), 2);
  EXPECT_EQ(metadata.outputs(0).name(), "probability");
  EXPECT_EQ(metadata.outputs(1).name(), "logit");
  EXPECT_THAT(metadata.outputs(1).shape(), ElementsAre(-1, 1));

  grpc::ClientContext generator_context;
  SetDeadline(&generator_context);
  request.set_name(*job_id_ + "-generator");
  ASSERT_TRUE(stub_->ModelMetadata(&generator_context, request, &metadata).ok());
  ASSERT_EQ(metadata.inputs_size(), 1);
  EXPECT_EQ(metadata.inputs(0).name(), "noise");
  EXPECT_THAT(metadata.inputs(0).shape(), ElementsAre(-1, 16));
  ASSERT_EQ(metadata.outputs_size(), 1);
  EXPECT_THAT(metadata.outputs(0).shape(), ElementsAre(-1, 28, 28, 1));
}

TEST_F(InferenceServiceTest, ModelInferEqualsScoreForTheSameImages) {
  const std::string pixels = RandomPixels(5, 7);
  const gan::v1::ScoreResponse expected = ScoreV1(pixels);
  ASSERT_EQ(expected.probabilities_size(), 5);

  // Raw UINT8.
  ModelInferRequest request = ImagesRequest(pixels);
  request.set_id("request-42");
  ModelInferResponse response;
  ASSERT_TRUE(Infer(request, &response).ok());
  EXPECT_EQ(response.id(), "request-42");
  EXPECT_EQ(response.model_name(), *job_id_);
  EXPECT_EQ(response.model_version(), absl::StrCat(kSteps));
  ASSERT_EQ(response.outputs_size(), 2);
  EXPECT_THAT(response.outputs(0).shape(), ElementsAre(5, 1));
  gan::testing::ExpectAllClose("probability", Output(response, "probability"),
                               {expected.probabilities().begin(), expected.probabilities().end()},
                               1e-6, 0);
  gan::testing::ExpectAllClose("logit", Output(response, "logit"),
                               {expected.logits().begin(), expected.logits().end()}, 1e-6, 0);

  // Typed UINT8 contents, and only the logit asked for.
  ModelInferRequest typed = ImagesRequest(pixels);
  typed.clear_raw_input_contents();
  for (char c : pixels) {
    typed.mutable_inputs(0)->mutable_contents()->add_uint_contents(static_cast<uint8_t>(c));
  }
  typed.add_outputs()->set_name("logit");
  ModelInferResponse typed_response;
  ASSERT_TRUE(Infer(typed, &typed_response).ok());
  ASSERT_EQ(typed_response.outputs_size(), 1);
  gan::testing::ExpectAllClose("logit (typed)", Output(typed_response, "logit"),
                               {expected.logits().begin(), expected.logits().end()}, 1e-6, 0);

  // FP32 in [-1, 1], raw and typed, and an older version by its step.
  std::vector<float> values(pixels.size());
  for (size_t i = 0; i < pixels.size(); ++i) {
    values[i] = static_cast<uint8_t>(pixels[i]) / 127.5f - 1.0f;
  }
  ModelInferRequest fp32 = ImagesRequest(pixels);
  fp32.mutable_inputs(0)->set_datatype("FP32");
  fp32.set_raw_input_contents(0, RawFloats(values));
  ModelInferResponse fp32_response;
  ASSERT_TRUE(Infer(fp32, &fp32_response).ok());
  gan::testing::ExpectAllClose("probability (FP32)", Output(fp32_response, "probability"),
                               {expected.probabilities().begin(), expected.probabilities().end()},
                               1e-6, 0);
  fp32.clear_raw_input_contents();
  for (float v : values) fp32.mutable_inputs(0)->mutable_contents()->add_fp32_contents(v);
  fp32.set_model_version("5");
  ASSERT_TRUE(Infer(fp32, &fp32_response).ok());
  EXPECT_EQ(fp32_response.model_version(), "5");
  EXPECT_EQ(Output(fp32_response, "probability").size(), 5u);
}

TEST_F(InferenceServiceTest, GeneratorRunsOnTheClientsNoise) {
  std::vector<float> noise(3 * 16);
  for (size_t i = 0; i < noise.size(); ++i) noise[i] = std::sin(0.7f * i);
  ModelInferRequest request;
  request.set_model_name(*job_id_ + "-generator");
  auto* input = request.add_inputs();
  input->set_name("noise");
  input->set_datatype("FP32");
  input->add_shape(3);
  input->add_shape(16);
  request.add_raw_input_contents(RawFloats(noise));
  ModelInferResponse response;
  ASSERT_TRUE(Infer(request, &response).ok());
  ASSERT_EQ(response.outputs_size(), 1);
  EXPECT_EQ(response.outputs(0).name(), "images");
  EXPECT_THAT(response.outputs(0).shape(), ElementsAre(3, 28, 28, 1));
  const std::vector<float> images = Output(response, "images");
  ASSERT_EQ(images.size(), 3u * 784);
  for (float v : images) {
    ASSERT_GE(v, -1.0f);
    ASSERT_LE(v, 1.0f);
  }
  // Image i depends only on noise row i: the second row alone gives the second image.
  ModelInferRequest one = request;
  one.mutable_inputs(0)->set_shape(0, 1);
  one.set_raw_input_contents(0,
                             RawFloats(std::vector<float>(noise.begin() + 16, noise.begin() + 32)));
  ModelInferResponse one_response;
  ASSERT_TRUE(Infer(one, &one_response).ok());
  gan::testing::ExpectAllClose("second image", Output(one_response, "images"),
                               std::vector<float>(images.begin() + 784, images.begin() + 2 * 784),
                               1e-6, 0);
  // Different noise, different images.
  EXPECT_NE(std::vector<float>(images.begin(), images.begin() + 784),
            std::vector<float>(images.begin() + 784, images.begin() + 2 * 784));
}

TEST_F(InferenceServiceTest, BadTensorsAreInvalidArgumentNamingTheTensor) {
  const ModelInferRequest valid = ImagesRequest(RandomPixels(2, 3));
  ModelInferResponse response;
  ASSERT_TRUE(Infer(valid, &response).ok());

  struct Case {
    std::string name;
    std::function<void(ModelInferRequest*)> mutate;
    std::string message;
  };
  auto shape = [](std::vector<int64_t> dims) {
    return [dims](ModelInferRequest* r) {
      r->mutable_inputs(0)->clear_shape();
      for (int64_t d : dims) r->mutable_inputs(0)->add_shape(d);
    };
  };
  const std::vector<Case> cases = {
      {"no model", [](ModelInferRequest* r) { r->clear_model_name(); }, "model_name: required"},
      {"bad version", [](ModelInferRequest* r) { r->set_model_version("latest"); },
       "model_version: 'latest' is not a checkpoint step"},
      {"no inputs", [](ModelInferRequest* r) { r->clear_inputs(); },
       "inputs: the model takes one input, 'images'; got 0"},
      {"wrong name", [](ModelInferRequest* r) { r->mutable_inputs(0)->set_name("pixels"); },
       "inputs: unknown input 'pixels'"},
      {"wrong datatype", [](ModelInferRequest* r) { r->mutable_inputs(0)->set_datatype("INT8"); },
       "images: datatype 'INT8' is not supported (UINT8 or FP32)"},
      {"rank 3", shape({2, 28, 28}), "images: shape [2, 28, 28] has 3 dimensions; expected 4"},
      {"variable dim", shape({-1, 28, 28, 1}), "images: shape [-1, 28, 28, 1]: every dimension"},
      {"overflow", shape({int64_t{1} << 40, int64_t{1} << 40, 1, 1}),
       "images: shape [1099511627776, 1099511627776, 1, 1]: element count overflows"},
      {"over the limit", shape({33, 28, 28, 1}),
       "images: shape [33, 28, 28, 1]: N 33 exceeds "
       "--max_score_batch 32"},
      {"short payload", [](ModelInferRequest* r) { r->set_raw_input_contents(0, "abc"); },
       "images: 3 bytes in raw_input_contents for UINT8 shape [2, 28, 28, 1], which needs 1568"},
      {"FP32 size of UINT8",
       [](ModelInferRequest* r) { r->mutable_inputs(0)->set_datatype("FP32"); },
       "images: 1568 bytes in raw_input_contents for FP32 shape [2, 28, 28, 1], which needs 6272"},
      {"raw and typed",
       [](ModelInferRequest* r) { r->mutable_inputs(0)->mutable_contents()->add_uint_contents(1); },
       "images: set raw_input_contents or contents, not both"},
      {"two raw entries", [](ModelInferRequest* r) { r->add_raw_input_contents("x"); },
       "raw_input_contents: 2 entries for 1 input(s)"},
      {"wrong image size", shape({1, 32, 32, 1}), "images:"},
      {"unknown output", [](ModelInferRequest* r) { r->add_outputs()->set_name("score"); },
       "outputs: unknown output 'score'"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    ModelInferRequest request = valid;
    c.mutate(&request);
    const grpc::Status status = Infer(request, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
    EXPECT_THAT(status.error_message(), HasSubstr(c.message));
  }

  // Checked against the model once it is loaded: the image shape, the values.
  ModelInferRequest wrong_size = valid;
  wrong_size.mutable_inputs(0)->set_shape(1, 32);
  wrong_size.mutable_inputs(0)->set_shape(2, 32);
  wrong_size.set_raw_input_contents(0, std::string(2 * 32 * 32, '\0'));
  grpc::Status status = Infer(wrong_size, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(),
              HasSubstr("images: shape [2, 32, 32, 1] does not match the model's [-1, 28, 28, 1]"));

  ModelInferRequest out_of_range = valid;
  out_of_range.mutable_inputs(0)->set_datatype("FP32");
  std::vector<float> values(2 * 784, 0.0f);
  values[9] = 1.5f;
  out_of_range.set_raw_input_contents(0, RawFloats(values));
  status = Infer(out_of_range, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("images: value 1.5 at index 9 is outside [-1, 1]"));

  ModelInferRequest typed_over = valid;
  typed_over.clear_raw_input_contents();
  for (int i = 0; i < 2 * 784; ++i) {
    typed_over.mutable_inputs(0)->mutable_contents()->add_uint_contents(i == 4 ? 256 : 0);
  }
  status = Infer(typed_over, &response);
  EXPECT_THAT(status.error_message(), HasSubstr("images: value 256 at index 4 is outside 0..255"));

  // The generator's noise.
  ModelInferRequest noise;
  noise.set_model_name(*job_id_ + "-generator");
  auto* input = noise.add_inputs();
  input->set_name("noise");
  input->set_datatype("FP32");
  input->add_shape(2);
  input->add_shape(8);
  noise.add_raw_input_contents(RawFloats(std::vector<float>(16, 0.5f)));
  status = Infer(noise, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("noise: shape [2, 8] does not match the model's "
                                                "[-1, 16]"));
  input->set_datatype("UINT8");
  status = Infer(noise, &response);
  EXPECT_THAT(status.error_message(), HasSubstr("noise: datatype 'UINT8' is not supported (FP32)"));
  input->set_datatype("FP32");
  input->set_shape(0, 17);
  status = Infer(noise, &response);
  EXPECT_THAT(status.error_message(), HasSubstr("--max_sample_count 16"));

  // Unknown models and versions.
  ModelInferRequest unknown = valid;
  unknown.set_model_name("job-0000000000000000");
  EXPECT_EQ(Infer(unknown, &response).error_code(), grpc::StatusCode::NOT_FOUND);
  ModelInferRequest old = valid;
  old.set_model_version("7");
  status = Infer(old, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(status.error_message(), HasSubstr("model_version"));
}

}  // namespace
}  // namespace gan::server
