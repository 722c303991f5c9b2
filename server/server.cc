#include "server/server.h"

#include <omp.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/notification.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/health_check_service_interface.h"
#include "io/status_macros.h"
#include "prometheus/exposer.h"
#include "server/auth.h"
#include "server/authorizer.h"
#include "server/dataset_registry.h"
#include "server/executor.h"
#include "server/inference_service.h"
#include "server/job_store_url.h"
#include "server/log.h"
#include "server/process_collector.h"
#include "server/server_metrics.h"
#include "server/service_impl.h"
#include "server/stream_quota.h"

namespace gan::server {

std::string DefaultReplicaId() {
  char host[256] = {};
  if (::gethostname(host, sizeof(host) - 1) != 0 || host[0] == '\0') {
    std::snprintf(host, sizeof(host), "localhost");
  }
  return absl::StrCat(host, "-", ::getpid());
}

JobManagerOptions JobManagerOptionsFrom(const Options& options) {
  JobManagerOptions jobs;
  jobs.data_dir = options.data_dir;
  jobs.replica_id = options.replica_id.empty() ? DefaultReplicaId() : options.replica_id;
  jobs.lease = absl::Seconds(options.lease_seconds);
  jobs.poll_interval = absl::Milliseconds(options.store_poll_millis);
  jobs.max_concurrent_jobs = options.max_concurrent_jobs;
  jobs.max_queued_jobs = options.max_queued_jobs;
  jobs.threads_per_job = options.threads_per_job;
  jobs.background_checkpoints = options.background_checkpoints;
  jobs.defaults.dataset = options.default_dataset;
  jobs.defaults.checkpoint_every = options.checkpoint_every;
  jobs.defaults.keep_checkpoints = options.keep_checkpoints;
  jobs.defaults.max_steps = options.max_steps;
  jobs.max_jobs_per_principal = options.max_jobs_per_principal;
  jobs.defaults.limits.max_batch_size = options.max_batch_size;
  return jobs;
}

ScoringOptions ScoringOptionsFrom(const Options& options) {
  ScoringOptions scoring;
  scoring.max_cached_models = options.max_cached_models;
  scoring.chunk = options.max_batch_images;
  scoring.single_thread_images = options.inference_single_thread_images;
  scoring.batch_timeout = absl::Microseconds(options.batch_timeout_micros);
  scoring.max_queued_requests = options.max_inference_queue;
  scoring.threads = options.inference_threads;
  scoring.max_score_batch = options.max_score_batch;
  scoring.max_sample_count = options.max_sample_count;
  return scoring;
}

// Everything the server owns, declared in the order it is built; destroyed in reverse, so
// nothing outlives what it uses.
struct Server::Parts {
  Options options;
  std::unique_ptr<JobStore> store;
  ServerMetrics metrics;
  std::shared_ptr<ProcessCollector> process_collector = std::make_shared<ProcessCollector>();
  std::unique_ptr<DatasetRegistry> datasets;
  std::unique_ptr<JobManager> jobs;
  // Built after `inference`, whose threads run its batches, but declared before it: the
  // executor drains (its destructor) while the engine still exists.
  std::unique_ptr<ScoringEngine> scoring;
  std::unique_ptr<Authenticator> authenticator;  // null without --auth_tokens
  std::unique_ptr<Authorizer> authorizer;
  // Open StreamMetrics streams per principal; outlives the streams (they end with grpc_server).
  std::unique_ptr<StreamQuota> streams;
  std::unique_ptr<Executor> control;
  std::unique_ptr<Executor> inference;
  std::unique_ptr<TrainingServiceImpl> training_service;
  std::unique_ptr<ScoringServiceImpl> scoring_service;
  std::unique_ptr<InferenceServiceImpl> inference_service;
  std::unique_ptr<prometheus::Exposer> exposer;
  std::unique_ptr<grpc::Server> grpc_server;

