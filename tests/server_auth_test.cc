// Identity, roles, tenants and transport security of an in-process Server: tokens from a token
// file, principals that cannot see each other's jobs, quotas (jobs and open streams per
// principal), TLS and mutual TLS with real certificates (scripts/make_secrets.sh), and the refusal
// to serve a network insecurely.

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gan/v1/service.grpc.pb.h"
#include "gmock/gmock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "inference/grpc_service.grpc.pb.h"
#include "server/auth.h"
#include "server/server.h"
#include "tests/metrics_scrape.h"
#include "tests/test_jobs.h"
#include "tests/test_util.h"

namespace gan::server {
namespace {

using ::gan::testing::MakeTempDir;
using ::gan::testing::StatusIs;
using ::gan::testing::TinyJob;
using ::testing::HasSubstr;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string HexSha256(const std::string& token) { return absl::BytesToHexString(Sha256(token)); }

// A client of one principal (or none) over one channel.
class Client {
 public:
  Client(std::shared_ptr<grpc::Channel> channel, std::string token)
      : channel_(std::move(channel)),
        token_(std::move(token)),
        training_(gan::v1::TrainingService::NewStub(channel_)),
        scoring_(gan::v1::ScoringService::NewStub(channel_)),
        inference_(inference::GRPCInferenceService::NewStub(channel_)),
        health_(grpc::health::v1::Health::NewStub(channel_)) {}

  void Prepare(grpc::ClientContext* context) const {
    context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    if (!token_.empty()) context->AddMetadata("authorization", "Bearer " + token_);
  }

  grpc::Status Submit(const gan::v1::JobSpec& spec, gan::v1::Job* job) {
    grpc::ClientContext context;
    Prepare(&context);
    gan::v1::SubmitJobRequest request;
    *request.mutable_spec() = spec;
    return training_->SubmitJob(&context, request, job);
  }
  grpc::Status Get(const std::string& job_id, gan::v1::Job* job) {
    grpc::ClientContext context;
    Prepare(&context);
    gan::v1::GetJobRequest request;
    request.set_job_id(job_id);
    return training_->GetJob(&context, request, job);
  }
  grpc::Status Cancel(const std::string& job_id) {
    grpc::ClientContext context;
    Prepare(&context);
    gan::v1::CancelJobRequest request;
    request.set_job_id(job_id);
    gan::v1::Job job;
    return training_->CancelJob(&context, request, &job);
  }
  grpc::Status List(const std::string& principal, gan::v1::ListJobsResponse* response) {
    grpc::ClientContext context;
    Prepare(&context);
    gan::v1::ListJobsRequest request;
    request.set_principal(principal);
    return training_->ListJobs(&context, request, response);
  }
  grpc::Status Score(const std::string& job_id) {
    grpc::ClientContext context;
    Prepare(&context);
    gan::v1::ScoreRequest request;
    request.set_job_id(job_id);
    for (int64_t d : {1, 28, 28, 1}) request.add_shape(d);
    request.set_uint8_pixels(std::string(784, '\x40'));
    gan::v1::ScoreResponse response;
    return scoring_->Score(&context, request, &response);
  }
  grpc::Status Sample(const std::string& job_id) {
    grpc::ClientContext context;
    Prepare(&context);
    gan::v1::SampleImagesRequest request;
    request.set_job_id(job_id);
    request.set_count(1);
    gan::v1::SampleImagesResponse response;
    return training_->SampleImages(&context, request, &response);
  }
  grpc::Status Export(const std::string& job_id) {
    grpc::ClientContext context;
    Prepare(&context);
    gan::v1::ExportModelRequest request;
    request.set_job_id(job_id);
    request.set_model(gan::v1::ExportModelRequest::MODEL_DISCRIMINATOR);
    auto reader = training_->ExportModel(&context, request);
    gan::v1::ExportModelResponse response;
    while (reader->Read(&response)) {
    }
    return reader->Finish();
  }
  grpc::Status Stream(const std::string& job_id) {
    grpc::ClientContext context;
    Prepare(&context);
    gan::v1::StreamMetricsRequest request;
    request.set_job_id(job_id);
    auto reader = training_->StreamMetrics(&context, request);
    gan::v1::MetricEvent event;
    while (reader->Read(&event)) {
    }
    return reader->Finish();
  }
  // A StreamMetrics call of `job_id` left open by the caller.
  struct HeldStream {
    grpc::ClientContext context;
    std::unique_ptr<grpc::ClientReader<gan::v1::MetricEvent>> reader;
    gan::v1::MetricEvent event;  // the latest read
    grpc::Status status;         // how it ended, once Read returned false
    bool ended = false;

