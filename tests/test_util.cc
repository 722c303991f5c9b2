#include "tests/test_util.h"

#include <cmath>
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

void ExpectAllClose(const std::string& what, const float* actual, const float* expected,
                    size_t n, double atol, double rtol) {
  double max_diff = 0;
  size_t worst = 0, failures = 0;
  for (size_t i = 0; i < n; ++i) {
    const double diff = std::fabs(static_cast<double>(actual[i]) - expected[i]);
    if (!(diff <= atol + rtol * std::fabs(expected[i]))) ++failures;  // NaN fails too
    if (!(diff <= max_diff)) max_diff = diff, worst = i;
  }
  EXPECT_EQ(failures, 0u) << what << ": " << failures << " of " << n
                          << " elements out of tolerance; largest difference " << max_diff
                          << " at [" << worst << "]: " << (n ? actual[worst] : 0) << " vs "
                          << (n ? expected[worst] : 0);
}

}  // namespace gan::testing
