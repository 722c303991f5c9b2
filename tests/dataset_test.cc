#include "core/dataset.h"

#include <zlib.h>

#include <algorithm>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/test_util.h"

namespace gan {
namespace {

using ::gan::testing::MakeTempDir;
using ::gan::testing::StatusIs;
using ::testing::HasSubstr;

// 64-bit FNV-1a, to pin the synthetic bytes across machines.
uint64_t Fnv1a(const uint8_t* data, size_t n) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (size_t i = 0; i < n; ++i) h = (h ^ data[i]) * 0x100000001b3ull;
  return h;
}

uint64_t Fingerprint(const ImageDataset& d) {
  return Fnv1a(d.image(0), static_cast<size_t>(d.size() * d.image_bytes()));
}

std::vector<int64_t> Batch(EpochSampler& sampler, int64_t step) {
  std::vector<int64_t> out(sampler.batch_size());
  sampler.BatchIndices(step, out.data());
  return out;
}

TEST(ImageDatasetTest, FillBatchScalesToMinusOneOneAndTransposesNhwcToNchw) {
  // Two 2x2 RGB images; pixel (y,x) channel c of image n holds a distinct value.
  constexpr int kH = 2, kW = 2, kC = 3;
  std::vector<uint8_t> pixels(2 * kH * kW * kC);
  for (size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<uint8_t>(i * 10);
  pixels[0] = 0;
  pixels[kH * kW * kC + 5] = 255;
  const ImageDataset dataset("rgb", 2, kH, kW, kC, pixels);

  const std::vector<int64_t> indices = {1, 0};
  std::vector<float> out(indices.size() * kC * kH * kW);
  dataset.FillBatch(indices, out.data());
  for (int b = 0; b < 2; ++b) {
    for (int c = 0; c < kC; ++c) {
      for (int y = 0; y < kH; ++y) {
        for (int x = 0; x < kW; ++x) {
          const uint8_t v = pixels[((indices[b] * kH + y) * kW + x) * kC + c];
          EXPECT_EQ(out[((b * kC + c) * kH + y) * kW + x], v / 127.5f - 1.0f)
              << "b=" << b << " c=" << c << " y=" << y << " x=" << x;
        }
      }
    }
  }
  EXPECT_EQ(out[(1 * kC + 0) * kH * kW], -1.0f);  // image 0, c=0, (0,0) = 0
  EXPECT_EQ(out[(0 * kC + 2) * kH * kW + 1], 1.0f);  // image 1, c=2, (0,1) = 255
}

TEST(SyntheticDatasetTest, SameSeedSameBytesDifferentSeedDifferentBytes) {
  const ImageDataset a = MakeSyntheticDataset(64, 7);
  const ImageDataset b = MakeSyntheticDataset(64, 7);
  const ImageDataset c = MakeSyntheticDataset(64, 8);
  EXPECT_EQ(a.name(), "synthetic");
  EXPECT_EQ(a.size(), 64);
  EXPECT_EQ(a.height(), 28);
  EXPECT_EQ(a.width(), 28);
  EXPECT_EQ(a.channels(), 1);
  EXPECT_EQ(Fingerprint(a), Fingerprint(b));
  EXPECT_NE(Fingerprint(a), Fingerprint(c));
  // Integer-only generation: these bytes are the same on every machine. Update deliberately if
  // the generator changes.
  EXPECT_EQ(Fingerprint(a), 5445098310922255207u);
}

TEST(SyntheticDatasetTest, ImagesAreVariedShapesOnADarkBackground) {
  const ImageDataset d = MakeSyntheticDataset(100, 1, 28, 28, 3);
  std::set<uint64_t> distinct;
  for (int64_t i = 0; i < d.size(); ++i) {
    const uint8_t* img = d.image(i);
    const int64_t lit = std::count_if(img, img + d.image_bytes(), [](uint8_t v) { return v > 0; });
    EXPECT_GT(lit, d.image_bytes() / 50) << "image " << i;
    EXPECT_LT(lit, d.image_bytes() / 2) << "image " << i;
    EXPECT_GE(*std::max_element(img, img + d.image_bytes()), 140) << "image " << i;
    distinct.insert(Fnv1a(img, static_cast<size_t>(d.image_bytes())));
  }
  EXPECT_EQ(distinct.size(), 100u);
}

TEST(EpochSamplerTest, CreateRejectsBadBatchSize) {
  EXPECT_THAT(EpochSampler::Create(10, 0, 1), StatusIs(absl::StatusCode::kInvalidArgument,
                                                       HasSubstr("batch size 0")));
  EXPECT_THAT(EpochSampler::Create(10, 11, 1), StatusIs(absl::StatusCode::kInvalidArgument,
                                                        HasSubstr("batch size 11")));
}

TEST(EpochSamplerTest, EachEpochCoversDistinctIndicesAndDropsThePartialBatch) {
  GAN_ASSERT_OK_AND_ASSIGN(EpochSampler sampler, EpochSampler::Create(103, 10, 42));
  ASSERT_EQ(sampler.batches_per_epoch(), 10);
  for (int64_t epoch = 0; epoch < 3; ++epoch) {
    std::set<int64_t> seen;
    for (int64_t k = 0; k < 10; ++k) {
      const int64_t step = epoch * 10 + k;
      EXPECT_EQ(sampler.EpochOf(step), epoch);
      for (int64_t index : Batch(sampler, step)) {
        EXPECT_GE(index, 0);
        EXPECT_LT(index, 103);
        seen.insert(index);
      }
    }
    EXPECT_EQ(seen.size(), 100u) << "epoch " << epoch;
  }
}

TEST(EpochSamplerTest, OrderDependsOnSeedAndEpoch) {
  GAN_ASSERT_OK_AND_ASSIGN(EpochSampler a, EpochSampler::Create(1000, 100, 5));
  GAN_ASSERT_OK_AND_ASSIGN(EpochSampler b, EpochSampler::Create(1000, 100, 5));
  GAN_ASSERT_OK_AND_ASSIGN(EpochSampler c, EpochSampler::Create(1000, 100, 6));
  for (int64_t step = 0; step < 20; ++step) EXPECT_EQ(Batch(a, step), Batch(b, step));
  EXPECT_NE(Batch(a, 0), Batch(c, 0));
  EXPECT_NE(Batch(a, 0), Batch(a, 10));  // batch 0 of epochs 0 and 1
  EXPECT_NE(Batch(a, 3), Batch(a, 23));  // batch 3 of epochs 0 and 2
}

TEST(EpochSamplerTest, StepAccessEqualsSequentialAccess) {
  GAN_ASSERT_OK_AND_ASSIGN(EpochSampler sequential, EpochSampler::Create(50, 8, 9));
  std::vector<std::vector<int64_t>> batches;
  for (int64_t step = 0; step < 30; ++step) batches.push_back(Batch(sequential, step));
  // A resumed run: a fresh sampler jumping between steps in any order sees the same batches.
  GAN_ASSERT_OK_AND_ASSIGN(EpochSampler resumed, EpochSampler::Create(50, 8, 9));
  for (int64_t step : {17, 3, 29, 0, 18, 12, 6, 25}) {
    EXPECT_EQ(Batch(resumed, step), batches[step]) << "step " << step;
  }
}

TEST(LoadTest, LoadIdxImageDirectoryReadsGzipImagesAsOneChannel) {
  const std::string dir = MakeTempDir("images");
  // 2 images of 3x4: header 00 00 08 03, dims 2, 3, 4, then 24 bytes.
  std::vector<uint8_t> bytes = {0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4};
  for (int i = 0; i < 24; ++i) bytes.push_back(static_cast<uint8_t>(i));
  gzFile file = gzopen((dir + "/train-images-idx3-ubyte.gz").c_str(), "wb");
  ASSERT_NE(file, nullptr);
  ASSERT_EQ(gzwrite(file, bytes.data(), static_cast<unsigned>(bytes.size())),
            static_cast<int>(bytes.size()));
  ASSERT_EQ(gzclose(file), Z_OK);

  GAN_ASSERT_OK_AND_ASSIGN(ImageDataset d, LoadIdxImageDirectory(dir, "mine"));
  EXPECT_EQ(d.name(), "mine");
  EXPECT_EQ(d.size(), 2);
  EXPECT_EQ(d.height(), 3);
  EXPECT_EQ(d.width(), 4);
  EXPECT_EQ(d.channels(), 1);
  EXPECT_EQ(d.image(1)[0], 12);
  EXPECT_THAT(LoadIdxImageDirectory(MakeTempDir("empty"), "none"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("train-images-idx3-ubyte")));
}

TEST(LoadTest, MissingFashionMnistSaysWhichPackageToInstall) {
  EXPECT_THAT(LoadFashionMnist(MakeTempDir("nothing-here") + "/fashion-mnist"),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("apt-get install dataset-fashion-mnist")));
}

TEST(LoadTest, LoadsInstalledFashionMnist) {
  if (!std::filesystem::exists(kFashionMnistDir)) {
    GTEST_SKIP() << kFashionMnistDir << " absent (dataset-fashion-mnist)";
  }
  GAN_ASSERT_OK_AND_ASSIGN(ImageDataset d, LoadFashionMnist());
  EXPECT_EQ(d.name(), "fashion-mnist");
  EXPECT_EQ(d.size(), 60000);
  EXPECT_EQ(d.height(), 28);
  EXPECT_EQ(d.width(), 28);
  EXPECT_EQ(d.channels(), 1);
}

}  // namespace
}  // namespace gan
