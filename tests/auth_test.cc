// Token files, bearer-token authentication and the role table.

#include "server/auth.h"

#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/test_util.h"

namespace gan::server {
namespace {

using ::gan::testing::IsOk;
using ::gan::testing::MakeTempDir;
using ::gan::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::Not;

std::string HexSha256(const std::string& token) { return absl::BytesToHexString(Sha256(token)); }

TEST(Sha256Test, KnownVector) {
  EXPECT_EQ(HexSha256("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(TokenTableTest, ParsesRolesPrincipalsCommentsAndBlankLines) {
  const std::string file = "# who may do what\n\nadmin ops " + HexSha256("t-admin") +
                           "\ntrainer alice " + HexSha256("t-alice") + "  # alice's CI\n" +
                           "viewer\tbob\t" + HexSha256("t-bob") + "\n";
  GAN_ASSERT_OK_AND_ASSIGN(const TokenTable table, TokenTable::Parse(file, "tokens.txt"));
  EXPECT_EQ(table.size(), 3u);
  const Principal* alice = table.Find("t-alice");
  ASSERT_NE(alice, nullptr);
  EXPECT_EQ(alice->name, "alice");
  EXPECT_EQ(alice->role, Role::kTrainer);
  ASSERT_NE(table.Find("t-bob"), nullptr);
  EXPECT_EQ(table.Find("t-bob")->role, Role::kViewer);
  EXPECT_EQ(table.Find("t-admin")->role, Role::kAdmin);
  EXPECT_EQ(table.Find("t-unknown"), nullptr);
  EXPECT_EQ(table.Find(""), nullptr);
}

TEST(TokenTableTest, MalformedLinesNameTheLineButNeverEchoIt) {
  const std::string hash = HexSha256("secret-token");
  for (const std::string& bad : std::vector<std::string>{
           "admin ops", "root ops " + hash, "admin o/ps " + hash, "admin ops " + hash.substr(1),
           "admin ops " + hash + " extra", "admin ops zz" + hash.substr(2)}) {
    absl::StatusOr<TokenTable> table = TokenTable::Parse("# header\n" + bad + "\n", "f.txt");
    EXPECT_THAT(table, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("f.txt line 2")))
        << bad;
    EXPECT_THAT(table.status().message(), Not(HasSubstr(hash.substr(8, 16)))) << bad;
  }
  EXPECT_THAT(TokenTable::Parse("admin a " + hash + "\nviewer b " + hash + "\n", "f"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("twice")));
}

TEST(RoleTest, ViewersReadAndInferOnly) {
  for (Permission p :
       {Permission::kSubmit, Permission::kCancel, Permission::kRead, Permission::kInfer}) {
    EXPECT_TRUE(Allows(Role::kAdmin, p));
    EXPECT_TRUE(Allows(Role::kTrainer, p));
  }
  EXPECT_FALSE(Allows(Role::kViewer, Permission::kSubmit));
  EXPECT_FALSE(Allows(Role::kViewer, Permission::kCancel));
  EXPECT_TRUE(Allows(Role::kViewer, Permission::kRead));
  EXPECT_TRUE(Allows(Role::kViewer, Permission::kInfer));
  EXPECT_TRUE((Principal{"x", Role::kAdmin}).SeesJobsOf("y"));
  EXPECT_TRUE((Principal{"x", Role::kViewer}).SeesJobsOf("x"));
  EXPECT_FALSE((Principal{"x", Role::kTrainer}).SeesJobsOf("y"));
}

TEST(AuthenticatorTest, BearerTokensAndReload) {
  const std::string path = MakeTempDir("auth_test") + "/tokens";
  { std::ofstream(path) << "trainer alice " << HexSha256("t-alice") << "\n"; }
  GAN_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Authenticator> auth, Authenticator::Create(path));
  GAN_ASSERT_OK_AND_ASSIGN(const Principal alice, auth->Authenticate("Bearer t-alice"));
  EXPECT_EQ(alice.name, "alice");
  EXPECT_THAT(auth->Authenticate(""),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("missing")));
  EXPECT_THAT(auth->Authenticate("Basic t-alice"),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("Bearer")));
  absl::StatusOr<Principal> wrong = auth->Authenticate("Bearer t-mallory");
  EXPECT_THAT(wrong, StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("unknown token")));
  EXPECT_THAT(wrong.status().message(), Not(HasSubstr("t-mallory")));

  // A new file takes effect on Reload; a broken one leaves the previous table in force.
  { std::ofstream(path) << "viewer bob " << HexSha256("t-bob") << "\n"; }
  ASSERT_THAT(auth->Reload(), IsOk());
  EXPECT_THAT(auth->Authenticate("Bearer t-alice"),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("unknown")));
  EXPECT_THAT(auth->Authenticate("Bearer t-bob"), IsOk());
  { std::ofstream(path) << "viewer bob not-a-hash\n"; }
  EXPECT_THAT(auth->Reload(), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("line 1")));
  EXPECT_THAT(auth->Authenticate("Bearer t-bob"), IsOk());
  EXPECT_THAT(Authenticator::Create(path + ".missing").status(),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("--auth_tokens")));
}

}  // namespace
}  // namespace gan::server
