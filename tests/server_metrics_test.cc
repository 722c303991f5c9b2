// gan-server's Prometheus metrics (server/metrics.h), end to end: a real gan-server
// (build/bin/gan-server) with --metrics_listen, scraped every second by a real Prometheus
// (/usr/bin/prometheus, Debian's `prometheus` package), queried through Prometheus' HTTP API as a
// dashboard would. What a user relies on: a running job's losses are a series Prometheus stores
// under its job_id, RPCs are counted under the gRPC ecosystem's names and labels, the series of
// an ended job goes away, the exposition passes `promtool check metrics`, and the vanishing-
// gradient alert of deploy/prometheus/alerts.yml fires for a discriminator with sigmoid hidden
// layers.
//
// Skipped only when /usr/bin/prometheus is missing (scripts/setup.sh installs it).

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gan/v1/service.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/child_process.h"
#include "tests/metrics_scrape.h"
#include "tests/test_util.h"

namespace {

using ::gan::testing::HttpGet;
using ::testing::HasSubstr;

constexpr char kPrometheus[] = "/usr/bin/prometheus";
constexpr char kPromtool[] = "/usr/bin/promtool";
constexpr absl::Duration kStartTimeout = absl::Seconds(30);
constexpr absl::Duration kScrapeTimeout = absl::Seconds(30);
constexpr char kVanishingAlert[] = "GanLayerGradientVanishing";

// deploy/prometheus/alerts.yml with the `for:` of the vanishing-gradient alert shortened from
// minutes to 1s, so the test sees it fire within seconds of the flag turning on (the flag itself
// already needs a window of steps). Every other rule is as deployed.
absl::StatusOr<std::string> AlertRulesForTest(const std::string& repo) {
  std::ifstream in(repo + "/deploy/prometheus/alerts.yml");
  if (!in) return absl::NotFoundError("deploy/prometheus/alerts.yml");
  std::string rules((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t alert = rules.find(absl::StrCat("alert: ", kVanishingAlert));
  if (alert == std::string::npos) {
    return absl::NotFoundError(absl::StrCat("alert ", kVanishingAlert, " in alerts.yml"));
  }
  const size_t for_at = rules.find("for: ", alert);
  const size_t next_alert = rules.find("- alert:", alert);
  if (for_at == std::string::npos || (next_alert != std::string::npos && for_at > next_alert)) {
    return absl::NotFoundError(absl::StrCat("the `for:` of ", kVanishingAlert));
  }
  const size_t value = for_at + 5;
  rules.replace(value, rules.find('\n', value) - value, "1s");
  return rules;
}

// A loopback port free right now (bound to port 0, then closed).
absl::StatusOr<int> FreePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::ErrnoToStatus(errno, "socket");
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    const int error = errno;
    ::close(fd);
    return absl::ErrnoToStatus(error, "bind");
  }
  ::close(fd);
  return ntohs(address.sin_port);
}

std::string UrlEncode(const std::string& text) {
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out += absl::StrFormat("%%%02X", c);
    }
  }
  return out;
}

// The number in "... (<key> 1234) ..." of `line`, or 0.
int PortIn(const std::string& line, const std::string& key) {
  const size_t at = line.find(absl::StrCat("(", key, " "));
  if (at == std::string::npos) return 0;
  const size_t begin = at + key.size() + 2;
  const size_t end = line.find(')', begin);
  int port = 0;
  if (end == std::string::npos || !absl::SimpleAtoi(line.substr(begin, end - begin), &port)) {
    return 0;
  }
  return port;
}

class ServerMetricsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::access(kPrometheus, X_OK) != 0) {
      GTEST_SKIP() << kPrometheus << " is missing (scripts/setup.sh installs `prometheus`)";
    }
    dir_ = gan::testing::MakeTempDir("server_metrics_test");

    const absl::Time deadline = absl::Now() + kStartTimeout;
    // "gan-server listening on 127.0.0.1:0 (port 41235), data in ..."
    absl::StatusOr<gan::testing::GanServer> server =
        gan::testing::StartGanServer({{"--listen", "127.0.0.1:0"},
                                      {"--metrics_listen", "127.0.0.1:0"},
                                      {"--data_dir", dir_ + "/data"},
                                      {"--default_dataset", "synthetic"},
                                      {"--threads_per_job", "1"},
                                      {"--checkpoint_every", "1000000"}},
                                     kStartTimeout);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(server->process);
    grpc_port_ = server->port;
    ASSERT_GT(grpc_port_, 0);
    // "gan-server metrics on http://127.0.0.1:0/metrics (metrics port 9464)"
    absl::StatusOr<std::string> line = server_->ReadLine(deadline);
    ASSERT_TRUE(line.ok()) << line.status();
    metrics_port_ = PortIn(*line, "metrics port");
    ASSERT_GT(metrics_port_, 0) << *line;

    absl::StatusOr<int> prometheus_port = FreePort();
    ASSERT_TRUE(prometheus_port.ok()) << prometheus_port.status();
    prometheus_port_ = *prometheus_port;
    {
      absl::StatusOr<std::string> rules = AlertRulesForTest(Repo());
      ASSERT_TRUE(rules.ok()) << rules.status();
      std::ofstream(dir_ + "/alerts.yml") << *rules;
      std::ofstream config(dir_ + "/prometheus.yml");
      config << "global:\n"
             << "  scrape_interval: 1s\n"
             << "  evaluation_interval: 1s\n"
             << "rule_files: ['" << dir_ << "/alerts.yml']\n"
             << "scrape_configs:\n"
             << "  - job_name: gan-server\n"
             << "    static_configs:\n"
             << "      - targets: ['127.0.0.1:" << metrics_port_ << "']\n";
    }
    gan::testing::ChildOptions log_options;
    log_options.log_file = dir_ + "/prometheus.log";
    auto prometheus = gan::testing::ChildProcess::Start(
        {kPrometheus, "--config.file=" + dir_ + "/prometheus.yml",
         "--storage.tsdb.path=" + dir_ + "/tsdb",
         absl::StrCat("--web.listen-address=127.0.0.1:", prometheus_port_)},
        log_options);
    ASSERT_TRUE(prometheus.ok()) << prometheus.status();
    prometheus_ = std::move(*prometheus);

    channel_ = grpc::CreateChannel(absl::StrCat("127.0.0.1:", grpc_port_),
                                   grpc::InsecureChannelCredentials());
    stub_ = gan::v1::TrainingService::NewStub(channel_);
  }

  void TearDown() override {
    if (prometheus_ != nullptr) prometheus_->Terminate(absl::Seconds(5)).IgnoreError();
    if (server_ != nullptr) server_->Terminate(absl::Seconds(10)).IgnoreError();
  }

  // Runs an instant PromQL query until it returns at least one series (Prometheus may not be up
  // or may not have scraped yet); the result vector.
  absl::StatusOr<nlohmann::json> QueryUntilFound(const std::string& promql) {
    const absl::Time deadline = absl::Now() + kScrapeTimeout;
    absl::Status last = absl::NotFoundError("no series yet");
    while (absl::Now() < deadline) {
      absl::StatusOr<std::string> body =
          HttpGet(prometheus_port_, "/api/v1/query?query=" + UrlEncode(promql));
      if (body.ok()) {
        nlohmann::json reply = nlohmann::json::parse(*body, nullptr, /*allow_exceptions=*/false);
        if (reply.is_discarded() || reply.value("status", "") != "success") {
          return absl::InternalError(absl::StrCat("query ", promql, ": ", *body));
        }
        const nlohmann::json& result = reply["data"]["result"];
        if (!result.empty()) return result;
      } else {
        last = body.status();
      }
      absl::SleepFor(absl::Milliseconds(250));
    }
    std::ifstream log(dir_ + "/prometheus.log");
    std::string tail((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
    if (tail.size() > 2000) tail = tail.substr(tail.size() - 2000);
    return absl::DeadlineExceededError(absl::StrCat("query ", promql, " found nothing in ",
                                                    absl::FormatDuration(kScrapeTimeout), " (",
                                                    last.ToString(), "); prometheus.log: ", tail));
  }

  static std::string Repo() { return ::gan::testing::TestDataPath("../.."); }

  // Polls Prometheus' /api/v1/alerts until `alertname` is firing with these labels; that alert.
  absl::StatusOr<nlohmann::json> WaitForFiringAlert(
      const std::string& alertname, const std::map<std::string, std::string>& labels,
      absl::Duration timeout) {
    const absl::Time deadline = absl::Now() + timeout;
    std::string last = "no answer";
    while (absl::Now() < deadline) {
      absl::StatusOr<std::string> body = HttpGet(prometheus_port_, "/api/v1/alerts");
      if (body.ok()) {
        last = *body;
        const nlohmann::json reply =
            nlohmann::json::parse(*body, nullptr, /*allow_exceptions=*/false);
        if (reply.is_discarded() || reply.value("status", "") != "success") {
          return absl::InternalError(absl::StrCat("/api/v1/alerts: ", *body));
        }
        for (const nlohmann::json& alert : reply["data"]["alerts"]) {
          const nlohmann::json& have = alert["labels"];
          bool match =
              have.value("alertname", "") == alertname && alert.value("state", "") == "firing";
          for (const auto& [name, value] : labels) match = match && have.value(name, "") == value;
          if (match) return alert;
        }
      } else {
        last = body.status().ToString();
      }
      absl::SleepFor(absl::Milliseconds(500));
    }
    return absl::DeadlineExceededError(absl::StrCat(alertname, " not firing within ",
                                                    absl::FormatDuration(timeout),
                                                    "; last /api/v1/alerts: ", last));
  }

  // Cancels a running job and waits until it is CANCELLED.
  void CancelAndWait(gan::v1::Job* job) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(40));
    gan::v1::CancelJobRequest cancel;
    cancel.set_job_id(job->job_id());
    grpc::Status status = stub_->CancelJob(&context, cancel, job);
    ASSERT_TRUE(status.ok()) << status.error_message();
    // A running job becomes CANCELLED when its current step ends.
    const absl::Time deadline = absl::Now() + absl::Seconds(40);
    while (job->state() != gan::v1::JOB_STATE_CANCELLED && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(20));
      grpc::ClientContext get_context;
      gan::v1::GetJobRequest get;
      get.set_job_id(job->job_id());
      status = stub_->GetJob(&get_context, get, job);
      ASSERT_TRUE(status.ok()) << status.error_message();
    }
    ASSERT_EQ(job->state(), gan::v1::JOB_STATE_CANCELLED);
  }

  static double Value(const nlohmann::json& series) {
    double value = 0;
    EXPECT_TRUE(absl::SimpleAtod(series["value"][1].get<std::string>(), &value)) << series;
    return value;
  }

  std::string dir_;
  std::unique_ptr<gan::testing::ChildProcess> server_;
  std::unique_ptr<gan::testing::ChildProcess> prometheus_;
  int grpc_port_ = 0;
  int metrics_port_ = 0;
  int prometheus_port_ = 0;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<gan::v1::TrainingService::Stub> stub_;
};

