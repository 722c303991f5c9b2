#include "io/atomic_file.h"

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/test_util.h"

namespace gan {
namespace {

using ::gan::testing::IsOk;
using ::gan::testing::MakeTempDir;
using ::gan::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::string> ListDir(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    names.push_back(entry.path().filename().string());
  }
  return names;
}

class AtomicFileTest : public ::testing::Test {
 protected:
  void TearDown() override { SetAtomicWriteFaultForTesting(AtomicWriteStage::kNone); }
};

TEST_F(AtomicFileTest, CreatesNewFile) {
  const std::string dir = MakeTempDir("atomic");
  const std::string path = dir + "/ckpt.safetensors";
  const std::string contents("binary\0data", 11);
  ASSERT_THAT(WriteFileAtomically(path, contents), IsOk());
  EXPECT_EQ(ReadFile(path), contents);
  EXPECT_THAT(ListDir(dir), ElementsAre("ckpt.safetensors"));
}

TEST_F(AtomicFileTest, OverwritesExistingFile) {
  const std::string dir = MakeTempDir("atomic");
  const std::string path = dir + "/f";
  ASSERT_THAT(WriteFileAtomically(path, "a much longer old content"), IsOk());
  ASSERT_THAT(WriteFileAtomically(path, "new"), IsOk());
  EXPECT_EQ(ReadFile(path), "new");
  EXPECT_THAT(ListDir(dir), ElementsAre("f"));
}

TEST_F(AtomicFileTest, WritesEmptyAndLargeContents) {
  const std::string path = MakeTempDir("atomic") + "/f";
  ASSERT_THAT(WriteFileAtomically(path, ""), IsOk());
  EXPECT_EQ(ReadFile(path), "");
  const std::string large(8 << 20, 'x');
  ASSERT_THAT(WriteFileAtomically(path, large), IsOk());
  EXPECT_EQ(ReadFile(path), large);
}

// A failure before the rename leaves the old file intact and no temp file behind.
class AtomicFileFaultTest : public AtomicFileTest,
                            public ::testing::WithParamInterface<AtomicWriteStage> {};

TEST_P(AtomicFileFaultTest, FailureBeforeRenameKeepsOldContents) {
  const std::string dir = MakeTempDir("atomic");
  const std::string path = dir + "/f";
  ASSERT_THAT(WriteFileAtomically(path, "old"), IsOk());

  SetAtomicWriteFaultForTesting(GetParam());
  EXPECT_THAT(WriteFileAtomically(path, "new contents"),
              StatusIs(absl::StatusCode::kInternal, HasSubstr("injected fault")));
  EXPECT_EQ(ReadFile(path), "old");
  EXPECT_THAT(ListDir(dir), ElementsAre("f"));

  // The fault fires once; the next write succeeds.
  ASSERT_THAT(WriteFileAtomically(path, "new contents"), IsOk());
  EXPECT_EQ(ReadFile(path), "new contents");
}

INSTANTIATE_TEST_SUITE_P(Stages, AtomicFileFaultTest,
                         ::testing::Values(AtomicWriteStage::kAfterWrite,
                                           AtomicWriteStage::kAfterFsync),
                         [](const ::testing::TestParamInfo<AtomicWriteStage>& info) {
                           switch (info.param) {
                             case AtomicWriteStage::kAfterWrite:
                               return std::string("after_write");
                             case AtomicWriteStage::kAfterFsync:
                               return std::string("after_fsync");
                             default:
                               return std::to_string(static_cast<int>(info.param));
                           }
                         });

TEST_F(AtomicFileTest, FailureAfterRenameLeavesWholeNewContents) {
  // The rename is the commit point: the error is reported (the directory was not synced), but the
  // file holds the complete new contents, never a mix, and no temp file remains.
  const std::string dir = MakeTempDir("atomic");
  const std::string path = dir + "/f";
  ASSERT_THAT(WriteFileAtomically(path, "old"), IsOk());
  SetAtomicWriteFaultForTesting(AtomicWriteStage::kAfterRename);
  EXPECT_THAT(WriteFileAtomically(path, "new contents"),
              StatusIs(absl::StatusCode::kInternal, HasSubstr("after rename")));
  EXPECT_EQ(ReadFile(path), "new contents");
  EXPECT_THAT(ListDir(dir), ElementsAre("f"));
}

TEST_F(AtomicFileTest, MissingDirectoryFailsCleanly) {
  const std::string dir = MakeTempDir("atomic");
  const std::string path = dir + "/missing/f";
  EXPECT_THAT(WriteFileAtomically(path, "x"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("missing")));
  EXPECT_TRUE(ListDir(dir).empty());
}

TEST_F(AtomicFileTest, TargetIsDirectoryFailsAndCleansUp) {
  const std::string dir = MakeTempDir("atomic");
  std::filesystem::create_directory(dir + "/sub");
  EXPECT_FALSE(WriteFileAtomically(dir + "/sub", "x").ok());
  EXPECT_THAT(ListDir(dir), ElementsAre("sub"));
}

TEST_F(AtomicFileTest, WriterAppendsPiecesAndCommitsOnce) {
  const std::string dir = MakeTempDir("atomic");
  const std::string path = dir + "/f";
  ASSERT_THAT(WriteFileAtomically(path, "old"), IsOk());
  absl::StatusOr<AtomicFileWriter> writer = AtomicFileWriter::Create(path);
  ASSERT_THAT(writer.status(), IsOk());
  ASSERT_THAT(writer->Append("new "), IsOk());
  ASSERT_THAT(writer->Append(std::string(1 << 20, 'x')), IsOk());
  EXPECT_EQ(ReadFile(path), "old") << "visible before the commit";
  ASSERT_THAT(writer->Commit(), IsOk());
  EXPECT_EQ(ReadFile(path), "new " + std::string(1 << 20, 'x'));
  EXPECT_THAT(ListDir(dir), ElementsAre("f"));
  EXPECT_THAT(writer->Append("more"),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("committed")));
  EXPECT_THAT(writer->Commit(),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("committed")));
}

