#ifndef GAN_SERVER_SCORE_REQUEST_H_
#define GAN_SERVER_SCORE_REQUEST_H_

// Decoding of client-supplied image tensors for scoring, validated before anything proportional
// to them is allocated: the shape is checked (its element count computed with overflow checks)
// against the limit and the model's image shape, and the payload length against the shape, before
// the pixels are converted. Errors are INVALID_ARGUMENT naming the field.

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "gan/v1/service.pb.h"

namespace gan::server {

// Checks a (N, H, W, C) shape without the model: 4 positive dims, an element count that fits in
// int64 (also as bytes of float32) and N <= max_images. Returns N*H*W*C.
absl::StatusOr<int64_t> CheckImageShape(absl::Span<const int64_t> shape, int64_t max_images);

// request.shape = (N, H, W, C) with (H, W, C) = the model's, pixels as uint8_pixels (0..255,
// mapped to x / 127.5 - 1) or float_pixels (little-endian float32, finite, in [-1, 1]), both
// NHWC. Returns the images as NCHW floats in [-1, 1].
absl::StatusOr<std::vector<float>> DecodeScoreImages(const gan::v1::ScoreRequest& request,
                                                     int64_t max_images, int height, int width,
                                                     int channels);

}  // namespace gan::server

#endif  // GAN_SERVER_SCORE_REQUEST_H_