    // Reads the next event; false (with `status` set) once the stream has ended.
    bool Next() {
      if (!ended && reader->Read(&event)) return true;
      if (!ended) status = reader->Finish();
      ended = true;
      return false;
    }
  };
  // Opens a stream and reads its first event, so that the server has taken it when this returns
  // with the stream still open (ended is false); a refused stream comes back ended.
  std::unique_ptr<HeldStream> Hold(const std::string& job_id) {
    auto held = std::make_unique<HeldStream>();
    Prepare(&held->context);
    gan::v1::StreamMetricsRequest request;
    request.set_job_id(job_id);
    held->reader = training_->StreamMetrics(&held->context, request);
    held->Next();
    return held;
  }
  grpc::Status Infer(const std::string& model) {
    grpc::ClientContext context;
    Prepare(&context);
    inference::ModelInferRequest request;
    request.set_model_name(model);
    auto* input = request.add_inputs();
    input->set_name("images");
    input->set_datatype("UINT8");
    for (int64_t d : {1, 28, 28, 1}) input->add_shape(d);
    request.add_raw_input_contents(std::string(784, '\x40'));
    inference::ModelInferResponse response;
    return inference_->ModelInfer(&context, request, &response);
  }
  grpc::Status Health() {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    grpc::health::v1::HealthCheckResponse response;
    return health_->Check(&context, {}, &response);
  }

 private:
  std::shared_ptr<grpc::Channel> channel_;
  std::string token_;
  std::unique_ptr<gan::v1::TrainingService::Stub> training_;
  std::unique_ptr<gan::v1::ScoringService::Stub> scoring_;
  std::unique_ptr<inference::GRPCInferenceService::Stub> inference_;
  std::unique_ptr<grpc::health::v1::Health::Stub> health_;
};

class ServerAuthTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir(::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::ofstream(dir_ + "/tokens") << "# test identities\n"
                                    << "admin ops " << HexSha256("t-ops") << "\n"
                                    << "trainer alice " << HexSha256("t-alice") << "\n"
                                    << "trainer bob " << HexSha256("t-bob") << "\n"
                                    << "viewer carol " << HexSha256("t-carol") << "\n";
    options_.listen = "127.0.0.1:0";
    options_.metrics_listen = "";
    options_.data_dir = dir_ + "/data";
    options_.default_dataset = "synthetic";
    options_.threads_per_job = 1;
    options_.auth_tokens = dir_ + "/tokens";
  }

  void Start() {
    auto server = Server::BuildAndStart(options_);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
  }

  std::string Address() const { return absl::StrCat("127.0.0.1:", server_->port()); }

  Client Plain(const std::string& token) {
    return Client(grpc::CreateChannel(Address(), grpc::InsecureChannelCredentials()), token);
  }

  // A finished job of `client`'s principal, with a checkpoint to score.
  std::string FinishedJob(Client& client) {
    gan::v1::Job job;
    grpc::Status status = client.Submit(TinyJob(3), &job);
    EXPECT_TRUE(status.ok()) << status.error_message();
    EXPECT_TRUE(client.Stream(job.job_id()).ok());
    return job.job_id();
  }

