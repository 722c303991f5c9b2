#ifndef GAN_TESTS_TEST_UTIL_H_
#define GAN_TESTS_TEST_UTIL_H_

// Shared test helpers: status matchers (Abseil 20220623 has none) and test data paths.

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gmock/gmock.h"

namespace gan::testing {

// Directory of committed test data (tests/data).
std::string TestDataPath(const std::string& relative);

// A fresh empty directory under the test's temporary directory.
std::string MakeTempDir(const std::string& name);

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

#define GAN_ASSERT_OK_AND_ASSIGN(lhs, expr)                                   \
  GAN_ASSERT_OK_AND_ASSIGN_IMPL_(GAN_TEST_CONCAT_(gan_test_so_, __LINE__), lhs, expr)
#define GAN_TEST_CONCAT_INNER_(a, b) a##b
#define GAN_TEST_CONCAT_(a, b) GAN_TEST_CONCAT_INNER_(a, b)
#define GAN_ASSERT_OK_AND_ASSIGN_IMPL_(so, lhs, expr) \
  auto so = (expr);                                   \
  ASSERT_TRUE(so.ok()) << so.status();                \
  lhs = std::move(so).value()

#endif  // GAN_TESTS_TEST_UTIL_H_
