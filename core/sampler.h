#ifndef GAN_CORE_SAMPLER_H_
#define GAN_CORE_SAMPLER_H_

// Runs a generator at inference (BatchNorm with running statistics), either on noise it draws
// itself or on noise the caller gives. Images run in chunks of at most `chunk`; a chunk goes
// through the smallest power-of-two network that holds it (padded; the full `chunk` when that is
// not a power of two), created on first use and kept, so at most log2(chunk) + 2 networks ever
// exist, all sharing the weights. Drawn noise of image i depends only on (seed, i): the same
// request gives the same images, and a request for more images extends a smaller one.
// Not thread-safe.

#include <cstdint>
#include <map>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "core/model_shapes.h"
#include "core/parameter_store.h"
#include "core/sequential.h"
#include "gan/v1/spec.pb.h"

namespace gan {

class Sampler {
 public:
  // `generator` maps noise (noise.dim()) to images; `params` outlives the sampler. No network is
  // created until the first call needs one.
  static absl::StatusOr<std::unique_ptr<Sampler>> Create(std::vector<LayerShape> generator,
                                                         ParameterStore* params,
                                                         const gan::v1::NoiseSpec& noise,
                                                         int64_t chunk = 64);

  // Writes n images (n, C, H, W) in the generator's output range (tanh: [-1, 1]) from noise drawn
  // from the NoiseSpec with `seed`.
  absl::Status Generate(int64_t n, uint64_t seed, absl::Span<float> images);

  // Writes n images (n, C, H, W) from the caller's noise: n rows of noise_dim() floats. Image i
  // depends only on row i.
  absl::Status GenerateFromNoise(absl::Span<const float> noise, int64_t n,
                                 absl::Span<float> images);

  int64_t noise_dim() const { return noise_.dim(); }
  int64_t image_floats() const { return image_floats_; }

 private:
  Sampler(std::vector<LayerShape> layers, ParameterStore* params, const gan::v1::NoiseSpec& noise,
          int64_t chunk, int64_t image_floats)
      : layers_(std::move(layers)),
        params_(params),
        noise_(noise),
        chunk_(chunk),
        image_floats_(image_floats) {}

  // The network that runs `count` (1..chunk) images.
  absl::StatusOr<Sequential*> NetworkFor(int64_t count);
  // Runs n images whose noise `fill(start, count, z)` writes into the network input z (count rows
  // of noise_dim; the caller zeroes the padding).
  template <typename Fill>
  absl::Status Run(int64_t n, absl::Span<float> images, Fill fill);

  std::vector<LayerShape> layers_;
  ParameterStore* params_;
  gan::v1::NoiseSpec noise_;
  int64_t chunk_, image_floats_;
  std::map<int64_t, std::unique_ptr<Sequential>> networks_;
};

// Converts generator output in [-1, 1] (n, C, H, W) to uint8 pixels (n, H, W, C), clamping.
std::vector<uint8_t> ToPixelsNhwc(absl::Span<const float> images, int64_t n, int channels,
                                  int height, int width);

}  // namespace gan

#endif  // GAN_CORE_SAMPLER_H_
