#include "core/dataset.h"

#include <algorithm>
#include <cassert>
#include <cstdlib>
#include <filesystem>
#include <numeric>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "io/idx_reader.h"
#include "core/random.h"
#include "io/status_macros.h"

namespace gan {

ImageDataset::ImageDataset(std::string name, int64_t count, int height, int width, int channels,
                           std::vector<uint8_t> pixels)
    : name_(std::move(name)),
      count_(count),
      height_(height),
      width_(width),
      channels_(channels),
      pixels_(std::move(pixels)) {
  assert(count >= 0 && height > 0 && width > 0 && channels > 0);
  assert(static_cast<int64_t>(pixels_.size()) == count * image_bytes());
}

void ImageDataset::FillBatch(absl::Span<const int64_t> indices, float* out) const {
  const int64_t plane = int64_t{height_} * width_;
  for (size_t b = 0; b < indices.size(); ++b) {
    const uint8_t* src = image(indices[b]);  // (H,W,C)
    float* dst = out + static_cast<int64_t>(b) * channels_ * plane;  // (C,H,W)
    for (int c = 0; c < channels_; ++c) {
      for (int64_t p = 0; p < plane; ++p) {
        dst[c * plane + p] = src[p * channels_ + c] / 127.5f - 1.0f;
      }
    }
  }
}

absl::StatusOr<ImageDataset> LoadIdxImageDirectory(const std::string& dir,
                                                   const std::string& name) {
  std::error_code ec;
  std::string path = (std::filesystem::path(dir) / "train-images-idx3-ubyte").string();
  if (!std::filesystem::exists(path, ec)) {
    path += ".gz";
    if (!std::filesystem::exists(path, ec)) {
      return absl::NotFoundError(absl::StrCat(
          dir, ": holds neither train-images-idx3-ubyte nor train-images-idx3-ubyte.gz"));
    }
  }
  GAN_ASSIGN_OR_RETURN(IdxArray array, ReadIdxFile(path));
  if (array.dims.size() != 3) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: images must be rank 3 (N,H,W), got shape %s", path, absl::StrJoin(array.dims, "x")));
  }
  // ReadIdxFile's size limit keeps H and W far below INT_MAX.
  return ImageDataset(name, array.dims[0], static_cast<int>(array.dims[1]),
                      static_cast<int>(array.dims[2]), 1, std::move(array.data));
}

absl::StatusOr<ImageDataset> LoadFashionMnist(const std::string& dir) {
  absl::StatusOr<ImageDataset> dataset = LoadIdxImageDirectory(dir, "fashion-mnist");
  if (absl::IsNotFound(dataset.status())) {
    return absl::FailedPreconditionError(absl::StrCat(
        "Fashion-MNIST is not installed (", dataset.status().message(),
        "); install the Debian package dataset-fashion-mnist "
        "(apt-get install dataset-fashion-mnist)"));
  }
  return dataset;
}

namespace {

constexpr uint64_t kSyntheticTag = 0x53796e7468ull;  // "Synth"

// Shape geometry is in 1/8-pixel units; each pixel is covered by 4x4 samples at odd offsets.
constexpr int64_t kSub = 8;
constexpr int kSamplesPerAxis = 4;

enum class Shape { kDisc, kRing, kBar };

// Uniform integer in [lo, max(lo, hi)] from value `param` of an image's random stream.
int64_t UniformInt(uint64_t image_key, uint64_t param, int64_t lo, int64_t hi) {
  const uint64_t span = static_cast<uint64_t>(std::max(lo, hi) - lo) + 1;
  return lo + static_cast<int64_t>(MixKey(image_key, param) % span);
}

}  // namespace

bool IsBuiltinDataset(const std::string& name) {
  return name == "fashion-mnist" || name == "synthetic";
}

absl::StatusOr<ImageDataset> LoadBuiltinDataset(const std::string& name,
                                                const std::string& fashion_mnist_dir) {
  if (name == "fashion-mnist") return LoadFashionMnist(fashion_mnist_dir);
  if (name == "synthetic") return MakeSyntheticDataset(kSyntheticDatasetSize, 1);
  return absl::NotFoundError(
      absl::StrCat("dataset: '", name, "' is not built in (fashion-mnist, synthetic)"));
}

