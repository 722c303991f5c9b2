#include "tests/test_util.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace gan::testing {

std::string TestDataPath(const std::string& relative) {
  return std::string(GAN_TEST_DATA_DIR) + "/" + relative;
}

std::vector<std::string> DirectoryNames(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    names.push_back(entry.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

std::string MakeTempDir(const std::string& name) {
  const ::testing::TestInfo* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::filesystem::path dir = std::filesystem::path(::testing::TempDir()) /
                              (std::string(info->test_suite_name()) + "." + info->name()) / name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir.string();
}

std::string MakeSuiteTempDir(const std::string& suite) {
  std::filesystem::path dir =
      std::filesystem::path(::testing::TempDir()) / absl::StrCat(suite, ".", ::getpid());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir.string();
}

void ExpectAllClose(const std::string& what, const float* actual, const float* expected, size_t n,
                    double atol, double rtol) {
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

namespace {

template <typename T>
bool SameBits(T a, T b) {
  return std::memcmp(&a, &b, sizeof(T)) == 0;
}

}  // namespace

void ExpectBitwiseEqual(const ::gan::StepMetrics& a, const ::gan::StepMetrics& b) {
  EXPECT_EQ(a.step, b.step);
  EXPECT_TRUE(SameBits(a.d_loss, b.d_loss)) << a.d_loss << " vs " << b.d_loss;
  EXPECT_TRUE(SameBits(a.g_loss, b.g_loss)) << a.g_loss << " vs " << b.g_loss;
  EXPECT_TRUE(SameBits(a.d_real, b.d_real)) << a.d_real << " vs " << b.d_real;
  EXPECT_TRUE(SameBits(a.d_fake, b.d_fake)) << a.d_fake << " vs " << b.d_fake;
  EXPECT_TRUE(SameBits(a.d_accuracy, b.d_accuracy)) << a.d_accuracy << " vs " << b.d_accuracy;
  ASSERT_EQ(a.grad_norms.size(), b.grad_norms.size());
  for (size_t i = 0; i < a.grad_norms.size(); ++i) {
    EXPECT_EQ(a.grad_norms[i].layer, b.grad_norms[i].layer);
    EXPECT_TRUE(SameBits(a.grad_norms[i].norm, b.grad_norms[i].norm))
        << a.grad_norms[i].layer << ": " << a.grad_norms[i].norm << " vs " << b.grad_norms[i].norm;
  }
}

}  // namespace gan::testing