  absl::Mutex mu;
  bool shut_down ABSL_GUARDED_BY(mu) = false;
  absl::Notification stopped;
};

namespace {

void LogConfiguration(const Options& o) {
  // Every option but secrets (there are none yet; keep it so when some arrive).
  log::Info("server starting",
            {{"listen", o.listen},
             {"metrics_listen", o.metrics_listen},
             {"data_dir", o.data_dir},
             // With any password replaced by ***.
             {"job_store", RedactJobStoreUrl(o.job_store)},
             {"replica_id", o.replica_id},
             {"lease_seconds", o.lease_seconds},
             {"store_poll_millis", o.store_poll_millis},
             {"store_connect_timeout_seconds", o.store_connect_timeout_seconds},
             {"default_dataset", o.default_dataset},
             {"log_format", o.log_format},
             {"max_concurrent_jobs", o.max_concurrent_jobs},
             {"max_queued_jobs", o.max_queued_jobs},
             {"threads_per_job", o.threads_per_job},
             {"checkpoint_every", o.checkpoint_every},
             {"keep_checkpoints", o.keep_checkpoints},
             {"background_checkpoints", o.background_checkpoints},
             {"max_steps", o.max_steps},
             {"max_batch_size", o.max_batch_size},
             {"control_threads", o.control_threads},
             {"max_control_queue", o.max_control_queue},
             {"inference_threads", o.inference_threads},
             {"inference_omp_threads", o.inference_omp_threads},
             {"inference_single_thread_images", o.inference_single_thread_images},
             {"max_inference_queue", o.max_inference_queue},
             {"max_score_batch", o.max_score_batch},
             {"max_sample_count", o.max_sample_count},
             {"max_cached_models", o.max_cached_models},
             {"max_batch_images", o.max_batch_images},
             {"batch_timeout_micros", o.batch_timeout_micros},
             {"max_message_bytes", o.max_message_bytes},
             {"max_concurrent_streams", o.max_concurrent_streams},
             {"shutdown_grace_seconds", o.shutdown_grace_seconds},
             // Paths only: never a token or a key.
             {"auth_tokens", o.auth_tokens},
             {"tls_cert", o.tls_cert},
             {"tls_client_ca", o.tls_client_ca},
             {"allow_insecure", o.allow_insecure},
             {"max_jobs_per_principal", o.max_jobs_per_principal},
             {"max_streams_per_principal", o.max_streams_per_principal}});
}

// What flag parsing cannot check; messages name the flag.
absl::Status ValidateOptions(const Options& o) {
  for (const auto& [name, value] :
       {std::pair<const char*, const std::string*>{"--listen", &o.listen},
        {"--data_dir", &o.data_dir},
        {"--default_dataset", &o.default_dataset},
        {"--fashion_mnist_dir", &o.fashion_mnist_dir}}) {
    if (value->empty())
      return absl::InvalidArgumentError(absl::StrCat(name, ": must not be empty"));
  }
  if (o.max_concurrent_jobs < 1 || o.threads_per_job < 1 || o.control_threads < 1 ||
      o.inference_threads < 1 || o.max_cached_models < 1 || o.max_batch_images < 1) {
    return absl::InvalidArgumentError(
        "--max_concurrent_jobs, --threads_per_job, --control_threads, --inference_threads, "
        "--max_cached_models and --max_batch_images must be >= 1");
  }
  if (o.lease_seconds < 1 || o.store_poll_millis < 1 || o.store_connect_timeout_seconds < 1) {
    return absl::InvalidArgumentError(
        "--lease_seconds, --store_poll_millis and --store_connect_timeout_seconds must be >= 1");
  }
  if (o.inference_single_thread_images < 0) {
    return absl::InvalidArgumentError(
        "--inference_single_thread_images: must be >= 0 (0: every pass on the whole team)");
  }
  if (o.inference_omp_threads < 0) {
    return absl::InvalidArgumentError(
        "--inference_omp_threads: must be >= 0 (0: OpenMP's default)");
  }
  if (o.batch_timeout_micros < 0) {
    return absl::InvalidArgumentError("--batch_timeout_micros: must be >= 0");
  }
  if (o.max_streams_per_principal < 0) {
    return absl::InvalidArgumentError("--max_streams_per_principal: must be >= 0 (0: no limit)");
  }
  if (o.tls_cert.empty() != o.tls_key.empty()) {
    return absl::InvalidArgumentError("--tls_cert and --tls_key: give both or neither");
  }
  if (!o.tls_client_ca.empty() && o.tls_cert.empty()) {
    return absl::InvalidArgumentError("--tls_client_ca: needs --tls_cert and --tls_key");
  }
  // Secure by default: a training service reachable from a network without authentication is a
  // remote CPU-execution service.
  if (!IsLoopbackAddress(o.listen) && !o.allow_insecure) {
    std::vector<std::string> missing;
    if (o.tls_cert.empty()) missing.push_back("--tls_cert/--tls_key");
    if (o.auth_tokens.empty()) missing.push_back("--auth_tokens");
    if (!missing.empty()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "--listen ", o.listen, " is not a loopback address: configure ",
          absl::StrJoin(missing, " and "), ", or pass --allow_insecure to accept the risk"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadPem(const char* flag, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream contents;
  contents << in.rdbuf();
  if (!in || contents.str().empty()) {
    return absl::FailedPreconditionError(absl::StrCat(flag, " ", path, ": cannot read it"));
  }
  return contents.str();
}

// TLS (mutual with a client CA) when configured, else plaintext.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> ServerCredentials(const Options& o) {
  if (o.tls_cert.empty()) return grpc::InsecureServerCredentials();
  grpc::SslServerCredentialsOptions ssl(
      o.tls_client_ca.empty() ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
                              : GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  grpc::SslServerCredentialsOptions::PemKeyCertPair pair;
  GAN_ASSIGN_OR_RETURN(pair.cert_chain, ReadPem("--tls_cert", o.tls_cert));
  GAN_ASSIGN_OR_RETURN(pair.private_key, ReadPem("--tls_key", o.tls_key));
  ssl.pem_key_cert_pairs.push_back(std::move(pair));
  if (!o.tls_client_ca.empty()) {
    GAN_ASSIGN_OR_RETURN(ssl.pem_root_certs, ReadPem("--tls_client_ca", o.tls_client_ca));
  }
  return grpc::SslServerCredentials(ssl);
}

}  // namespace

bool IsLoopbackAddress(const std::string& listen) {
  std::string host = listen;
  if (const size_t colon = listen.rfind(':'); colon != std::string::npos) {
    host = listen.substr(0, colon);
  }
  if (absl::StartsWith(host, "[") && absl::EndsWith(host, "]")) {
    host = host.substr(1, host.size() - 2);
  }
  return host == "localhost" || host == "::1" || absl::StartsWith(host, "127.");
}

absl::StatusOr<std::unique_ptr<Server>> Server::BuildAndStart(const Options& options) {
  log::Format format = log::Format::kText;
  const absl::Status format_status = log::ParseFormat(options.log_format, &format);
  log::SetFormat(format);
  LogConfiguration(options);  // also when it is refused, so the log shows what was asked
  GAN_RETURN_IF_ERROR(format_status);
  GAN_RETURN_IF_ERROR(ValidateOptions(options));

  auto parts = std::make_unique<Parts>();
  parts->options = options;
  std::error_code error;
  std::filesystem::create_directories(options.data_dir, error);
  if (error) {
    return absl::FailedPreconditionError(
        absl::StrCat("--data_dir ", options.data_dir, ": cannot create it: ", error.message()));
  }
  GAN_ASSIGN_OR_RETURN(const JobStoreUrl store_url,
                       ParseJobStoreUrl(options.job_store, options.data_dir));
  GAN_ASSIGN_OR_RETURN(
      parts->store, OpenJobStore(store_url, absl::Seconds(options.store_connect_timeout_seconds)));
  if (!options.auth_tokens.empty()) {
    GAN_ASSIGN_OR_RETURN(parts->authenticator, Authenticator::Create(options.auth_tokens));
    log::Info("identities loaded",
              {{"auth_tokens", options.auth_tokens},
               {"tokens", static_cast<int64_t>(parts->authenticator->tokens())}});
  }
  parts->authorizer = std::make_unique<Authorizer>(parts->authenticator.get(), parts->store.get());
  parts->streams = std::make_unique<StreamQuota>(options.max_streams_per_principal,
                                                 parts->metrics.MetricStreamsOpen());
  parts->datasets = std::make_unique<DatasetRegistry>(options.data_dir, options.fashion_mnist_dir);
  JobManagerOptions job_options = JobManagerOptionsFrom(options);
  job_options.metrics = &parts->metrics;
  // Health follows the store (a replica cut off from PostgreSQL is not ready), until shutdown.
  // The manager's threads, which call this, end before `parts` goes.
  job_options.on_store_health = [p = parts.get()](bool reachable) {
    absl::MutexLock lock(&p->mu);
    if (p->shut_down || p->grpc_server == nullptr) return;
    p->grpc_server->GetHealthCheckService()->SetServingStatus(reachable);
  };
  parts->jobs =
      std::make_unique<JobManager>(parts->store.get(), parts->datasets.get(), job_options);
  parts->control =
      std::make_unique<Executor>("control", options.control_threads, options.max_control_queue);
  std::function<void()> inference_init;
  if (options.inference_omp_threads > 0) {
    // Per thread: the networks an inference thread creates and runs all see this team size.
    inference_init = [n = options.inference_omp_threads] { omp_set_num_threads(n); };
  }
  parts->inference = std::make_unique<Executor>("inference", options.inference_threads,
                                                options.max_inference_queue, inference_init);
  // Batches run on the inference executor, which Shutdown drains before the engine goes.
  ScoringOptions scoring_options = ScoringOptionsFrom(options);
  scoring_options.metrics = &parts->metrics;
  parts->scoring = std::make_unique<ScoringEngine>(scoring_options, parts->inference.get());
  ServiceBackends backends;
  backends.jobs = parts->jobs.get();
  backends.scoring = parts->scoring.get();
  backends.control = parts->control.get();
  backends.inference = parts->inference.get();
  backends.metrics = &parts->metrics;
  backends.auth = parts->authorizer.get();
  backends.streams = parts->streams.get();
  parts->training_service = std::make_unique<TrainingServiceImpl>(backends);
  parts->scoring_service = std::make_unique<ScoringServiceImpl>(backends);
  InferenceBackends inference_backends;
  inference_backends.jobs = parts->jobs.get();
  inference_backends.store = parts->store.get();
  inference_backends.scoring = parts->scoring.get();
  inference_backends.inference = parts->inference.get();
  inference_backends.metrics = &parts->metrics;
  inference_backends.auth = parts->authorizer.get();
  parts->inference_service = std::make_unique<InferenceServiceImpl>(inference_backends);

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int port = 0;
  GAN_ASSIGN_OR_RETURN(std::shared_ptr<grpc::ServerCredentials> credentials,
                       ServerCredentials(options));
  builder.AddListeningPort(options.listen, credentials, &port);
  builder.RegisterService(parts->training_service.get());
  builder.RegisterService(parts->scoring_service.get());
  builder.RegisterService(parts->inference_service.get());
  builder.SetMaxReceiveMessageSize(options.max_message_bytes);
  builder.SetMaxSendMessageSize(options.max_message_bytes);
  // A second server on the same port must fail to start, not share the port (SO_REUSEPORT).
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, options.max_concurrent_streams);
  // Keepalive enforcement, explicit: pings more often than this, or without calls, are strikes.
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS,
                             options.min_client_ping_interval_seconds * 1000);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES, options.max_ping_strikes);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 0);
  builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_IDLE_MS,
                             options.max_connection_idle_seconds * 1000);
  builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_MS,
                             options.max_connection_age_seconds * 1000);
  // Jobs left by an earlier process are queued before any new submission can arrive.
  GAN_RETURN_IF_ERROR(parts->jobs->Start());

  int metrics_port = 0;
  if (!options.metrics_listen.empty()) {
    // Metrics are auxiliary: an address that cannot be bound (another server on this host has the
    // default port) is logged and the service runs without them.
    try {
      parts->exposer = std::make_unique<prometheus::Exposer>(options.metrics_listen);
      parts->exposer->RegisterCollectable(parts->metrics.registry());
      parts->exposer->RegisterCollectable(parts->process_collector);
      const std::vector<int> ports = parts->exposer->GetListeningPorts();
      metrics_port = ports.empty() ? 0 : ports.front();
    } catch (const std::exception& e) {
      parts->exposer.reset();
      log::Warning("metrics disabled: cannot serve --metrics_listen",
                   {{"metrics_listen", options.metrics_listen}, {"error", e.what()}});
    }
  }
  {
    absl::MutexLock lock(&parts->mu);
    parts->grpc_server = builder.BuildAndStart();
  }
  if (parts->grpc_server == nullptr || port == 0) {
    parts->jobs->Shutdown();
    return absl::UnavailableError(absl::StrCat("--listen ", options.listen, ": cannot listen"));
  }
  parts->grpc_server->GetHealthCheckService()->SetServingStatus(true);
  log::Info("server listening", {{"listen", options.listen},
                                 {"port", port},
                                 {"metrics_port", metrics_port},
                                 {"data_dir", options.data_dir}});
  std::unique_ptr<Server> server(new Server(std::move(parts)));
  server->port_ = port;
  server->metrics_port_ = metrics_port;
  return server;
}

