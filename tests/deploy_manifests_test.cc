// The deployment files rehearsed without a container engine: deploy/docker-compose.yml and
// deploy/k8s/*.yaml are read as YAML (python3-yaml), their gan-server arguments, environment,
// secrets and probes run for real against this build's gan-server and ganctl, a PostgreSQL
// cluster of the test's own (tests/postgres_cluster.h) that asks for the password the files pass,
// and certificates and tokens from scripts/make_secrets.sh. Only what a container engine adds is
// translated: container paths (/run/secrets/gan, /var/lib/gan) become temporary directories,
// fixed ports become free ones, the PostgreSQL host name becomes 127.0.0.1 after it is checked
// against the service the file defines, and $(POD_NAME) becomes a pod name.
//
// What they show: the replicas the files describe start with exactly those flags (the
// non-loopback listen passes the server's TLS + tokens check), reach the store with the password
// from PGPASSFILE (compose) or PGPASSWORD (Kubernetes), answer the files' health probes, share one
// store and data volume (a job submitted through one replica is followed on another and read on a
// third, Job.replica naming the pod), refuse a call without a token, and (Kubernetes) drop out of
// readiness while PostgreSQL is down and come back with it while the liveness port stays open.
// The manifests' cross-references (volume claims, secrets, services, selectors) are checked too.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gan/v1/service.pb.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/child_process.h"
#include "tests/postgres_cluster.h"
#include "tests/test_jobs.h"
#include "tests/test_util.h"

namespace gan::testing {
namespace {

using nlohmann::json;

constexpr absl::Duration kStartTimeout = absl::Seconds(60);
constexpr absl::Duration kCommandTimeout = absl::Seconds(60);
constexpr absl::Duration kJobTimeout = absl::Seconds(180);
constexpr char kStorePassword[] = "rehearsal_password_7f3a";

std::string RepoPath(const std::string& relative) {
  return std::string(GAN_TEST_DATA_DIR) + "/../../" + relative;
}

// Every YAML document of a file, as JSON (the same parser family Compose and kubectl use).
absl::StatusOr<std::vector<json>> LoadYaml(const std::string& relative) {
  ChildOptions options;
  options.capture_stderr = true;
  options.null_stdin = true;
  absl::StatusOr<std::unique_ptr<ChildProcess>> python = ChildProcess::Start(
      {"/usr/bin/python3", "-c",
       "import json, sys, yaml\n"
       "json.dump([d for d in yaml.safe_load_all(open(sys.argv[1])) if d is not None], "
       "sys.stdout)",
       RepoPath(relative)},
      options);
  if (!python.ok()) return python.status();
  absl::StatusOr<int> status = (*python)->Wait(absl::Now() + kCommandTimeout);
  if (!status.ok()) return status.status();
  if (!WIFEXITED(*status) || WEXITSTATUS(*status) != 0) {
    return absl::InternalError(absl::StrCat("reading ", relative,
                                            " as YAML failed (is python3-yaml",
                                            " installed?): ", (*python)->err()));
  }
  json documents = json::parse((*python)->out(), nullptr, /*allow_exceptions=*/false);
  if (!documents.is_array()) return absl::InternalError(relative + ": no YAML documents");
  return documents.get<std::vector<json>>();
}

// The document of `kind` named `name` (any name when empty).
const json* FindDocument(const std::vector<json>& documents, const std::string& kind,
                         const std::string& name = "") {
  for (const json& document : documents) {
    if (document.value("kind", "") == kind &&
        (name.empty() || document["metadata"].value("name", "") == name)) {
      return &document;
    }
  }
  return nullptr;
}

// A command's exit and output.
struct Outcome {
  bool exited_zero = false;
  std::string out, err;
};

Outcome RunCommand(const std::vector<std::string>& argv, const std::vector<std::string>& env = {},
                   absl::Duration timeout = kCommandTimeout) {
  ChildOptions options;
  options.capture_stderr = true;
  options.null_stdin = true;
  options.env = env;
  Outcome outcome;
  absl::StatusOr<std::unique_ptr<ChildProcess>> child = ChildProcess::Start(argv, options);
  if (!child.ok()) {
    outcome.err = child.status().ToString();
    return outcome;
  }
  absl::StatusOr<int> status = (*child)->Wait(absl::Now() + timeout);
  outcome.out = (*child)->out();
  outcome.err = (*child)->err();
  outcome.exited_zero = status.ok() && WIFEXITED(*status) && WEXITSTATUS(*status) == 0;
  return outcome;
}

bool TcpConnects(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(static_cast<uint16_t>(port));
  const bool connected = ::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0;
  ::close(fd);
  return connected;
}

// "host:port" of a libpq URI postgresql://user@host:port/db, and its user and database.
struct StoreUrl {
  std::string user, host, port, database;
};
absl::StatusOr<StoreUrl> ParseStoreUrl(const std::string& url) {
  // postgresql://gan@gan-postgres:5432/gan
  std::vector<std::string> parts = absl::StrSplit(url, absl::ByAnyChar("/@:"), absl::SkipEmpty());
  if (parts.size() != 5 || parts[0] != "postgresql") {
    return absl::InvalidArgumentError("not postgresql://user@host:port/database: " + url);
  }
  return StoreUrl{parts[1], parts[2], parts[3], parts[4]};
}

class DeployManifestsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<PostgresCluster>> cluster = PostgresCluster::Start();
    if (absl::IsNotFound(cluster.status())) GTEST_SKIP() << cluster.status().message();
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    cluster_ = *std::move(cluster);
    root_ = MakeTempDir("deploy");
    secrets_ = root_ + "/secrets";
    data_ = root_ + "/data";
    ASSERT_EQ(::mkdir(data_.c_str(), 0755), 0);
    const Outcome made = RunCommand({"/bin/bash", RepoPath("scripts/make_secrets.sh"), secrets_,
                                     "gan-server", "localhost", "127.0.0.1"});
    ASSERT_TRUE(made.exited_zero) << made.err;
    std::ifstream token_file(secrets_ + "/token.trainer");
    std::getline(token_file, trainer_token_);
    ASSERT_FALSE(trainer_token_.empty());
  }

