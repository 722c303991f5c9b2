#include "tests/test_util.h"

#include <filesystem>

#include "gtest/gtest.h"

namespace gan::testing {

std::string TestDataPath(const std::string& relative) {
  return std::string(GAN_TEST_DATA_DIR) + "/" + relative;
}

std::string MakeTempDir(const std::string& name) {
  const ::testing::TestInfo* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::filesystem::path dir = std::filesystem::path(::testing::TempDir()) /
                              (std::string(info->test_suite_name()) + "." + info->name()) / name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir.string();
}

}  // namespace gan::testing
