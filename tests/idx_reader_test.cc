#include "io/idx_reader.h"

#include <zlib.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <new>
#include <string>
#include <vector>

#include "core/random.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/test_util.h"

// Records the largest single allocation so a test can prove the reader never sizes its buffer
// from an unverified header. Replaces the global operator new for this test binary only.
static std::atomic<size_t> g_largest_allocation{0};

// GCC cannot see that this new and delete pair up (it reports malloc/free as mismatched).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

void* operator new(size_t size) {
  size_t largest = g_largest_allocation.load();
  while (size > largest && !g_largest_allocation.compare_exchange_weak(largest, size)) {
  }
  void* p = std::malloc(size == 0 ? 1 : size);
  if (p == nullptr) std::abort();
  return p;
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }
#pragma GCC diagnostic pop

namespace gan {
namespace {

using ::gan::testing::IsOk;
using ::gan::testing::MakeTempDir;
using ::gan::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

// An IDX file: 00 00 <type> <rank>, big-endian dims, then the payload.
std::vector<uint8_t> IdxBytes(const std::vector<uint32_t>& dims,
                              const std::vector<uint8_t>& payload, uint8_t type = 0x08) {
  std::vector<uint8_t> bytes = {0, 0, type, static_cast<uint8_t>(dims.size())};
  for (uint32_t d : dims) {
    for (int shift = 24; shift >= 0; shift -= 8) bytes.push_back(static_cast<uint8_t>(d >> shift));
  }
  bytes.insert(bytes.end(), payload.begin(), payload.end());
  return bytes;
}

IdxLimits MaxBytes(uint64_t max_bytes) {
  IdxLimits limits;
  limits.max_bytes = max_bytes;
  return limits;
}

std::vector<uint8_t> Pattern(size_t n) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(SplitMix64(i));
  return v;
}

std::string WriteRaw(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  return path;
}

std::string WriteGzip(const std::string& path, const std::vector<uint8_t>& bytes) {
  gzFile file = gzopen(path.c_str(), "wb");
  EXPECT_NE(file, nullptr);
  EXPECT_EQ(gzwrite(file, bytes.data(), static_cast<unsigned>(bytes.size())),
            static_cast<int>(bytes.size()));
  EXPECT_EQ(gzclose(file), Z_OK);
  return path;
}

std::vector<uint8_t> ReadBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

TEST(IdxReaderTest, ReadsRawIdx3) {
  const std::vector<uint8_t> payload = Pattern(3 * 4 * 5);
  const std::string path = WriteRaw(MakeTempDir("idx") + "/images", IdxBytes({3, 4, 5}, payload));
  GAN_ASSERT_OK_AND_ASSIGN(IdxArray array, ReadIdxFile(path));
  EXPECT_THAT(array.dims, ElementsAre(3, 4, 5));
  EXPECT_EQ(array.data, payload);
}

TEST(IdxReaderTest, ReadsGzipIdx3) {
  const std::vector<uint8_t> payload = Pattern(7 * 28 * 28);
  const std::string path =
      WriteGzip(MakeTempDir("idx") + "/images.gz", IdxBytes({7, 28, 28}, payload));
  GAN_ASSERT_OK_AND_ASSIGN(IdxArray array, ReadIdxFile(path));
  EXPECT_THAT(array.dims, ElementsAre(7, 28, 28));
  EXPECT_EQ(array.data, payload);
}

TEST(IdxReaderTest, ReadsIdx1Labels) {
  const std::vector<uint8_t> labels = {3, 1, 4, 1, 5, 9, 2, 6, 5, 3};
  const std::string path = WriteRaw(MakeTempDir("idx") + "/labels", IdxBytes({10}, labels));
  GAN_ASSERT_OK_AND_ASSIGN(IdxArray array, ReadIdxFile(path));
  EXPECT_THAT(array.dims, ElementsAre(10));
  EXPECT_EQ(array.data, labels);
}

TEST(IdxReaderTest, TruncatedPayloadIsInvalidArgument) {
  std::vector<uint8_t> bytes = IdxBytes({3, 4, 5}, Pattern(60));
  bytes.pop_back();
  const std::string path = WriteRaw(MakeTempDir("idx") + "/images", bytes);
  EXPECT_THAT(ReadIdxFile(path),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr(path + ": header claims 3x4x5 = 60 bytes but the file holds 59")));
}

TEST(IdxReaderTest, TruncatedHeaderIsInvalidArgument) {
  const std::string dir = MakeTempDir("idx");
  EXPECT_THAT(ReadIdxFile(WriteRaw(dir + "/empty", {})),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("too short")));
  EXPECT_THAT(ReadIdxFile(WriteRaw(dir + "/short", {0, 0, 8, 3, 0, 0, 0, 1})),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("header truncated")));
}

TEST(IdxReaderTest, WrongMagicIsInvalidArgument) {
  std::vector<uint8_t> bytes = IdxBytes({4}, Pattern(4));
  bytes[1] = 0x42;
  const std::string path = WriteRaw(MakeTempDir("idx") + "/labels", bytes);
  EXPECT_THAT(ReadIdxFile(path), StatusIs(absl::StatusCode::kInvalidArgument,
                                          HasSubstr(path + ": bad magic 00 42 08 01")));
}

TEST(IdxReaderTest, WrongTypeCodeIsInvalidArgument) {
  const std::string path =
      WriteRaw(MakeTempDir("idx") + "/floats", IdxBytes({2}, Pattern(8), /*type=*/0x0D));
  EXPECT_THAT(ReadIdxFile(path),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("element type 0x0d")));
}

