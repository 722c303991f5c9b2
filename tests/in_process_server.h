#ifndef GAN_TESTS_IN_PROCESS_SERVER_H_
#define GAN_TESTS_IN_PROCESS_SERVER_H_

// A fixture running gan::server::Server in the test's own process on a free loopback port, with
// stubs on one channel to it. SetUp fills options_ with small-test defaults (no metrics, the
// synthetic dataset, one thread per job, a checkpoint every 5 steps, a fresh data dir); a test
// changes options_ and then calls Start().

#include <memory>

#include "gan/v1/service.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "server/server.h"

namespace gan::testing {

class InProcessServerTest : public ::testing::Test {
 protected:
  void SetUp() override;
  // Starts the server with options_ and connects the stubs (fails the test if it cannot).
  void Start();

  gan::server::Options options_;
  std::unique_ptr<gan::server::Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<gan::v1::TrainingService::Stub> training_;
  std::unique_ptr<gan::v1::ScoringService::Stub> scoring_;
};

}  // namespace gan::testing

#endif  // GAN_TESTS_IN_PROCESS_SERVER_H_