ImageDataset MakeSyntheticDataset(int64_t count, uint64_t seed, int height, int width,
                                  int channels) {
  const int64_t h = height, w = width, s = std::min(h, w) * kSub;
  const uint64_t dataset_key = MixKey(seed, kSyntheticTag);
  std::vector<uint8_t> pixels(static_cast<size_t>(count * h * w * channels), 0);
  std::vector<int64_t> brightness(channels);
  for (int64_t i = 0; i < count; ++i) {
    const uint64_t key = MixKey(dataset_key, static_cast<uint64_t>(i));
    for (int c = 0; c < channels; ++c) brightness[c] = UniformInt(key, 8 + c, 140, 255);
    const auto shape = static_cast<Shape>(UniformInt(key, 0, 0, 2));
    // Half-extents of the bounding box (ex, ey) and the shape's own sizes, in 1/8 pixels.
    int64_t ex = 0, ey = 0, r_out2 = 0, r_in2 = 0;
    switch (shape) {
      case Shape::kDisc:
        ex = ey = UniformInt(key, 3, s / 8, s / 3);
        r_out2 = ex * ex;
        break;
      case Shape::kRing: {
        ex = ey = UniformInt(key, 3, s / 5, s / 3);
        const int64_t r_in = std::max<int64_t>(0, ex - UniformInt(key, 4, s / 14, s / 7));
        r_out2 = ex * ex;
        r_in2 = r_in * r_in;
        break;
      }
      case Shape::kBar:
        ex = UniformInt(key, 3, s / 5, s / 3);   // half length
        ey = UniformInt(key, 4, s / 16, s / 8);  // half thickness
        if (UniformInt(key, 5, 0, 1) == 1) std::swap(ex, ey);  // vertical
        break;
    }
    // Centre keeps the shape a pixel inside the frame; a shape too large for it is centred.
    auto place = [&](uint64_t param, int64_t extent, int64_t frame) {
      return UniformInt(key, param, std::min(extent + kSub, frame / 2),
                        std::max(frame - extent - kSub, frame / 2));
    };
    const int64_t cx = place(1, ex, w * kSub);
    const int64_t cy = place(2, ey, h * kSub);
    auto inside = [&](int64_t dx, int64_t dy) {
      if (shape == Shape::kBar) return std::abs(dx) <= ex && std::abs(dy) <= ey;
      const int64_t d2 = dx * dx + dy * dy;
      return d2 <= r_out2 && d2 >= r_in2;
    };
    uint8_t* img = pixels.data() + i * h * w * channels;  // (H,W,C)
    const int64_t x0 = std::max<int64_t>(0, (cx - ex) / kSub);
    const int64_t x1 = std::min<int64_t>(w - 1, (cx + ex) / kSub);
    const int64_t y0 = std::max<int64_t>(0, (cy - ey) / kSub);
    const int64_t y1 = std::min<int64_t>(h - 1, (cy + ey) / kSub);
    for (int64_t y = y0; y <= y1; ++y) {
      for (int64_t x = x0; x <= x1; ++x) {
        int covered = 0;
        for (int sy = 0; sy < kSamplesPerAxis; ++sy) {
          for (int sx = 0; sx < kSamplesPerAxis; ++sx) {
            covered += inside(x * kSub + 2 * sx + 1 - cx, y * kSub + 2 * sy + 1 - cy);
          }
        }
        for (int c = 0; c < channels; ++c) {
          img[(y * w + x) * channels + c] = static_cast<uint8_t>(
              (brightness[c] * covered + kSamplesPerAxis * kSamplesPerAxis / 2) /
              (kSamplesPerAxis * kSamplesPerAxis));
        }
      }
    }
  }
  return ImageDataset("synthetic", count, height, width, channels, std::move(pixels));
}

absl::StatusOr<EpochSampler> EpochSampler::Create(int64_t dataset_size, int batch_size,
                                                  uint64_t seed) {
  if (batch_size <= 0 || batch_size > dataset_size) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "batch size %d must be in [1, dataset size %d]", batch_size, dataset_size));
  }
  return EpochSampler(dataset_size, batch_size, seed);
}

void EpochSampler::BatchIndices(int64_t step, int64_t* out) {
  const int64_t epoch = EpochOf(step);
  if (epoch != cached_epoch_) {
    permutation_.resize(static_cast<size_t>(dataset_size_));
    std::iota(permutation_.begin(), permutation_.end(), int64_t{0});
    const uint64_t key = MixKey(MixKey(seed_, kShuffleTag), static_cast<uint64_t>(epoch));
    for (int64_t i = dataset_size_ - 1; i > 0; --i) {
      const uint64_t j = MixKey(key, static_cast<uint64_t>(i)) % static_cast<uint64_t>(i + 1);
      std::swap(permutation_[i], permutation_[j]);
    }
    cached_epoch_ = epoch;
  }
  const int64_t* begin = permutation_.data() + (step % batches_per_epoch()) * batch_size_;
  std::copy(begin, begin + batch_size_, out);
}

}  // namespace gan