  // A container path or argument as it is on this host.
  std::string Localize(std::string arg) const {
    return absl::StrReplaceAll(arg, {{"/run/secrets/gan", secrets_}, {"/var/lib/gan", data_}});
  }

  // The manifest's gan-server arguments for this host: paths localized, listen ports free, the
  // store's host (after checking it is `store_service`, a service the files define) this
  // cluster, $(POD_NAME) `pod`.
  std::vector<std::string> ServerArgs(const json& args, const std::string& store_service,
                                      const std::string& pod) {
    std::vector<std::string> result;
    for (const json& value : args) {
      std::string arg = Localize(value.get<std::string>());
      arg = absl::StrReplaceAll(arg, {{"$(POD_NAME)", pod}});
      for (const char* flag : {"--listen=", "--metrics_listen="}) {
        if (absl::StartsWith(arg, flag)) {
          const size_t colon = arg.rfind(':');
          EXPECT_NE(colon, std::string::npos) << arg;
          arg = arg.substr(0, colon) + ":0";
        }
      }
      if (absl::StartsWith(arg, "--job_store=")) {
        absl::StatusOr<StoreUrl> url = ParseStoreUrl(arg.substr(12));
        EXPECT_TRUE(url.ok()) << url.status();
        if (url.ok()) {
          EXPECT_EQ(url->host, store_service) << "the store is not the service the files define";
          EXPECT_EQ(url->port, "5432");
          EXPECT_EQ(url->user, url->database) << "the rehearsal makes one role and database";
          store_user_ = url->user;
          arg = absl::StrCat("--job_store=postgresql://", url->user,
                             "@127.0.0.1:", cluster_->port(), "/", url->database);
        }
      }
      result.push_back(arg);
    }
    return result;
  }

  // Creates the files' store role and database, asking for kStorePassword.
  void CreateStore() {
    ASSERT_FALSE(store_user_.empty()) << "no --job_store among the arguments";
    ASSERT_TRUE(cluster_->CreatePasswordDatabase(store_user_, kStorePassword).ok());
  }

  std::vector<GanServer> StartReplicas(const std::vector<std::vector<std::string>>& args,
                                       const std::vector<std::string>& env) {
    std::vector<GanServer> replicas;
    for (size_t i = 0; i < args.size(); ++i) {
      ChildOptions options;  // stderr (the log) inherited: it shows in the test's output
      options.env = env;
      absl::StatusOr<GanServer> server = StartGanServerWithArgs(args[i], kStartTimeout, options);
      EXPECT_TRUE(server.ok()) << "replica " << i << ": " << server.status() << "\n"
                               << absl::StrJoin(args[i], " ");
      if (server.ok()) replicas.push_back(*std::move(server));
    }
    return replicas;
  }

