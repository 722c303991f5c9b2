// gan-server: the GAN training service.
//
//   build/bin/gan-server [--listen 127.0.0.1:50051] [--data_dir ./gan-data]
//                        [--metrics_listen 127.0.0.1:9464] ...
//
// Prometheus metrics (server/metrics.h, server/process_collector.h) are served on
// http://<metrics_listen>/metrics unless --metrics_listen is empty.
// Serves gan.v1.TrainingService, gan.v1.ScoringService, grpc.health.v1.Health and server
// reflection. SIGTERM or SIGINT: health turns NOT_SERVING, running jobs stop after their current
// step and checkpoint (they resume at the next start), streams end, and the process exits.

#include <signal.h>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/health_check_service_interface.h"
#include "prometheus/exposer.h"
#include "server/dataset_registry.h"
#include "server/job_manager.h"
#include "server/job_store.h"
#include "server/metrics.h"
#include "server/process_collector.h"
#include "server/scoring_engine.h"
#include "server/service_impl.h"

namespace {

struct Flags {
  std::string listen = "127.0.0.1:50051";
  std::string metrics_listen = "127.0.0.1:9464";
  std::string data_dir = "./gan-data";
  std::string default_dataset = "fashion-mnist";
  std::string fashion_mnist_dir = gan::kFashionMnistDir;
  int max_concurrent_jobs = 1;
  int max_queued_jobs = 64;
  int threads_per_job = 2;
  int64_t checkpoint_every = 500;
  int keep_checkpoints = 3;
  int64_t max_steps = 10'000'000;
  int max_batch_size = 4096;
  int64_t max_score_batch = 1024;
  int max_sample_count = 1024;
  int max_cached_models = 4;
  int max_message_bytes = 16 << 20;
  int max_concurrent_streams = 100;
  int max_connection_idle_seconds = 300;
  int max_connection_age_seconds = 3600;
  int shutdown_grace_seconds = 5;
};

int Serve(const Flags& flags) {
  std::error_code error;
  std::filesystem::create_directories(flags.data_dir, error);
  if (error) {
    std::fprintf(stderr, "gan-server: cannot create --data_dir %s: %s\n", flags.data_dir.c_str(),
                 error.message().c_str());
    return 1;
  }
  auto store = gan::server::JobStore::Open(flags.data_dir + "/jobs.sqlite");
  if (!store.ok()) {
    std::fprintf(stderr, "gan-server: %s\n", store.status().ToString().c_str());
    return 1;
  }
  gan::server::Metrics metrics;
  gan::server::DatasetRegistry datasets(flags.data_dir, flags.fashion_mnist_dir);
  gan::server::JobManagerOptions job_options;
  job_options.data_dir = flags.data_dir;
  job_options.max_concurrent_jobs = flags.max_concurrent_jobs;
  job_options.max_queued_jobs = flags.max_queued_jobs;
  job_options.threads_per_job = flags.threads_per_job;
  job_options.defaults.dataset = flags.default_dataset;
  job_options.defaults.checkpoint_every = flags.checkpoint_every;
  job_options.defaults.keep_checkpoints = flags.keep_checkpoints;
  job_options.defaults.max_steps = flags.max_steps;
  job_options.defaults.limits.max_batch_size = flags.max_batch_size;
  job_options.metrics = &metrics;
  gan::server::JobManager jobs(store->get(), &datasets, job_options);
  gan::server::ScoringOptions scoring_options;
  scoring_options.max_cached_models = flags.max_cached_models;
  scoring_options.max_score_batch = flags.max_score_batch;
  scoring_options.max_sample_count = flags.max_sample_count;
  gan::server::ScoringEngine scoring(scoring_options);
  gan::server::TrainingServiceImpl training_service(&jobs, &scoring, &metrics);
  gan::server::ScoringServiceImpl scoring_service(&jobs, &scoring, &metrics);

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(flags.listen, grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&training_service);
  builder.RegisterService(&scoring_service);
  builder.SetMaxReceiveMessageSize(flags.max_message_bytes);
  builder.SetMaxSendMessageSize(flags.max_message_bytes);
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, flags.max_concurrent_streams);
  builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_IDLE_MS,
                             flags.max_connection_idle_seconds * 1000);
  builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_MS,
                             flags.max_connection_age_seconds * 1000);
  // Jobs left by an earlier process are queued before any new submission can arrive.
  if (auto s = jobs.Start(); !s.ok()) {
    std::fprintf(stderr, "gan-server: %s\n", s.ToString().c_str());
    return 1;
  }
  // Metrics are auxiliary: an address that cannot be bound (another server on this host has the
  // default port) is reported and the service runs without them. The exposer is destroyed
  // (stops serving) before the metrics and the manager it reads.
  auto process_collector = std::make_shared<gan::server::ProcessCollector>();
  std::unique_ptr<prometheus::Exposer> exposer;
  if (!flags.metrics_listen.empty()) {
    try {
      exposer = std::make_unique<prometheus::Exposer>(flags.metrics_listen);
      exposer->RegisterCollectable(metrics.registry());
      exposer->RegisterCollectable(process_collector);
    } catch (const std::exception& e) {
      exposer.reset();
      std::fprintf(stderr,
                   "gan-server: warning: no metrics, cannot serve --metrics_listen %s: %s\n",
                   flags.metrics_listen.c_str(), e.what());
    }
  }
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    std::fprintf(stderr, "gan-server: cannot listen on %s\n", flags.listen.c_str());
    return 1;
  }
  server->GetHealthCheckService()->SetServingStatus(true);
  std::printf("gan-server listening on %s (port %d), data in %s\n", flags.listen.c_str(), port,
              flags.data_dir.c_str());
  if (exposer != nullptr) {
    const std::vector<int> ports = exposer->GetListeningPorts();
    std::printf("gan-server metrics on http://%s/metrics (metrics port %d)\n",
                flags.metrics_listen.c_str(), ports.empty() ? 0 : ports.front());
  }
  std::fflush(stdout);

  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  int signal_number = 0;
  sigwait(&signals, &signal_number);
  std::printf("gan-server: signal %d, shutting down\n", signal_number);
  std::fflush(stdout);
  server->GetHealthCheckService()->SetServingStatus(false);
  jobs.Shutdown();  // running jobs checkpoint after their current step
  server->Shutdown(std::chrono::system_clock::now() +
                   std::chrono::seconds(flags.shutdown_grace_seconds));
  std::printf("gan-server: stopped\n");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // Every thread inherits this mask, so SIGTERM/SIGINT reach only sigwait in main.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  Flags f;
  CLI::App app{"GAN training service (gRPC)"};
  app.add_option("--listen", f.listen, "gRPC address")->capture_default_str();
  app.add_option("--metrics_listen", f.metrics_listen,
                 "Prometheus /metrics address (host:port); empty disables")
      ->capture_default_str();
  app.add_option("--data_dir", f.data_dir,
                 "SQLite job store, checkpoints and datasets/<name>/ folders")
      ->capture_default_str();
  app.add_option("--default_dataset", f.default_dataset, "dataset of jobs that name none")
      ->capture_default_str();
  app.add_option("--fashion_mnist_dir", f.fashion_mnist_dir,
                 "where Debian's dataset-fashion-mnist installs the built-in dataset")
      ->capture_default_str();
  app.add_option("--max_concurrent_jobs", f.max_concurrent_jobs, "jobs training at once")
      ->capture_default_str()->check(CLI::Range(1, 64));
  app.add_option("--max_queued_jobs", f.max_queued_jobs,
                 "queued jobs before SubmitJob is RESOURCE_EXHAUSTED")
      ->capture_default_str()->check(CLI::Range(0, 100000));
  app.add_option("--threads_per_job", f.threads_per_job, "OpenMP threads of one training job")
      ->capture_default_str()->check(CLI::Range(1, 256));
  app.add_option("--checkpoint_every", f.checkpoint_every, "default steps between checkpoints")
      ->capture_default_str()->check(CLI::Range(int64_t{1}, int64_t{1} << 40));
  app.add_option("--keep_checkpoints", f.keep_checkpoints, "default checkpoints kept per job")
      ->capture_default_str()->check(CLI::Range(1, 1000));
  app.add_option("--max_steps", f.max_steps, "largest job in steps")
      ->capture_default_str()->check(CLI::Range(int64_t{1}, int64_t{1} << 40));
  app.add_option("--max_batch_size", f.max_batch_size, "largest training batch")
      ->capture_default_str()->check(CLI::Range(1, 65536));
  app.add_option("--max_score_batch", f.max_score_batch, "most images in one Score request")
      ->capture_default_str()->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  app.add_option("--max_sample_count", f.max_sample_count, "most images in one SampleImages")
      ->capture_default_str()->check(CLI::Range(1, 1 << 20));
  app.add_option("--max_cached_models", f.max_cached_models, "checkpoints kept loaded for scoring")
      ->capture_default_str()->check(CLI::Range(1, 1024));
  app.add_option("--max_message_bytes", f.max_message_bytes,
                 "largest request or response; larger requests are RESOURCE_EXHAUSTED")
      ->capture_default_str()->check(CLI::Range(1024, 1 << 30));
  app.add_option("--max_concurrent_streams", f.max_concurrent_streams,
                 "HTTP/2 streams per connection")
      ->capture_default_str()->check(CLI::Range(1, 100000));
  app.add_option("--max_connection_idle_seconds", f.max_connection_idle_seconds,
                 "idle connections are closed after this")
      ->capture_default_str()->check(CLI::Range(1, 86400 * 7));
  app.add_option("--max_connection_age_seconds", f.max_connection_age_seconds,
                 "connections are recycled after this")
      ->capture_default_str()->check(CLI::Range(1, 86400 * 7));
  app.add_option("--shutdown_grace_seconds", f.shutdown_grace_seconds,
                 "how long in-flight calls may finish after SIGTERM")
      ->capture_default_str()->check(CLI::Range(0, 3600));
  CLI11_PARSE(app, argc, argv);
  return Serve(f);
}
