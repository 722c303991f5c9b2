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
  if (generator.empty() || chunk < 1 || noise.dim() < 1) {
    return absl::InvalidArgumentError("Sampler: needs layers, a noise dim and a chunk >= 1");
  }
  const int64_t image_floats = NumElements(generator.back().output);
  return std::unique_ptr<Sampler>(
      new Sampler(std::move(generator), params, noise, chunk, image_floats));
}

absl::StatusOr<Sequential*> Sampler::NetworkFor(int64_t count) {
  int64_t size = 1;
  while (size < count && size < chunk_) size *= 2;
  size = std::min(size, chunk_);
  auto it = networks_.find(size);
  if (it == networks_.end()) {
    GAN_ASSIGN_OR_RETURN(std::unique_ptr<Sequential> net,
                         Sequential::Create(layers_, params_, {size, Pass::kInference, false}));
    it = networks_.emplace(size, std::move(net)).first;
  }
  return it->second.get();
}

template <typename Fill>
absl::Status Sampler::Run(int64_t n, absl::Span<float> images, Fill fill) {
  const int64_t dim = noise_.dim();
  for (int64_t start = 0; start < n; start += chunk_) {
    const int64_t count = std::min(chunk_, n - start);
    GAN_ASSIGN_OR_RETURN(Sequential * net, NetworkFor(count));
    absl::Span<float> z = net->input();
    fill(start, count, z.data());
    // Padding rows are zeros; their images are discarded.
    std::fill(z.begin() + count * dim, z.end(), 0.0f);
    net->Forward();
    std::copy_n(net->output().data(), count * image_floats_,
                images.data() + start * image_floats_);
  }
  return absl::OkStatus();
}

absl::Status Sampler::Generate(int64_t n, uint64_t seed, absl::Span<float> images) {
  if (n < 0 || static_cast<int64_t>(images.size()) != n * image_floats_) {
    return absl::InvalidArgumentError("Generate: the buffer does not hold n images");
  }
  const uint64_t key = MixKey(seed, 0x53616D706C65ull);  // "Sample"
  const int64_t dim = noise_.dim();
  const bool normal = noise_.distribution() == gan::v1::NOISE_DISTRIBUTION_NORMAL;
  return Run(n, images, [&](int64_t start, int64_t count, float* z) {
    for (int64_t i = 0; i < count * dim; ++i) {
      const uint64_t index = static_cast<uint64_t>(start * dim + i);
      z[i] = normal ? NormalAt(key, index) : 2.0f * UniformAt(key, index) - 1.0f;
    }
  });
}

absl::Status Sampler::GenerateFromNoise(absl::Span<const float> noise, int64_t n,
                                        absl::Span<float> images) {
  const int64_t dim = noise_.dim();
  if (n < 0 || static_cast<int64_t>(noise.size()) != n * dim ||
      static_cast<int64_t>(images.size()) != n * image_floats_) {
    return absl::InvalidArgumentError(
        "GenerateFromNoise: the buffers do not hold n noise rows and n images");
  }
  return Run(n, images, [&](int64_t start, int64_t count, float* z) {
    std::copy_n(noise.data() + start * dim, count * dim, z);
  });
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