  std::string dir_;
  Options options_;
  std::unique_ptr<Server> server_;
};

TEST_F(ServerAuthTest, CallsWithoutAValidTokenAreUnauthenticatedButHealthIsOpen) {
  Start();
  gan::v1::Job job;
  EXPECT_EQ(Plain("").Submit(TinyJob(3), &job).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  const grpc::Status unknown = Plain("t-mallory").Submit(TinyJob(3), &job);
  EXPECT_EQ(unknown.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(unknown.error_message(), ::testing::Not(HasSubstr("t-mallory")));
  EXPECT_EQ(Plain("").Get("job-0123456789abcdef", &job).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(Plain("").Infer("job-0123456789abcdef").error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_TRUE(Plain("").Health().ok());
}

TEST_F(ServerAuthTest, RolesAndPrincipalsDecideWhatEachCallerMaySeeAndDo) {
  Start();
  Client alice = Plain("t-alice"), bob = Plain("t-bob"), carol = Plain("t-carol"),
         ops = Plain("t-ops");
  // A viewer may not submit.
  gan::v1::Job job;
  const grpc::Status denied = carol.Submit(TinyJob(3), &job);
  EXPECT_EQ(denied.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(denied.error_message(), HasSubstr("viewer"));

  const std::string alices = FinishedJob(alice);
  ASSERT_TRUE(alice.Get(alices, &job).ok());
  EXPECT_EQ(job.principal(), "alice");
  EXPECT_TRUE(alice.Score(alices).ok());
  EXPECT_TRUE(alice.Sample(alices).ok());
  EXPECT_TRUE(alice.Infer(alices).ok());

  // Bob cannot tell Alice's job from one that does not exist.
  gan::v1::Job none;
  const grpc::Status missing = bob.Get("job-0123456789abcdef", &none);
  const grpc::Status hidden = bob.Get(alices, &none);
  EXPECT_EQ(hidden.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(missing.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(hidden.error_message(),
            std::string(missing.error_message())
                .replace(missing.error_message().find("job-0123456789abcdef"), 20, alices));
  EXPECT_EQ(bob.Cancel(alices).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(bob.Score(alices).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(bob.Sample(alices).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(bob.Stream(alices).error_code(), grpc::StatusCode::NOT_FOUND);
  const grpc::Status bob_infer = bob.Infer(alices);
  EXPECT_EQ(bob_infer.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(bob.Infer(alices + "-generator").error_code(), grpc::StatusCode::NOT_FOUND);

  // Lists: each trainer sees only their own, whatever they ask for; an admin sees all and may
  // filter by principal.
  const std::string bobs = FinishedJob(bob);
  gan::v1::ListJobsResponse listed;
  ASSERT_TRUE(bob.List("alice", &listed).ok());
  ASSERT_EQ(listed.jobs_size(), 1);
  EXPECT_EQ(listed.jobs(0).job_id(), bobs);
  ASSERT_TRUE(ops.List("", &listed).ok());
  EXPECT_EQ(listed.jobs_size(), 2);
  ASSERT_TRUE(ops.List("alice", &listed).ok());
  ASSERT_EQ(listed.jobs_size(), 1);
  EXPECT_EQ(listed.jobs(0).job_id(), alices);
  // A viewer reads nothing of others either; an admin reads and scores anyone's.
  EXPECT_EQ(carol.Get(alices, &none).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_TRUE(ops.Get(alices, &none).ok());
  EXPECT_TRUE(ops.Score(bobs).ok());
  EXPECT_EQ(carol.Cancel(alices).error_code(), grpc::StatusCode::PERMISSION_DENIED);
}

TEST_F(ServerAuthTest, ExportModelIsAuthorizedLikeSampleImages) {
  Start();
  Client alice = Plain("t-alice"), bob = Plain("t-bob"), carol = Plain("t-carol"),
         ops = Plain("t-ops"), nobody = Plain(""), forger = Plain("t-forged");
  const std::string alices = FinishedJob(alice);
  EXPECT_TRUE(alice.Export(alices).ok());
  EXPECT_TRUE(ops.Export(alices).ok());
  // Another principal's job, seen by a trainer or a viewer: NOT_FOUND, as for SampleImages.
  EXPECT_EQ(bob.Export(alices).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(carol.Export(alices).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(nobody.Export(alices).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  for (Client* client : {&alice, &bob, &carol, &ops, &nobody, &forger}) {
    const grpc::Status exported = client->Export(alices);
    const grpc::Status sampled = client->Sample(alices);
    EXPECT_EQ(exported.error_code(), sampled.error_code()) << exported.error_message();
  }
}

TEST_F(ServerAuthTest, APrincipalsQueuedAndRunningJobsAreCapped) {
  options_.max_jobs_per_principal = 1;
  Start();
  Client alice = Plain("t-alice"), bob = Plain("t-bob");
  gan::v1::Job first, job;
  ASSERT_TRUE(alice.Submit(gan::testing::LongJob(), &first).ok());
  const grpc::Status second = alice.Submit(gan::testing::LongJob(), &job);
  EXPECT_EQ(second.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(second.error_message(), HasSubstr("--max_jobs_per_principal"));
  EXPECT_TRUE(bob.Submit(TinyJob(2), &job).ok()) << "another principal has a quota of its own";
  EXPECT_TRUE(alice.Cancel(first.job_id()).ok());
}

TEST_F(ServerAuthTest, APrincipalsOpenStreamsAreCappedAndGivenBackWhenTheyEnd) {
  constexpr int kCap = 3;
  options_.max_streams_per_principal = kCap;
  options_.metrics_listen = "127.0.0.1:0";
  Start();
  Client alice = Plain("t-alice"), bob = Plain("t-bob");
  const std::string bobs = FinishedJob(bob);
  gan::v1::JobSpec spec = gan::testing::LongJob();
  spec.set_metrics_every(10);  // the streams' first events arrive soon
  gan::v1::Job running;
  ASSERT_TRUE(alice.Submit(spec, &running).ok());

  // Alice at her cap: kCap streams of her running job, each past its first event.
  std::vector<std::unique_ptr<Client::HeldStream>> held;
  for (int i = 0; i < kCap; ++i) {
    held.push_back(alice.Hold(running.job_id()));
    ASSERT_FALSE(held.back()->ended) << held.back()->status.error_message();
  }
  const grpc::Status refused = alice.Stream(running.job_id());
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(refused.error_message(), HasSubstr("--max_streams_per_principal"));
  EXPECT_THAT(refused.error_message(), HasSubstr("principal alice has 3 open"));
  // Bob is not: his places are his own.
  EXPECT_TRUE(bob.Stream(bobs).ok());
  {
    absl::StatusOr<std::string> metrics = gan::testing::ScrapeMetrics(server_->metrics_port());
    ASSERT_TRUE(metrics.ok()) << metrics.status();
    EXPECT_EQ(gan::testing::MetricValue(*metrics, "gan_metric_streams_open"), kCap) << *metrics;
    EXPECT_EQ(gan::testing::MetricValue(*metrics, "grpc_server_handled_total",
                                        {{"grpc_code", "RESOURCE_EXHAUSTED"},
                                         {"grpc_method", "StreamMetrics"},
                                         {"grpc_service", "gan.v1.TrainingService"},
                                         {"grpc_type", "server_stream"}}),
              1)
        << *metrics;
  }

  // Alice drops one: its place comes back once the server has seen the cancellation, which
  // reaches it a moment after her client gave up the call.
  held.front()->context.TryCancel();
  while (held.front()->Next()) {
  }
  EXPECT_EQ(held.front()->status.error_code(), grpc::StatusCode::CANCELLED);
  held.erase(held.begin());
  std::unique_ptr<Client::HeldStream> again;
  int refusals = 0;
  for (const absl::Time deadline = absl::Now() + absl::Seconds(20); absl::Now() < deadline;) {
    again = alice.Hold(running.job_id());
    if (!again->ended) break;
    ASSERT_EQ(again->status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED)
        << again->status.error_message();
    ++refusals;
    absl::SleepFor(absl::Milliseconds(10));
  }
  ASSERT_FALSE(again->ended) << "the dropped stream's place never came back";
  std::printf("the dropped stream's place came back after %d refusal(s)\n", refusals);
  held.push_back(std::move(again));

  // Streams that end with their job give their places back before their clients see the end.
  ASSERT_TRUE(alice.Cancel(running.job_id()).ok());
  for (auto& stream : held) {
    while (stream->Next()) {
    }
    EXPECT_TRUE(stream->status.ok()) << stream->status.error_message();
    EXPECT_TRUE(stream->event.has_finished());
  }
  absl::StatusOr<std::string> metrics = gan::testing::ScrapeMetrics(server_->metrics_port());
  ASSERT_TRUE(metrics.ok()) << metrics.status();
  EXPECT_EQ(gan::testing::MetricValue(*metrics, "gan_metric_streams_open"), 0) << *metrics;
  EXPECT_TRUE(alice.Stream(running.job_id()).ok());
}

TEST_F(ServerAuthTest, WithoutTokensEveryCallerSharesTheAnonymousPrincipalsStreams) {
  options_.auth_tokens = "";
  options_.max_streams_per_principal = 1;
  Start();
  Client first = Plain(""), second = Plain("");
  gan::v1::Job running;
  gan::v1::JobSpec spec = gan::testing::LongJob();
  spec.set_metrics_every(10);
  ASSERT_TRUE(first.Submit(spec, &running).ok());
  std::unique_ptr<Client::HeldStream> held = first.Hold(running.job_id());
  ASSERT_FALSE(held->ended) << held->status.error_message();
  const grpc::Status refused = second.Stream(running.job_id());
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(refused.error_message(), HasSubstr("the anonymous caller"));
  ASSERT_TRUE(first.Cancel(running.job_id()).ok());
  while (held->Next()) {
  }
  EXPECT_TRUE(held->status.ok()) << held->status.error_message();
  EXPECT_TRUE(second.Stream(running.job_id()).ok());
}

TEST_F(ServerAuthTest, TheTokenFileIsReReadOnReload) {
  Start();
  gan::v1::Job job;
  EXPECT_EQ(Plain("t-dave").Submit(TinyJob(2), &job).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  std::ofstream(dir_ + "/tokens", std::ios::app) << "trainer dave " << HexSha256("t-dave") << "\n";
  ASSERT_TRUE(server_->ReloadTokens().ok());
  EXPECT_TRUE(Plain("t-dave").Submit(TinyJob(2), &job).ok());
}

class ServerTlsTest : public ServerAuthTest {
 protected:
  void SetUp() override {
    ServerAuthTest::SetUp();
    if (std::system("command -v openssl >/dev/null 2>&1") != 0) {
      GTEST_SKIP() << "openssl is missing (scripts/setup.sh --tests installs it)";
    }
    const std::string script = std::string(GAN_TEST_DATA_DIR) + "/../../scripts/make_secrets.sh";
    ASSERT_EQ(std::system(("bash " + script + " " + dir_ + "/secrets >/dev/null").c_str()), 0);
    secrets_ = dir_ + "/secrets";
    options_.tls_cert = secrets_ + "/server.pem";
    options_.tls_key = secrets_ + "/server.key";
  }

  Client Tls(const std::string& token, bool client_certificate) {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = ReadFile(secrets_ + "/ca.pem");
    if (client_certificate) {
      ssl.pem_cert_chain = ReadFile(secrets_ + "/client.pem");
      ssl.pem_private_key = ReadFile(secrets_ + "/client.key");
    }
    return Client(
        // 127.0.0.1, not "localhost": the certificate names both, and a minimal system may not
        // resolve the name (no /etc/hosts).
        grpc::CreateChannel(absl::StrCat("127.0.0.1:", server_->port()), grpc::SslCredentials(ssl)),
        token);
  }

  std::string secrets_;
};

TEST_F(ServerTlsTest, TlsClientsWorkAndPlaintextFails) {
  Start();
  gan::v1::Job job;
  EXPECT_TRUE(Tls("t-alice", false).Submit(TinyJob(2), &job).ok());
  EXPECT_TRUE(Tls("", false).Health().ok());
  const grpc::Status plaintext = Plain("t-alice").Submit(TinyJob(2), &job);
  EXPECT_EQ(plaintext.error_code(), grpc::StatusCode::UNAVAILABLE) << plaintext.error_message();
}

TEST_F(ServerTlsTest, MutualTlsRequiresAClientCertificate) {
  options_.tls_client_ca = secrets_ + "/ca.pem";
  Start();
  gan::v1::Job job;
  EXPECT_TRUE(Tls("t-alice", true).Submit(TinyJob(2), &job).ok());
  EXPECT_EQ(Tls("t-alice", false).Submit(TinyJob(2), &job).error_code(),
            grpc::StatusCode::UNAVAILABLE);
}

TEST_F(ServerTlsTest, ANetworkAddressNeedsTlsAndTokensOrAnExplicitOptOut) {
  options_.listen = "0.0.0.0:0";
  options_.tls_cert = options_.tls_key = "";
  EXPECT_THAT(Server::BuildAndStart(options_).status(),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("--tls_cert")));
  options_.tls_cert = secrets_ + "/server.pem";
  options_.tls_key = secrets_ + "/server.key";
  options_.auth_tokens = "";
  EXPECT_THAT(Server::BuildAndStart(options_).status(),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("--auth_tokens")));
  options_.auth_tokens = dir_ + "/tokens";
  EXPECT_TRUE(Server::BuildAndStart(options_).ok()) << "TLS and tokens on 0.0.0.0";
  options_.tls_cert = options_.tls_key = options_.auth_tokens = "";
  options_.allow_insecure = true;
  EXPECT_TRUE(Server::BuildAndStart(options_).ok()) << "--allow_insecure";
}

TEST(LoopbackTest, LoopbackAddresses) {
  EXPECT_TRUE(IsLoopbackAddress("127.0.0.1:50051"));
  EXPECT_TRUE(IsLoopbackAddress("127.1.2.3:0"));
  EXPECT_TRUE(IsLoopbackAddress("localhost:50051"));
  EXPECT_TRUE(IsLoopbackAddress("[::1]:50051"));
  EXPECT_FALSE(IsLoopbackAddress("0.0.0.0:50051"));
  EXPECT_FALSE(IsLoopbackAddress("[::]:50051"));
  EXPECT_FALSE(IsLoopbackAddress("10.0.0.1:50051"));
  EXPECT_FALSE(IsLoopbackAddress(":50051"));
}

}  // namespace
}  // namespace gan::server
