// gan-server's flag parsing: no string option may swallow the flag after it. CLI11 2.1 alone
// reads `--metrics_listen= --max_sample_count=10000` as the metrics address "--max_sample_count=
// 10000", silently leaving the sample limit at its default.

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/child_process.h"
#include "tests/test_util.h"

namespace gan::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

struct StringFlagCase {
  std::string flag;
  bool empty_is_valid;  // the server starts with it empty
};

void PrintTo(const StringFlagCase& c, std::ostream* os) { *os << "--" << c.flag; }

class ServerStringFlagTest : public ::testing::TestWithParam<StringFlagCase> {};

TEST_P(ServerStringFlagTest, AnEmptyValueNeverSwallowsTheNextFlag) {
  const StringFlagCase& c = GetParam();
  const std::string dir = MakeTempDir(absl::StrCat("server_flags_", c.flag));
  std::vector<std::string> argv = {BinaryNextToTests("gan-server"), "--listen=127.0.0.1:0",
                                   "--metrics_listen=", "--data_dir=" + dir + "/data",
                                   "--default_dataset=synthetic"};
  argv.push_back("--" + c.flag + "=");
  argv.push_back("--max_sample_count=7");
  ChildOptions options;
  options.capture_stderr = true;
  options.null_stdin = true;
  auto server = ChildProcess::Start(argv, options);
  ASSERT_TRUE(server.ok()) << server.status();
  if (c.empty_is_valid) {
    absl::StatusOr<std::string> line = (*server)->ReadLine(absl::Now() + absl::Seconds(30));
    ASSERT_TRUE(line.ok()) << line.status() << "\n" << (*server)->err();
    EXPECT_THAT(*line, HasSubstr("listening"));
    absl::StatusOr<int> status = (*server)->Terminate(absl::Seconds(30));
    ASSERT_TRUE(status.ok()) << status.status();
    EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << WaitStatusString(*status);
  } else {
    absl::StatusOr<int> status = (*server)->Wait(absl::Now() + absl::Seconds(30));
    ASSERT_TRUE(status.ok()) << status.status();
    EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 1) << WaitStatusString(*status);
    EXPECT_THAT((*server)->err(), HasSubstr("--" + c.flag)) << "the refusal names the flag";
  }
  // The flag after the empty one took effect, and was nobody's value.
  EXPECT_THAT((*server)->err(), HasSubstr("max_sample_count=7"));
  EXPECT_THAT((*server)->err(), Not(HasSubstr("=--max_sample_count")));
  EXPECT_THAT((*server)->err(), Not(HasSubstr("'--max_sample_count")));
}

INSTANTIATE_TEST_SUITE_P(
    EveryStringOption, ServerStringFlagTest,
    ::testing::Values(StringFlagCase{"metrics_listen", true}, StringFlagCase{"listen", false},
                      StringFlagCase{"data_dir", false}, StringFlagCase{"default_dataset", false},
                      StringFlagCase{"fashion_mnist_dir", false},
                      StringFlagCase{"log_format", false}),
    [](const ::testing::TestParamInfo<StringFlagCase>& info) { return info.param.flag; });

TEST(ServerLogFormatTest, JsonLogLinesAreJsonObjectsWithTimeLevelAndMessage) {
  const std::string dir = MakeTempDir("server_log_format_json");
  ChildOptions options;
  options.capture_stderr = true;
  options.null_stdin = true;
  auto server =
      ChildProcess::Start({BinaryNextToTests("gan-server"), "--listen=127.0.0.1:0",
                           "--metrics_listen=", "--data_dir=" + dir + "/data", "--log_format=json"},
                          options);
  ASSERT_TRUE(server.ok()) << server.status();
  ASSERT_TRUE((*server)->ReadLine(absl::Now() + absl::Seconds(30)).ok()) << (*server)->err();
  absl::StatusOr<int> status = (*server)->Terminate(absl::Seconds(30));
  ASSERT_TRUE(status.ok()) << status.status();
  std::vector<std::string> messages;
  for (absl::string_view line : absl::StrSplit((*server)->err(), '\n', absl::SkipEmpty())) {
    const nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    ASSERT_TRUE(j.is_object()) << "not a JSON object: " << line;
    EXPECT_TRUE(j.contains("time") && j.contains("level") && j.contains("msg")) << line;
    messages.push_back(j.value("msg", ""));
  }
  EXPECT_THAT(messages, ::testing::Contains("server starting"));
  EXPECT_THAT(messages, ::testing::Contains("server listening"));
  EXPECT_THAT(messages, ::testing::Contains("server stopped"));
}

}  // namespace
}  // namespace gan::testing