  // ganctl as a user runs it against the replica on `port`: TLS with the CA, the trainer's token.
  Outcome Ganctl(int port, const std::vector<std::string>& args, bool with_token = true,
                 absl::Duration timeout = kCommandTimeout) {
    std::vector<std::string> argv = {BinaryNextToTests("ganctl"), "--server",
                                     absl::StrCat("localhost:", port), "--tls_ca",
                                     secrets_ + "/ca.pem"};
    argv.insert(argv.end(), args.begin(), args.end());
    return RunCommand(argv, {"GAN_TOKEN=" + std::string(with_token ? trainer_token_ : "")},
                      timeout);
  }

  // A probe or healthcheck command of the files, run on this host against `port`.
  Outcome Probe(const json& command, int port) {
    std::vector<std::string> argv;
    for (const json& word : command) {
      std::string arg = Localize(word.get<std::string>());
      if (arg == "ganctl") arg = BinaryNextToTests("ganctl");
      arg = absl::StrReplaceAll(arg, {{"localhost:50051", absl::StrCat("localhost:", port)}});
      argv.push_back(arg);
    }
    return RunCommand(argv);
  }

  // Submits a small job through replicas[0], follows it on replicas[1] until it ends and reads
  // it on replicas[2]; returns the replica that trained it (Job.replica).
  std::string TrainThroughThreeReplicas(const std::vector<GanServer>& replicas) {
    if (replicas.size() != 3) {
      ADD_FAILURE() << "three replicas wanted";
      return "";
    }
    gan::v1::JobSpec spec = TinyJob(30);
    spec.set_checkpoint_every(10);
    std::string spec_json;
    EXPECT_TRUE(google::protobuf::util::MessageToJsonString(spec, &spec_json).ok());
    const std::string spec_file = root_ + "/job.json";
    std::ofstream(spec_file) << spec_json;

    const Outcome submitted = Ganctl(replicas[0].port, {"submit", "--spec", spec_file});
    EXPECT_TRUE(submitted.exited_zero) << submitted.err;
    const std::string job_id = std::string(absl::StripAsciiWhitespace(submitted.out));
    EXPECT_TRUE(absl::StartsWith(job_id, "job-")) << submitted.out;

    const Outcome watched = Ganctl(replicas[1].port, {"watch", job_id}, true, kJobTimeout);
    EXPECT_TRUE(watched.exited_zero) << watched.out << watched.err;
    EXPECT_TRUE(absl::StrContains(watched.out, "30/30")) << watched.out;

    const Outcome got = Ganctl(replicas[2].port, {"--json", "get", job_id});
    EXPECT_TRUE(got.exited_zero) << got.err;
    const json job = json::parse(got.out, nullptr, /*allow_exceptions=*/false);
    EXPECT_EQ(job.value("state", ""), "JOB_STATE_SUCCEEDED") << got.out;

    const Outcome anonymous = Ganctl(replicas[2].port, {"list"}, /*with_token=*/false);
    EXPECT_FALSE(anonymous.exited_zero);
    EXPECT_TRUE(absl::StrContains(anonymous.err, "UNAUTHENTICATED")) << anonymous.err;
    return job.value("replica", "");
  }

  std::unique_ptr<PostgresCluster> cluster_;
  std::string root_, secrets_, data_, trainer_token_, store_user_;
};

