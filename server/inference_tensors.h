#ifndef GAN_SERVER_INFERENCE_TENSORS_H_
#define GAN_SERVER_INFERENCE_TENSORS_H_

// Decoding and validation of Open Inference Protocol tensors (proto/inference/grpc_service.proto)
// for gan-server's models, with the rigour of gan.v1 Score (server/score_request.h): the input's
// name, datatype and shape are checked, and its payload (raw_input_contents or typed contents)
// against the shape, before anything proportional to the shape is allocated; the values are
// checked when they are decoded. Errors are INVALID_ARGUMENT naming the tensor ("images: ...",
// "noise: ...") or the request field ("inputs: ...", "raw_input_contents: ...").

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "inference/grpc_service.pb.h"
#include "server/score_request.h"

namespace gan::server {

// The tensor names of the two kinds of models.
inline constexpr char kImagesTensor[] = "images";
inline constexpr char kNoiseTensor[] = "noise";
inline constexpr char kProbabilityTensor[] = "probability";
inline constexpr char kLogitTensor[] = "logit";

// The discriminator's input: one tensor named "images", datatype UINT8 (0..255) or FP32 (finite,
// in [-1, 1]), shape [N, H, W, C] (NHWC) with 1 <= N <= max_images (the `limit_flag`).
// (H, W, C) is checked against the model by ImageTensor::Check. `request` outlives the result.
absl::StatusOr<std::unique_ptr<ImageTensor>> InferImages(
    const inference::ModelInferRequest& request, int64_t max_images, const char* limit_flag);

// The generator's input: one tensor named "noise", FP32 (finite), shape [N, noise_dim] with
// 1 <= N <= max_rows; noise_dim is checked against the model by NoiseTensor::Check.
absl::StatusOr<std::unique_ptr<NoiseTensor>> InferNoise(
    const inference::ModelInferRequest& request, int64_t max_rows, const char* limit_flag);

// The outputs to return, in order: the requested ones (each must be one of `available`, once),
// or all of `available` when none is requested.
absl::StatusOr<std::vector<std::string>> RequestedOutputs(
    const inference::ModelInferRequest& request, const std::vector<std::string>& available);

// Appends an FP32 output tensor `name` of `shape` holding `values` as raw_output_contents
// (little-endian float32).
void AddFp32Output(const std::string& name, const std::vector<int64_t>& shape,
                   absl::Span<const float> values, inference::ModelInferResponse* response);

// "[2, 28, 28, 1]".
std::string ShapeText(absl::Span<const int64_t> shape);

}  // namespace gan::server

#endif  // GAN_SERVER_INFERENCE_TENSORS_H_