TEST_F(AtomicFileTest, WriterDroppedWithoutCommitLeavesTheOldFile) {
  const std::string dir = MakeTempDir("atomic");
  const std::string path = dir + "/f";
  ASSERT_THAT(WriteFileAtomically(path, "old"), IsOk());
  {
    absl::StatusOr<AtomicFileWriter> writer = AtomicFileWriter::Create(path);
    ASSERT_THAT(writer.status(), IsOk());
    ASSERT_THAT(writer->Append("half of the new"), IsOk());
    AtomicFileWriter moved = *std::move(writer);  // the moved-from writer owns nothing
    EXPECT_EQ(ListDir(dir).size(), 2u);           // f and the temp file
  }
  EXPECT_EQ(ReadFile(path), "old");
  EXPECT_THAT(ListDir(dir), ElementsAre("f"));
}

TEST_F(AtomicFileTest, WriterFaultsLeaveTheOldFile) {
  for (AtomicWriteStage stage : {AtomicWriteStage::kAfterWrite, AtomicWriteStage::kAfterFsync}) {
    const std::string dir = MakeTempDir("atomic");
    const std::string path = dir + "/f";
    ASSERT_THAT(WriteFileAtomically(path, "old"), IsOk());
    absl::StatusOr<AtomicFileWriter> writer = AtomicFileWriter::Create(path);
    ASSERT_THAT(writer.status(), IsOk());
    ASSERT_THAT(writer->Append("new"), IsOk());
    SetAtomicWriteFaultForTesting(stage);
    EXPECT_THAT(writer->Commit(), StatusIs(absl::StatusCode::kInternal, HasSubstr("injected")));
    EXPECT_EQ(ReadFile(path), "old");
    EXPECT_THAT(ListDir(dir), ElementsAre("f"));
  }
}

TEST_F(AtomicFileTest, WriterCreateFailsInAMissingDirectory) {
  const std::string dir = MakeTempDir("atomic");
  EXPECT_THAT(AtomicFileWriter::Create(dir + "/missing/f").status(),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("missing")));
}

}  // namespace
}  // namespace gan