TEST_F(ServerMetricsTest, PrometheusScrapesJobLossesAndRpcCounts) {
  // A job long enough to be scraped while it runs; it is cancelled once Prometheus has its loss.
  gan::v1::SubmitJobRequest submit;
  submit.mutable_spec()->set_preset("seed-dcgan");
  submit.mutable_spec()->set_dataset("synthetic");
  submit.mutable_spec()->set_batch_size(8);
  submit.mutable_spec()->set_steps(1'000'000);
  gan::v1::Job job;
  {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    grpc::Status status = stub_->SubmitJob(&context, submit, &job);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }
  {  // A failing call, counted under its status name.
    grpc::ClientContext context;
    gan::v1::GetJobRequest get;
    gan::v1::Job unused;
    EXPECT_EQ(stub_->GetJob(&context, get, &unused).error_code(),
              grpc::StatusCode::INVALID_ARGUMENT);
  }

  absl::StatusOr<nlohmann::json> losses = QueryUntilFound(
      absl::StrCat("last_over_time(gan_job_d_loss{job_id=\"", job.job_id(), "\"}[5m])"));
  ASSERT_TRUE(losses.ok()) << losses.status();
  ASSERT_EQ(losses->size(), 1u) << *losses;
  EXPECT_EQ((*losses)[0]["metric"]["job_id"], job.job_id());
  const double d_loss = Value((*losses)[0]);
  EXPECT_GT(d_loss, 0.0);  // BCE of a live discriminator
  EXPECT_LT(d_loss, 10.0);

  absl::StatusOr<nlohmann::json> steps = QueryUntilFound("gan_train_steps_total > 0");
  ASSERT_TRUE(steps.ok()) << steps.status();

  absl::StatusOr<nlohmann::json> submitted = QueryUntilFound(
      "grpc_server_handled_total{grpc_service=\"gan.v1.TrainingService\","
      "grpc_method=\"SubmitJob\",grpc_type=\"unary\",grpc_code=\"OK\"}");
  ASSERT_TRUE(submitted.ok()) << submitted.status();
  EXPECT_EQ(Value((*submitted)[0]), 1.0);
  absl::StatusOr<nlohmann::json> rejected = QueryUntilFound(
      "grpc_server_handled_total{grpc_method=\"GetJob\",grpc_code=\"INVALID_ARGUMENT\"}");
  ASSERT_TRUE(rejected.ok()) << rejected.status();
  EXPECT_EQ(Value((*rejected)[0]), 1.0);
  absl::StatusOr<nlohmann::json> running = QueryUntilFound("gan_jobs{state=\"running\"} == 1");
  ASSERT_TRUE(running.ok()) << running.status();
  absl::StatusOr<nlohmann::json> process = QueryUntilFound("process_resident_memory_bytes > 0");
  ASSERT_TRUE(process.ok()) << process.status();

  // Cancelled: the job's series leave the exposition, and it counts as cancelled.
  {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(40));
    gan::v1::CancelJobRequest cancel;
    cancel.set_job_id(job.job_id());
    grpc::Status status = stub_->CancelJob(&context, cancel, &job);
    ASSERT_TRUE(status.ok()) << status.error_message();
    // A running job becomes CANCELLED when its current step ends.
    const absl::Time deadline = absl::Now() + absl::Seconds(40);
    while (job.state() != gan::v1::JOB_STATE_CANCELLED && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(20));
      grpc::ClientContext get_context;
      gan::v1::GetJobRequest get;
      get.set_job_id(job.job_id());
      status = stub_->GetJob(&get_context, get, &job);
      ASSERT_TRUE(status.ok()) << status.error_message();
    }
    ASSERT_EQ(job.state(), gan::v1::JOB_STATE_CANCELLED);
  }
  absl::StatusOr<std::string> exposition = HttpGet(metrics_port_, "/metrics");
  ASSERT_TRUE(exposition.ok()) << exposition.status();
  EXPECT_FALSE(absl::StrContains(*exposition, job.job_id())) << *exposition;
  EXPECT_THAT(*exposition, HasSubstr("gan_jobs{state=\"cancelled\"} 1\n"));
  EXPECT_THAT(*exposition, HasSubstr("gan_jobs{state=\"running\"} 0\n"));
  EXPECT_THAT(*exposition, HasSubstr("grpc_server_handling_seconds_bucket{grpc_method="
                                     "\"CancelJob\",grpc_service=\"gan.v1.TrainingService\","
                                     "grpc_type=\"unary\",le=\"+Inf\"} 1\n"));
  EXPECT_THAT(*exposition, HasSubstr("process_open_fds "));

  // The exposition lints clean.
  if (::access(kPromtool, X_OK) == 0) {
    const std::string text_path = dir_ + "/metrics.txt";
    std::ofstream(text_path) << *exposition;
    const std::string command =
        absl::StrCat(kPromtool, " check metrics < ", text_path, " > ", dir_, "/promtool.txt 2>&1");
    const int status = std::system(command.c_str());
    std::ifstream report(dir_ + "/promtool.txt");
    std::string output((std::istreambuf_iterator<char>(report)), std::istreambuf_iterator<char>());
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << output;
  }

  // The alert rules lint clean.
  const std::string repo = ::gan::testing::TestDataPath("../..");
  if (::access(kPromtool, X_OK) == 0) {
    const std::string command =
        absl::StrCat(kPromtool, " check rules ", repo, "/deploy/prometheus/alerts.yml > ", dir_,
                     "/rules.txt 2>&1");
    const int status = std::system(command.c_str());
    std::ifstream report(dir_ + "/rules.txt");
    std::string output((std::istreambuf_iterator<char>(report)), std::istreambuf_iterator<char>());
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << output;
  }

  // Every PromQL expression of the Grafana dashboard, with Grafana's variables substituted,
  // evaluates without error against this Prometheus.
  std::ifstream dashboard_file(repo + "/deploy/grafana/dashboards/gan.json");
  const nlohmann::json dashboard =
      nlohmann::json::parse(dashboard_file, nullptr, /*allow_exceptions=*/false);
  ASSERT_FALSE(dashboard.is_discarded()) << "deploy/grafana/dashboards/gan.json is not JSON";
  std::vector<std::string> expressions;
  std::function<void(const nlohmann::json&)> collect = [&](const nlohmann::json& node) {
    if (node.is_object()) {
      for (auto it = node.begin(); it != node.end(); ++it) {
        if (it.key() == "expr" && it.value().is_string()) {
          expressions.push_back(it.value().get<std::string>());
        } else {
          collect(it.value());
        }
      }
    } else if (node.is_array()) {
      for (const nlohmann::json& child : node) collect(child);
    }
  };
  collect(dashboard["panels"]);
  ASSERT_GE(expressions.size(), 6u);
  for (std::string expr : expressions) {
    for (const auto& [variable, value] :
         std::vector<std::pair<std::string, std::string>>{{"$__rate_interval", "1m"},
                                                          {"$__range", "5m"},
                                                          {"$__interval", "15s"},
                                                          {"$instance", ".*"}}) {
      for (size_t at; (at = expr.find(variable)) != std::string::npos;) {
        expr.replace(at, variable.size(), value);
      }
    }
    absl::StatusOr<std::string> body =
        HttpGet(prometheus_port_, "/api/v1/query?query=" + UrlEncode(expr));
    ASSERT_TRUE(body.ok()) << body.status();
    const nlohmann::json reply = nlohmann::json::parse(*body, nullptr, false);
    EXPECT_TRUE(!reply.is_discarded() && reply.value("status", "") == "success")
        << expr << " -> " << *body;
  }
}

