#ifndef GAN_CORE_SAMPLER_H_
#define GAN_CORE_SAMPLER_H_

// Draws images from a generator at inference (BatchNorm with running statistics), in fixed-size
// chunks so any request size reuses the same network. The noise of image i depends only on
// (seed, i): the same request gives the same images, and a request for more images extends a
// smaller one. Not thread-safe.

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "core/model_shapes.h"
#include "core/parameter_store.h"
#include "core/sequential.h"
#include "gan/v1/spec.pb.h"

namespace gan {

class Sampler {
 public:
  static absl::StatusOr<std::unique_ptr<Sampler>> Create(std::vector<LayerShape> generator,
                                                         ParameterStore* params,
                                                         const gan::v1::NoiseSpec& noise,
                                                         int64_t chunk = 64);

  // Writes n images (n, C, H, W) in the generator's output range (tanh: [-1, 1]).
  absl::Status Generate(int64_t n, uint64_t seed, absl::Span<float> images);

  int64_t image_floats() const { return image_floats_; }

 private:
  Sampler(const gan::v1::NoiseSpec& noise, int64_t chunk, int64_t image_floats)
      : noise_(noise), chunk_(chunk), image_floats_(image_floats) {}

  gan::v1::NoiseSpec noise_;
  int64_t chunk_, image_floats_;
  std::unique_ptr<Sequential> network_;
};

// Converts generator output in [-1, 1] (n, C, H, W) to uint8 pixels (n, H, W, C), clamping.
std::vector<uint8_t> ToPixelsNhwc(absl::Span<const float> images, int64_t n, int channels,
                                  int height, int width);

}  // namespace gan

#endif  // GAN_CORE_SAMPLER_H_
