#include "core/sampler.h"

#include <algorithm>
#include <cmath>

#include "core/random.h"
#include "io/status_macros.h"

namespace gan {

absl::StatusOr<std::unique_ptr<Sampler>> Sampler::Create(std::vector<LayerShape> generator,
                                                         ParameterStore* params,
                                                         const gan::v1::NoiseSpec& noise,
                                                         int64_t chunk) {
  const int64_t image_floats = NumElements(generator.back().output);
  std::unique_ptr<Sampler> sampler(new Sampler(noise, chunk, image_floats));
  GAN_ASSIGN_OR_RETURN(sampler->network_,
                       Sequential::Create(std::move(generator), params,
                                          {chunk, Pass::kInference, false}));
  return sampler;
}

absl::Status Sampler::Generate(int64_t n, uint64_t seed, absl::Span<float> images) {
  if (n < 0 || static_cast<int64_t>(images.size()) != n * image_floats_) {
    return absl::InvalidArgumentError("Generate: the buffer does not hold n images");
  }
  const uint64_t key = MixKey(seed, 0x53616D706C65ull);  // "Sample"
  const int64_t dim = noise_.dim();
  for (int64_t start = 0; start < n; start += chunk_) {
    const int64_t count = std::min(chunk_, n - start);
    absl::Span<float> z = network_->input();
    for (int64_t i = 0; i < chunk_ * dim; ++i) {
      const uint64_t index = static_cast<uint64_t>(start * dim + i);
      z[i] = noise_.distribution() == gan::v1::NOISE_DISTRIBUTION_NORMAL
                 ? NormalAt(key, index)
                 : 2.0f * UniformAt(key, index) - 1.0f;
    }
    network_->Forward();
    std::copy_n(network_->output().data(), count * image_floats_,
                images.data() + start * image_floats_);
  }
  return absl::OkStatus();
}

std::vector<uint8_t> ToPixelsNhwc(absl::Span<const float> images, int64_t n, int channels,
                                  int height, int width) {
  std::vector<uint8_t> pixels(images.size());
  const int64_t plane = int64_t{height} * width;
  for (int64_t i = 0; i < n; ++i) {
    for (int c = 0; c < channels; ++c) {
      for (int64_t p = 0; p < plane; ++p) {
        const float v = images[(i * channels + c) * plane + p];
        const float scaled = std::round((std::clamp(v, -1.0f, 1.0f) + 1.0f) * 127.5f);
        pixels[(i * plane + p) * channels + c] = static_cast<uint8_t>(scaled);
      }
    }
  }
  return pixels;
}

}  // namespace gan