// The seed discriminator with sigmoid hidden layers, trained as in docs/seed_question.md
// (seed-dcgan, Fashion-MNIST, seed 1): its first convolution's relative gradient falls below the
// default vanishing_ratio within ~50 steps, the job's
// gan_job_gradient_health{layer="discriminator.0",state="vanishing"} turns 1, and
// GanLayerGradientVanishing (deploy/prometheus/alerts.yml, `for:` shortened by AlertRulesForTest)
// fires through Prometheus' own rule evaluation. Skipped without Debian's dataset-fashion-mnist.
TEST_F(ServerMetricsTest, VanishingGradientAlertFiresForSigmoidHiddenLayers) {
  gan::v1::SubmitJobRequest submit;
  gan::v1::JobSpec& spec = *submit.mutable_spec();
  spec.set_preset("seed-dcgan");
  spec.set_dataset("fashion-mnist");
  spec.set_seed(1);
  spec.set_steps(1'000'000);
  spec.mutable_discriminator_hidden_activation()->set_function(
      gan::v1::ACTIVATION_FUNCTION_SIGMOID);
  // A 5-step window (flag at about step 47 instead of 55) keeps the test quick; the thresholds are
  // the defaults.
  spec.mutable_gradient_health()->set_window_steps(5);
  gan::v1::Job job;
  {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    grpc::Status status = stub_->SubmitJob(&context, submit, &job);
    if (status.error_code() == grpc::StatusCode::FAILED_PRECONDITION &&
        absl::StrContains(status.error_message(), "dataset-fashion-mnist")) {
      GTEST_SKIP() << status.error_message();
    }
    ASSERT_TRUE(status.ok()) << status.error_message();
  }
  // ~8 s of training on an idle 2-core machine; the timeout allows for a busy one.
  absl::StatusOr<nlohmann::json> alert =
      WaitForFiringAlert(kVanishingAlert, {{"job_id", job.job_id()}, {"layer", "discriminator.0"}},
                         absl::Seconds(240));
  ASSERT_TRUE(alert.ok()) << alert.status();
  EXPECT_EQ((*alert)["labels"].value("state", ""), "vanishing") << *alert;

  // The per-layer norm and the one-hot state series behind it.
  const std::string job_label = absl::StrCat("job_id=\"", job.job_id(), "\"");
  absl::StatusOr<nlohmann::json> norm = QueryUntilFound(
      absl::StrCat("gan_job_layer_gradient_norm{", job_label, ",layer=\"discriminator.0\"}"));
  ASSERT_TRUE(norm.ok()) << norm.status();
  EXPECT_GT(Value((*norm)[0]), 0.0);
  absl::StatusOr<nlohmann::json> states = QueryUntilFound(
      absl::StrCat("gan_job_gradient_health{", job_label, ",layer=\"discriminator.0\"}"));
  ASSERT_TRUE(states.ok()) << states.status();
  ASSERT_EQ(states->size(), 3u) << *states;
  double sum = 0;
  for (const nlohmann::json& series : *states) sum += Value(series);
  EXPECT_EQ(sum, 1.0) << *states;

  CancelAndWait(&job);
  absl::StatusOr<std::string> exposition = HttpGet(metrics_port_, "/metrics");
  ASSERT_TRUE(exposition.ok()) << exposition.status();
  EXPECT_FALSE(absl::StrContains(*exposition, job.job_id())) << *exposition;
}

}  // namespace
