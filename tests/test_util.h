#ifndef GAN_TESTS_TEST_UTIL_H_
#define GAN_TESTS_TEST_UTIL_H_

// Shared test helpers: status matchers (Abseil 20220623 has none) and test data paths.

#include <algorithm>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/gan_trainer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace gan::testing {

// Directory of committed test data (tests/data).
std::string TestDataPath(const std::string& relative);

// File names in a directory, sorted.
std::vector<std::string> DirectoryNames(const std::string& dir);

// A fresh empty directory under the test's temporary directory.
std::string MakeTempDir(const std::string& name);
// A fresh empty directory for a whole suite (SetUpTestSuite, where no test is running yet),
// named after `suite` and this process: ctest runs each case of a suite as its own process, in
// parallel, so a directory per suite name alone would be shared and removed under the others.
std::string MakeSuiteTempDir(const std::string& suite);

// Expects |actual - expected| <= atol + rtol * |expected| elementwise, and reports the largest
// difference (and where) so a failure says how far off it is.
void ExpectAllClose(const std::string& what, const float* actual, const float* expected, size_t n,
                    double atol = 1e-5, double rtol = 1e-4);
inline void ExpectAllClose(const std::string& what, const std::vector<float>& actual,
                           const std::vector<float>& expected, double atol = 1e-5,
                           double rtol = 1e-4) {
  EXPECT_EQ(actual.size(), expected.size()) << what;
  ExpectAllClose(what, actual.data(), expected.data(), std::min(actual.size(), expected.size()),
                 atol, rtol);
}

// Expects two steps' metrics to be equal bit for bit (determinism and resume checks).
void ExpectBitwiseEqual(const ::gan::StepMetrics& actual, const ::gan::StepMetrics& expected);

inline const absl::Status& GetStatus(const absl::Status& status) { return status; }
template <typename T>
const absl::Status& GetStatus(const absl::StatusOr<T>& status_or) {
  return status_or.status();
}

// EXPECT_THAT(result, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("layers[3]")));
MATCHER_P2(StatusIs, code, message_matcher, "") {
  const absl::Status& status = ::gan::testing::GetStatus(arg);
  *result_listener << "status is " << status;
  return status.code() == code &&
         ::testing::ExplainMatchResult(message_matcher, std::string(status.message()),
                                       result_listener);
}

MATCHER(IsOk, "") {
  const absl::Status& status = ::gan::testing::GetStatus(arg);
  *result_listener << "status is " << status;
  return status.ok();
}

}  // namespace gan::testing

#define GAN_ASSERT_OK_AND_ASSIGN(lhs, expr) \
  GAN_ASSERT_OK_AND_ASSIGN_IMPL_(GAN_TEST_CONCAT_(gan_test_so_, __LINE__), lhs, expr)
#define GAN_TEST_CONCAT_INNER_(a, b) a##b
#define GAN_TEST_CONCAT_(a, b) GAN_TEST_CONCAT_INNER_(a, b)
#define GAN_ASSERT_OK_AND_ASSIGN_IMPL_(so, lhs, expr) \
  auto so = (expr);                                   \
  ASSERT_TRUE(so.ok()) << so.status();                \
  lhs = std::move(so).value()

#endif  // GAN_TESTS_TEST_UTIL_H_