TEST(IdxReaderTest, UnsupportedRankIsInvalidArgument) {
  const std::string path =
      WriteRaw(MakeTempDir("idx") + "/rank4", IdxBytes({1, 1, 1, 1}, Pattern(1)));
  EXPECT_THAT(ReadIdxFile(path),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("rank 4")));
}

TEST(IdxReaderTest, ZeroDimensionIsInvalidArgument) {
  const std::string path = WriteRaw(MakeTempDir("idx") + "/images", IdxBytes({5, 0, 28}, {}));
  EXPECT_THAT(ReadIdxFile(path), StatusIs(absl::StatusCode::kInvalidArgument,
                                          HasSubstr("zero dimension (5x0x28)")));
}

TEST(IdxReaderTest, HugeClaimInTinyFileFailsWithoutAllocatingIt) {
  // 1000x1000x1000 = 1e9 bytes claimed, 4 present, and a limit that would allow the claim.
  const std::string path =
      WriteRaw(MakeTempDir("idx") + "/images", IdxBytes({1000, 1000, 1000}, Pattern(4)));
  g_largest_allocation = 0;
  const absl::StatusOr<IdxArray> result = ReadIdxFile(path, MaxBytes(1ull << 31));
  const size_t largest = g_largest_allocation;
  EXPECT_THAT(result, StatusIs(absl::StatusCode::kInvalidArgument,
                               HasSubstr("1000x1000x1000 = 1000000000 bytes but the file holds 4")));
  EXPECT_LE(largest, size_t{16} << 20);
}

TEST(IdxReaderTest, TrailingBytesAreInvalidArgument) {
  std::vector<uint8_t> bytes = IdxBytes({2, 2, 2}, Pattern(8));
  bytes.insert(bytes.end(), {1, 2, 3});
  const std::string dir = MakeTempDir("idx");
  for (const std::string& path : {WriteRaw(dir + "/raw", bytes), WriteGzip(dir + "/gz", bytes)}) {
    EXPECT_THAT(ReadIdxFile(path), StatusIs(absl::StatusCode::kInvalidArgument,
                                            HasSubstr("3 trailing bytes after the 2x2x2")));
  }
}

TEST(IdxReaderTest, PayloadOverLimitIsInvalidArgument) {
  const std::string dir = MakeTempDir("idx");
  const std::string path = WriteRaw(dir + "/labels", IdxBytes({100}, Pattern(100)));
  EXPECT_THAT(ReadIdxFile(path, MaxBytes(99)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("limit of 99")));
  EXPECT_THAT(ReadIdxFile(path, MaxBytes(100)), IsOk());
  // 2^96 does not fit in 64 bits: rejected, not wrapped around.
  const std::string huge =
      WriteRaw(dir + "/huge", IdxBytes({0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF}, {}));
  EXPECT_THAT(ReadIdxFile(huge, MaxBytes(~uint64_t{0})),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("more than the limit")));
}

TEST(IdxReaderTest, MissingFileIsNotFound) {
  const std::string path = MakeTempDir("idx") + "/no-such-file.gz";
  EXPECT_THAT(ReadIdxFile(path), StatusIs(absl::StatusCode::kNotFound, HasSubstr(path)));
}

TEST(IdxReaderTest, CorruptGzipIsDataLoss) {
  const std::string dir = MakeTempDir("idx");
  const std::string good = WriteGzip(dir + "/good.gz", IdxBytes({100, 28, 28}, Pattern(78400)));
  std::vector<uint8_t> bytes = ReadBytes(good);
  ASSERT_GT(bytes.size(), 1000u);
  for (size_t i = bytes.size() / 2; i < bytes.size() / 2 + 8; ++i) bytes[i] ^= 0x5A;
  const std::string path = WriteRaw(dir + "/corrupt.gz", bytes);
  EXPECT_THAT(ReadIdxFile(path), StatusIs(absl::StatusCode::kDataLoss, HasSubstr(path)));
}

TEST(IdxReaderTest, CutGzipStreamIsDataLoss) {
  const std::string dir = MakeTempDir("idx");
  std::vector<uint8_t> bytes =
      ReadBytes(WriteGzip(dir + "/good.gz", IdxBytes({100, 28, 28}, Pattern(78400))));
  bytes.resize(bytes.size() / 2);
  const std::string path = WriteRaw(dir + "/cut.gz", bytes);
  EXPECT_THAT(ReadIdxFile(path), StatusIs(absl::StatusCode::kDataLoss, HasSubstr(path)));
}

TEST(IdxReaderTest, ReadsInstalledFashionMnist) {
  const std::string dir = "/usr/share/datasets/fashion-mnist";
  if (!std::filesystem::exists(dir)) GTEST_SKIP() << dir << " absent (dataset-fashion-mnist)";
  GAN_ASSERT_OK_AND_ASSIGN(IdxArray images, ReadIdxFile(dir + "/train-images-idx3-ubyte.gz"));
  EXPECT_THAT(images.dims, ElementsAre(60000, 28, 28));
  EXPECT_EQ(images.data.size(), 60000u * 28 * 28);
  GAN_ASSERT_OK_AND_ASSIGN(IdxArray labels, ReadIdxFile(dir + "/train-labels-idx1-ubyte.gz"));
  EXPECT_THAT(labels.dims, ElementsAre(60000));
  for (uint8_t label : labels.data) ASSERT_LT(label, 10);
}

}  // namespace
}  // namespace gan
