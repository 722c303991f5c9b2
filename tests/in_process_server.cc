#include "tests/in_process_server.h"

#include "absl/strings/str_cat.h"
#include "tests/test_util.h"

namespace gan::testing {

void InProcessServerTest::SetUp() {
  options_.listen = "127.0.0.1:0";
  options_.metrics_listen = "";
  options_.data_dir =
      MakeTempDir(::testing::UnitTest::GetInstance()->current_test_info()->name()) + "/data";
  options_.default_dataset = "synthetic";
  options_.threads_per_job = 1;
  options_.checkpoint_every = 5;
}

void InProcessServerTest::Start() {
  auto server = gan::server::Server::BuildAndStart(options_);
  ASSERT_TRUE(server.ok()) << server.status();
  server_ = *std::move(server);
  channel_ = grpc::CreateChannel(absl::StrCat("127.0.0.1:", server_->port()),
                                 grpc::InsecureChannelCredentials());
  training_ = gan::v1::TrainingService::NewStub(channel_);
  scoring_ = gan::v1::ScoringService::NewStub(channel_);
}

}  // namespace gan::testing
