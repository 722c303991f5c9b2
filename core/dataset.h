#ifndef GAN_CORE_DATASET_H_
#define GAN_CORE_DATASET_H_

// Training images and the order they are visited in.

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace gan {

// An immutable set of uint8 images kept as NHWC (N,H,W,C) in memory, like IDX files.
// Thread-safe for concurrent readers.
class ImageDataset {
 public:
  // Precondition: count, height, width, channels > 0 and pixels.size() == count*H*W*C.
  ImageDataset(std::string name, int64_t count, int height, int width, int channels,
               std::vector<uint8_t> pixels);

  const std::string& name() const { return name_; }
  int64_t size() const { return count_; }
  int height() const { return height_; }
  int width() const { return width_; }
  int channels() const { return channels_; }
  int64_t image_bytes() const { return int64_t{height_} * width_ * channels_; }

  // H*W*C bytes, HWC. Precondition: 0 <= i < size().
  const uint8_t* image(int64_t i) const { return pixels_.data() + i * image_bytes(); }

  // out is (B,C,H,W) float with B = indices.size(): out = pixel / 127.5 - 1, so 0 -> -1 and
  // 255 -> 1 exactly. Precondition: every index in [0, size()).
  void FillBatch(absl::Span<const int64_t> indices, float* out) const;

 private:
  std::string name_;
  int64_t count_;
  int height_;
  int width_;
  int channels_;
  std::vector<uint8_t> pixels_;
};

inline constexpr char kFashionMnistDir[] = "/usr/share/datasets/fashion-mnist";

// Reads <dir>/train-images-idx3-ubyte, or else <dir>/train-images-idx3-ubyte.gz, an idx3 file
// (N,H,W) that becomes an (N,H,W,1) dataset. NOT_FOUND when neither file exists; otherwise the
// errors of ReadIdxFile, or INVALID_ARGUMENT when the file is not rank 3.
absl::StatusOr<ImageDataset> LoadIdxImageDirectory(const std::string& dir,
                                                   const std::string& name);

// Debian's dataset-fashion-mnist (60000 x 28x28x1), named "fashion-mnist". When the images are
// absent: FAILED_PRECONDITION saying to install the Debian package dataset-fashion-mnist.
absl::StatusOr<ImageDataset> LoadFashionMnist(const std::string& dir = kFashionMnistDir);

// Deterministic synthetic images (named "synthetic") for tests and benchmarks: one antialiased
// filled disc, ring or bar per image, of random position, size and brightness on a black
// background (per-channel brightness when channels > 1). Integer arithmetic over core/random.h
// only, so the same (count, seed, shape) gives the same bytes on every machine.
// Precondition: count >= 0, height, width, channels > 0.
ImageDataset MakeSyntheticDataset(int64_t count, uint64_t seed, int height = 28, int width = 28,
                                  int channels = 1);

// The size of the built-in "synthetic" dataset (seed 1, 28x28x1).
inline constexpr int64_t kSyntheticDatasetSize = 8192;

// True for the names of built-in datasets: "fashion-mnist" and "synthetic".
bool IsBuiltinDataset(const std::string& name);

// A built-in dataset by name: "fashion-mnist" (LoadFashionMnist(fashion_mnist_dir)) or
// "synthetic" (kSyntheticDatasetSize images of MakeSyntheticDataset with seed 1). NOT_FOUND for
// any other name.
absl::StatusOr<ImageDataset> LoadBuiltinDataset(const std::string& name,
                                                const std::string& fashion_mnist_dir =
                                                    kFashionMnistDir);

// Which dataset indices each training batch holds. Every epoch visits a fresh seeded permutation
// of [0, dataset_size) in consecutive batches; the last partial batch is dropped. Global batch k
// (k = 0, 1, 2, ...) is batch k % batches_per_epoch of epoch k / batches_per_epoch, and an epoch's
// order is a pure function of (seed, epoch), so a resumed run sees exactly the same batches.
//
// The permutation is a Fisher-Yates shuffle: start from the identity p, and for i = n-1 down to 1
// swap p[i] with p[j], j = MixKey(MixKey(MixKey(seed, kShuffleTag), epoch), i) % (i + 1)
// (see core/random.h; the modulo bias is below n / 2^64).
//
// Not thread-safe: BatchIndices caches the current epoch's permutation.
class EpochSampler {
 public:
  static constexpr uint64_t kShuffleTag = 0x53687566666c65ull;  // "Shuffle"

  // INVALID_ARGUMENT unless 0 < batch_size <= dataset_size.
  static absl::StatusOr<EpochSampler> Create(int64_t dataset_size, int batch_size, uint64_t seed);

  int64_t dataset_size() const { return dataset_size_; }
  int batch_size() const { return batch_size_; }
  int64_t batches_per_epoch() const { return dataset_size_ / batch_size_; }
  // Precondition for both: step >= 0.
  int64_t EpochOf(int64_t step) const { return step / batches_per_epoch(); }

  // Fills out[0, batch_size) with the dataset indices of global batch `step`. The permutation is
  // recomputed (O(dataset_size)) only when the epoch changes.
  void BatchIndices(int64_t step, int64_t* out);

 private:
  EpochSampler(int64_t dataset_size, int batch_size, uint64_t seed)
      : dataset_size_(dataset_size), batch_size_(batch_size), seed_(seed) {}

  int64_t dataset_size_;
  int batch_size_;
  uint64_t seed_;
  int64_t cached_epoch_ = -1;
  std::vector<int64_t> permutation_;  // of cached_epoch_
};

}  // namespace gan

#endif  // GAN_CORE_DATASET_H_