TEST_F(DeployManifestsTest, ComposeReplicasRunAsWritten) {
  absl::StatusOr<std::vector<json>> compose = LoadYaml("deploy/docker-compose.yml");
  ASSERT_TRUE(compose.ok()) << compose.status();
  ASSERT_EQ(compose->size(), 1u);
  const json& services = (*compose)[0]["services"];
  const json& server = services["gan-server"];
  ASSERT_TRUE(services.contains("postgres"));
  EXPECT_EQ(server["depends_on"]["postgres"]["condition"], "service_healthy");

  // --scale gan-server=3: each port mapping is a host range of three ports.
  for (const json& mapping : server["ports"]) {
    std::vector<std::string> parts = absl::StrSplit(mapping.get<std::string>(), ':');
    ASSERT_EQ(parts.size(), 3u) << mapping;
    std::vector<std::string> range = absl::StrSplit(parts[1], '-');
    ASSERT_EQ(range.size(), 2u) << mapping;
    EXPECT_EQ(std::stoi(range[1]) - std::stoi(range[0]) + 1, 3) << mapping;
  }
  // The secrets volume is the directory make_secrets.sh fills, mounted where the flags look.
  bool secrets_mounted = false;
  for (const json& volume : server["volumes"]) {
    secrets_mounted |= volume.get<std::string>() == "./secrets:/run/secrets/gan:ro";
  }
  EXPECT_TRUE(secrets_mounted);

  std::vector<std::vector<std::string>> args;
  for (int i = 0; i < 3; ++i) args.push_back(ServerArgs(server["command"], "postgres", ""));
  CreateStore();
  // PGPASSFILE as the file's header makes it (host and port as this host reaches the store).
  const std::string pgpass = Localize(server["environment"]["PGPASSFILE"].get<std::string>());
  std::ofstream(pgpass) << "127.0.0.1:" << cluster_->port() << ":" << store_user_ << ":"
                        << store_user_ << ":" << kStorePassword << "\n";
  ASSERT_EQ(::chmod(pgpass.c_str(), 0600), 0);
  std::vector<std::string> env;
  for (const auto& [name, value] : server["environment"].items()) {
    env.push_back(name + "=" + Localize(value.get<std::string>()));
  }
  std::vector<GanServer> replicas = StartReplicas(args, env);
  ASSERT_EQ(replicas.size(), 3u);

  // The healthcheck ["CMD", "ganctl", ...] on every replica.
  json healthcheck = server["healthcheck"]["test"];
  ASSERT_EQ(healthcheck[0], "CMD");
  healthcheck.erase(healthcheck.begin());
  for (const GanServer& replica : replicas) {
    const Outcome health = Probe(healthcheck, replica.port);
    EXPECT_TRUE(health.exited_zero) << health.out << health.err;
  }
  const std::string trained_by = TrainThroughThreeReplicas(replicas);
  EXPECT_FALSE(trained_by.empty());
}

