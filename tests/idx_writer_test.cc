#include "io/idx_writer.h"

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "io/idx_reader.h"

namespace gan {
namespace {

class IdxWriterTest : public ::testing::Test {
 protected:
  std::string Path(const std::string& name) {
    return (std::filesystem::path(::testing::TempDir()) / name).string();
  }
};

TEST_F(IdxWriterTest, ReaderReturnsWhatWasWritten) {
  std::vector<uint8_t> pixels(2 * 3 * 4);
  for (size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<uint8_t>(i * 11);
  const std::string path = Path("written.idx");
  ASSERT_TRUE(WriteIdxFile(path, {2, 3, 4}, pixels).ok());

  const absl::StatusOr<IdxArray> read = ReadIdxFile(path);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->dims, (std::vector<int64_t>{2, 3, 4}));
  EXPECT_EQ(read->data, pixels);
  EXPECT_EQ(std::filesystem::file_size(path), 4 + 3 * 4 + pixels.size());
}

TEST_F(IdxWriterTest, RefusesDimensionsThatDoNotDescribeTheData) {
  const std::vector<uint8_t> pixels(10);
  const std::string path = Path("refused.idx");
  EXPECT_EQ(WriteIdxFile(path, {3, 3}, pixels).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(WriteIdxFile(path, {}, pixels).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(WriteIdxFile(path, {1, 1, 2, 5}, pixels).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(WriteIdxFile(path, {0, 10}, pixels).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(WriteIdxFile(path, {-2, -5}, pixels).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(std::filesystem::exists(path));
}

TEST_F(IdxWriterTest, HugeDimensionsDoNotOverflowIntoAMatch) {
  // 2^32-1 cubed overflows 64 bits; the writer must stop multiplying once past the data size.
  const std::vector<uint8_t> pixels(1);
  EXPECT_EQ(WriteIdxFile(Path("huge.idx"), {0xffffffff, 0xffffffff, 0xffffffff}, pixels).code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace gan
