#ifndef GAN_SERVER_SCORE_REQUEST_H_
#define GAN_SERVER_SCORE_REQUEST_H_

// Decoding of client-supplied image tensors for scoring, validated before anything proportional
// to them is allocated: the shape is checked (its element count computed with overflow checks)
// against the limit and the model's image shape, and the payload length against the shape, before
// the pixels are converted. Errors are INVALID_ARGUMENT naming the field.

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "gan/v1/service.pb.h"

namespace gan::server {

// Client images to score, validated in two steps so that nothing proportional to a claimed shape
// is allocated before the payload is known to match it: Check is O(1) (the tensor's shape against
// the model's image shape, the payload's length against the shape), Decode then checks the
// values and converts them. Implemented for gan.v1.ScoreRequest here and for Open Inference
// Protocol tensors in server/inference_tensors.h. Errors are INVALID_ARGUMENT naming the field.
class ImageTensor {
 public:
  virtual ~ImageTensor() = default;
  // N.
  virtual int64_t images() const = 0;
  virtual absl::Status Check(int height, int width, int channels) const = 0;
  // After Check: writes the N images as NCHW floats in [-1, 1] to `nchw` (N * C * H * W).
  virtual absl::Status Decode(absl::Span<float> nchw) const = 0;
};

// Noise for a generator, validated in the same two steps (Check: the row length against the
// model's noise dim and the payload against the shape).
class NoiseTensor {
 public:
  virtual ~NoiseTensor() = default;
  // Rows (one image each).
  virtual int64_t rows() const = 0;
  virtual absl::Status Check(int64_t noise_dim) const = 0;
  // After Check: writes rows * noise_dim finite floats to `out`.
  virtual absl::Status Decode(absl::Span<float> out) const = 0;
};

// Checks a (N, H, W, C) shape without the model: 4 positive dims, an element count that fits in
// int64 (also as bytes of float32) and N <= max_images. Returns N*H*W*C.
absl::StatusOr<int64_t> CheckImageShape(absl::Span<const int64_t> shape, int64_t max_images);

// request.shape = (N, H, W, C) with (H, W, C) = the model's, pixels as uint8_pixels (0..255,
// mapped to x / 127.5 - 1) or float_pixels (little-endian float32, finite, in [-1, 1]), both
// NHWC. Returns the images as NCHW floats in [-1, 1].
absl::StatusOr<std::vector<float>> DecodeScoreImages(const gan::v1::ScoreRequest& request,
                                                     int64_t max_images, int height, int width,
                                                     int channels);

// The images of `request` (which outlives the result) as an ImageTensor, for a request whose
// shape passed CheckImageShape and whose pixels are set (else INVALID_ARGUMENT).
absl::StatusOr<std::unique_ptr<ImageTensor>> ScoreRequestImages(
    const gan::v1::ScoreRequest& request, int64_t max_images);

}  // namespace gan::server

#endif  // GAN_SERVER_SCORE_REQUEST_H_
