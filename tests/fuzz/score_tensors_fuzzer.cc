// Client image and noise tensors: the input parsed as a gan.v1.ScoreRequest through
// DecodeScoreImages, and the same bytes parsed as an inference.ModelInferRequest through
// InferImages / InferNoise (Check, then Decode) and RequestedOutputs, with the server's default
// --max_score_batch and --max_sample_count. Each is checked against the default 28x28x1 model and,
// so that small inputs reach the decoding, against a model of the request's own shape when that
// is at most 64x64x4 (noise: a row length of at most 1024).

#include <cstddef>
#include <cstdint>
#include <vector>

#include "gan/v1/service.pb.h"
#include "inference/grpc_service.pb.h"
#include "server/inference_tensors.h"
#include "server/score_request.h"
#include "server/server.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

const gan::server::Options& DefaultOptions() {
  static const gan::server::Options options;
  return options;
}

bool SmallImageShape(const google::protobuf::RepeatedField<int64_t>& shape) {
  return shape.size() == 4 && shape[1] >= 1 && shape[1] <= 64 && shape[2] >= 1 &&
         shape[2] <= 64 && shape[3] >= 1 && shape[3] <= 4;
}

void Score(const gan::v1::ScoreRequest& request) {
  const int64_t max_images = DefaultOptions().max_score_batch;
  (void)gan::server::DecodeScoreImages(request, max_images, 28, 28, 1);
  if (SmallImageShape(request.shape())) {
    const auto& s = request.shape();
    absl::StatusOr<std::vector<float>> images = gan::server::DecodeScoreImages(
        request, max_images, static_cast<int>(s[1]), static_cast<int>(s[2]),
        static_cast<int>(s[3]));
    if (images.ok()) {
      for (float v : *images) {
        if (!(v >= -1.0f && v <= 1.0f)) __builtin_trap();
      }
    }
  }
}

void DecodeImages(const gan::server::ImageTensor& tensor, int height, int width, int channels) {
  if (!tensor.Check(height, width, channels).ok()) return;
  std::vector<float> nchw(static_cast<size_t>(tensor.images()) * height * width * channels);
  if (tensor.Decode(absl::MakeSpan(nchw)).ok()) {
    for (float v : nchw) {
      if (!(v >= -1.0f && v <= 1.0f)) __builtin_trap();
    }
  }
}

void Infer(const inference::ModelInferRequest& request) {
  (void)gan::server::RequestedOutputs(request, {gan::server::kProbabilityTensor,
                                                gan::server::kLogitTensor});
  (void)gan::server::RequestedOutputs(request, {gan::server::kImagesTensor});

  absl::StatusOr<std::unique_ptr<gan::server::ImageTensor>> images = gan::server::InferImages(
      request, DefaultOptions().max_score_batch, "--max_score_batch");
  if (images.ok()) {
    DecodeImages(**images, 28, 28, 1);
    const auto& s = request.inputs(0).shape();
    if (SmallImageShape(s)) {
      DecodeImages(**images, static_cast<int>(s[1]), static_cast<int>(s[2]),
                   static_cast<int>(s[3]));
    }
  }

  absl::StatusOr<std::unique_ptr<gan::server::NoiseTensor>> noise = gan::server::InferNoise(
      request, DefaultOptions().max_sample_count, "--max_sample_count");
  if (noise.ok()) {
    std::vector<int64_t> dims = {100};
    const auto& s = request.inputs(0).shape();
    if (s.size() == 2 && s[1] >= 1 && s[1] <= 1024 && s[1] != 100) dims.push_back(s[1]);
    for (int64_t dim : dims) {
      if (!(*noise)->Check(dim).ok()) continue;
      std::vector<float> out(static_cast<size_t>((*noise)->rows() * dim));
      (void)(*noise)->Decode(absl::MakeSpan(out));
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const bool quiet = gan::fuzz::SilenceProtobufLogs();
  (void)quiet;
  gan::v1::ScoreRequest score;
  if (score.ParseFromArray(data, static_cast<int>(size))) Score(score);
  inference::ModelInferRequest infer;
  if (infer.ParseFromArray(data, static_cast<int>(size))) Infer(infer);
  return 0;
}