TEST_F(DeployManifestsTest, KubernetesReplicasRunAsWrittenAndReadinessFollowsTheStore) {
  absl::StatusOr<std::vector<json>> deployment_docs = LoadYaml("deploy/k8s/deployment.yaml");
  absl::StatusOr<std::vector<json>> postgres_docs = LoadYaml("deploy/k8s/postgres.yaml");
  absl::StatusOr<std::vector<json>> pvc_docs = LoadYaml("deploy/k8s/pvc.yaml");
  absl::StatusOr<std::vector<json>> service_docs = LoadYaml("deploy/k8s/service.yaml");
  for (const auto* docs : {&deployment_docs, &postgres_docs, &pvc_docs, &service_docs}) {
    ASSERT_TRUE(docs->ok()) << docs->status();
  }
  const json* deployment = FindDocument(*deployment_docs, "Deployment", "gan-server");
  ASSERT_NE(deployment, nullptr);
  EXPECT_EQ((*deployment)["spec"]["replicas"], 3);
  const json& pod = (*deployment)["spec"]["template"];
  const json& container = pod["spec"]["containers"][0];

  // Cross-references: the data claim is ReadWriteMany, the store's password is the Secret the
  // StatefulSet uses, the Service selects these pods on the grpc port.
  std::string claim;
  for (const json& volume : pod["spec"]["volumes"]) {
    if (volume["name"] == "data") claim = volume["persistentVolumeClaim"]["claimName"];
  }
  const json* pvc = FindDocument(*pvc_docs, "PersistentVolumeClaim", claim);
  ASSERT_NE(pvc, nullptr) << "no PersistentVolumeClaim " << claim;
  EXPECT_EQ((*pvc)["spec"]["accessModes"], json::array({"ReadWriteMany"}));
  const json* statefulset = FindDocument(*postgres_docs, "StatefulSet");
  ASSERT_NE(statefulset, nullptr);
  json postgres_password_ref;
  for (const json& var : (*statefulset)["spec"]["template"]["spec"]["containers"][0]["env"]) {
    if (var["name"] == "POSTGRES_PASSWORD") postgres_password_ref = var["valueFrom"];
  }
  const json* service = FindDocument(*service_docs, "Service");
  ASSERT_NE(service, nullptr);
  for (const auto& [label, value] : (*service)["spec"]["selector"].items()) {
    EXPECT_EQ(pod["metadata"]["labels"][label], value) << label;
  }

  // The environment: literal values, the password from the Secret, the pod's name.
  std::vector<std::string> env;
  bool password_from_secret = false;
  for (const json& var : container["env"]) {
    const std::string name = var["name"];
    if (var.contains("value")) {
      env.push_back(name + "=" + var["value"].get<std::string>());
    } else if (name == "PGPASSWORD") {
      EXPECT_EQ(var["valueFrom"], postgres_password_ref)
          << "gan-server and PostgreSQL read the password from different Secrets";
      env.push_back(name + "=" + kStorePassword);
      password_from_secret = true;
    } else {
      EXPECT_EQ(var["valueFrom"]["fieldRef"]["fieldPath"], "metadata.name") << name;
    }
  }
  EXPECT_TRUE(password_from_secret);

  const std::string store_service = (*FindDocument(*postgres_docs, "Service"))["metadata"]["name"];
  std::vector<std::vector<std::string>> args;
  std::set<std::string> pods;
  for (int i = 0; i < 3; ++i) {
    const std::string name = absl::StrCat("gan-server-7d4b9-", i);
    pods.insert(name);
    args.push_back(ServerArgs(container["args"], store_service, name));
  }
  CreateStore();

  // A wrong password: the replica does not start, and says why without printing the password.
  {
    std::vector<std::string> wrong_env;
    for (const std::string& var : env) {
      wrong_env.push_back(absl::StartsWith(var, "PGPASSWORD=") ? "PGPASSWORD=not_the_password_91c2"
                                                               : var);
    }
    const Outcome refused = RunCommand(
        [&] {
          std::vector<std::string> argv = {BinaryNextToTests("gan-server")};
          argv.insert(argv.end(), args[0].begin(), args[0].end());
          return argv;
        }(),
        wrong_env);
    EXPECT_FALSE(refused.exited_zero);
    EXPECT_TRUE(absl::StrContains(refused.err, "PostgreSQL")) << refused.err;
    EXPECT_FALSE(absl::StrContains(refused.out + refused.err, "not_the_password_91c2"));
    std::cout << "a replica with a wrong store password:\n" << refused.err << std::flush;
  }

  std::vector<GanServer> replicas = StartReplicas(args, env);
  ASSERT_EQ(replicas.size(), 3u);
  const json& startup = container["startupProbe"]["exec"]["command"];
  const json& readiness = container["readinessProbe"]["exec"]["command"];
  ASSERT_EQ(container["livenessProbe"]["tcpSocket"]["port"], "grpc");
  for (const GanServer& replica : replicas) {
    const Outcome started = Probe(startup, replica.port);
    EXPECT_TRUE(started.exited_zero) << started.out << started.err;
  }
  const std::string trained_by = TrainThroughThreeReplicas(replicas);
  EXPECT_EQ(pods.count(trained_by), 1u) << "Job.replica '" << trained_by << "' is not a pod";

  // Readiness follows the store; liveness (the gRPC port) does not.
  ASSERT_TRUE(cluster_->Stop().ok());
  const absl::Time stop_deadline = absl::Now() + absl::Seconds(90);
  bool unready = false;
  while (!unready && absl::Now() < stop_deadline) {
    unready = !Probe(readiness, replicas[0].port).exited_zero;
    if (!unready) absl::SleepFor(absl::Seconds(1));
  }
  EXPECT_TRUE(unready) << "the readiness probe still passed with PostgreSQL stopped";
  EXPECT_TRUE(TcpConnects(replicas[0].port));
  ASSERT_TRUE(cluster_->Restart().ok());
  const absl::Time start_deadline = absl::Now() + absl::Seconds(90);
  bool ready = false;
  while (!ready && absl::Now() < start_deadline) {
    ready = Probe(readiness, replicas[0].port).exited_zero;
    if (!ready) absl::SleepFor(absl::Seconds(1));
  }
  EXPECT_TRUE(ready) << "the readiness probe did not pass again after PostgreSQL restarted";
}

}  // namespace
}  // namespace gan::testing