Server::Server(std::unique_ptr<Parts> parts) : parts_(std::move(parts)) {}

Server::~Server() { Shutdown(); }

absl::Status Server::ReloadTokens() {
  if (parts_->authenticator == nullptr) return absl::OkStatus();
  absl::Status status = parts_->authenticator->Reload();
  if (status.ok()) {
    log::Info("identities reloaded",
              {{"tokens", static_cast<int64_t>(parts_->authenticator->tokens())}});
  } else {
    log::Error("identities not reloaded; the previous tokens stay in force", {{"status", status}});
  }
  return status;
}

void Server::Wait() { parts_->stopped.WaitForNotification(); }

void Server::Shutdown() {
  {
    absl::MutexLock lock(&parts_->mu);
    if (parts_->shut_down) return;
    parts_->shut_down = true;
  }
  Parts& p = *parts_;
  log::Info("shutdown started: health is NOT_SERVING");
  p.grpc_server->GetHealthCheckService()->SetServingStatus(false);
  p.jobs->Shutdown();  // running jobs checkpoint after their current step; streams are woken
  log::Info("jobs stopped; in-flight calls get the grace period",
            {{"shutdown_grace_seconds", p.options.shutdown_grace_seconds}});
  // The executors keep serving while gRPC drains, so calls already handed off still finish.
  p.grpc_server->Shutdown(std::chrono::system_clock::now() +
                          std::chrono::seconds(p.options.shutdown_grace_seconds));
  p.control->Shutdown();
  p.inference->Shutdown();
  p.exposer.reset();
  log::Info("server stopped");
  p.stopped.Notify();
}

}  // namespace gan::server
