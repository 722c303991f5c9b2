// gan-server: the GAN training service. Maps flags onto gan::server::Options (server/server.h,
// where every option is documented with its default), starts the Server, and shuts it down on
// SIGTERM or SIGINT.
//
//   build/bin/gan-server [--listen 127.0.0.1:50051] [--data_dir ./gan-data] ...   (--help lists
//   all)

#include <signal.h>

#include <cstdio>
#include <string>

#include "CLI/CLI.hpp"
#include "server/log.h"
#include "server/server.h"
#include "server/string_flag.h"

int main(int argc, char** argv) {
  // Every thread inherits this mask, so SIGTERM/SIGINT (stop) and SIGHUP (re-read the token file)
  // reach only sigwait below.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  gan::server::Options o;
  CLI::App app{"GAN training service (gRPC). Every option is documented in server/server.h."};
  using gan::server::AddStringFlag;
  AddStringFlag(app, "--listen", o.listen, "gRPC address host:port (port 0: any free port)");
  AddStringFlag(app, "--metrics_listen", o.metrics_listen,
                "Prometheus /metrics address host:port; empty (--metrics_listen=) disables");
  AddStringFlag(app, "--data_dir", o.data_dir,
                "SQLite job store, checkpoints and datasets/<name>/ folders");
  AddStringFlag(app, "--job_store", o.job_store,
                "job store URL: sqlite:///path/jobs.sqlite (default <data_dir>/jobs.sqlite) or "
                "postgresql://user@host:port/db shared by replicas (password from the URL or "
                "PGPASSFILE; never logged)");
  AddStringFlag(app, "--replica_id", o.replica_id,
                "this replica's name in the job store; empty: <host name>-<pid>");
  app.add_option("--lease_seconds", o.lease_seconds,
                 "a claimed job's lease; another replica takes the job over this long after its "
                 "holder's last renewal")
      ->capture_default_str()
      ->check(CLI::Range(1, 3600));
  app.add_option("--store_poll_millis", o.store_poll_millis,
                 "shared store: how often idle workers look for jobs and streams re-read jobs "
                 "trained elsewhere without a notification")
      ->capture_default_str()
      ->check(CLI::Range(1, 600'000));
  app.add_option("--store_connect_timeout_seconds", o.store_connect_timeout_seconds,
                 "how long connecting to PostgreSQL may take")
      ->capture_default_str()
      ->check(CLI::Range(1, 600));
  AddStringFlag(app, "--default_dataset", o.default_dataset, "dataset of jobs that name none");
  AddStringFlag(app, "--fashion_mnist_dir", o.fashion_mnist_dir,
                "where Debian's dataset-fashion-mnist installs the built-in dataset");
  AddStringFlag(app, "--log_format", o.log_format, "log lines on stderr: text or json")
      ->check(CLI::IsMember({"text", "json"}));
  app.add_option("--max_concurrent_jobs", o.max_concurrent_jobs, "jobs training at once")
      ->capture_default_str()
      ->check(CLI::Range(1, 64));
  app.add_option("--max_queued_jobs", o.max_queued_jobs,
                 "queued jobs before SubmitJob is RESOURCE_EXHAUSTED")
      ->capture_default_str()
      ->check(CLI::Range(0, 100000));
  app.add_option("--threads_per_job", o.threads_per_job, "OpenMP threads of one training job")
      ->capture_default_str()
      ->check(CLI::Range(1, 256));
  app.add_option("--checkpoint_every", o.checkpoint_every, "default steps between checkpoints")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 40));
  app.add_option("--keep_checkpoints", o.keep_checkpoints, "default checkpoints kept per job")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000));
  app.add_option("--background_checkpoints", o.background_checkpoints,
                 "write periodic checkpoints from a snapshot on a background thread (false: on "
                 "the training thread, without the snapshot's memory)")
      ->capture_default_str();
  app.add_option("--max_steps", o.max_steps, "largest job in steps")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 40));
  app.add_option("--max_batch_size", o.max_batch_size, "largest training batch")
      ->capture_default_str()
      ->check(CLI::Range(1, 65536));
  app.add_option("--control_threads", o.control_threads, "threads serving SubmitJob and CancelJob")
      ->capture_default_str()
      ->check(CLI::Range(1, 64));
  app.add_option("--max_control_queue", o.max_control_queue,
                 "SubmitJob/CancelJob calls waiting before RESOURCE_EXHAUSTED")
      ->capture_default_str()
      ->check(CLI::Range(0, 100000));
  app.add_option("--inference_threads", o.inference_threads,
                 "threads serving Score and SampleImages")
      ->capture_default_str()
      ->check(CLI::Range(1, 256));
  app.add_option("--inference_omp_threads", o.inference_omp_threads,
                 "OpenMP threads of each inference thread's passes (0: OpenMP's default)")
      ->capture_default_str()
      ->check(CLI::Range(0, 256));
  app.add_option("--inference_single_thread_images", o.inference_single_thread_images,
                 "inference passes of at most this many images run on one OpenMP thread (0: none)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 20));
  app.add_option("--max_inference_queue", o.max_inference_queue,
                 "Score/SampleImages calls waiting before RESOURCE_EXHAUSTED")
      ->capture_default_str()
      ->check(CLI::Range(0, 1000000));
  app.add_option("--max_score_batch", o.max_score_batch, "most images in one Score request")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  app.add_option("--max_sample_count", o.max_sample_count, "most images in one SampleImages")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 20));
  app.add_option("--max_cached_models", o.max_cached_models, "checkpoints kept loaded for scoring")
      ->capture_default_str()
      ->check(CLI::Range(1, 1024));
  app.add_option("--max_batch_images,--inference_chunk", o.max_batch_images,
                 "most images in one inference pass: concurrent requests for a model are "
                 "batched up to this; larger requests run in passes of this many")
      ->capture_default_str()
      ->check(CLI::Range(1, 4096));
  app.add_option("--batch_timeout_micros", o.batch_timeout_micros,
                 "how long the first request of a batch waits for others to join it")
      ->capture_default_str()
      ->check(CLI::Range(0, 10'000'000));
  app.add_option("--max_message_bytes", o.max_message_bytes,
                 "largest request or response; larger requests are RESOURCE_EXHAUSTED")
      ->capture_default_str()
      ->check(CLI::Range(1024, 1 << 30));
  app.add_option("--max_concurrent_streams", o.max_concurrent_streams,
                 "HTTP/2 streams per connection")
      ->capture_default_str()
      ->check(CLI::Range(1, 100000));
  app.add_option("--max_connection_idle_seconds", o.max_connection_idle_seconds,
                 "idle connections are closed after this")
      ->capture_default_str()
      ->check(CLI::Range(1, 86400 * 7));
  app.add_option("--max_connection_age_seconds", o.max_connection_age_seconds,
                 "connections are recycled after this")
      ->capture_default_str()
      ->check(CLI::Range(1, 86400 * 7));
  app.add_option("--shutdown_grace_seconds", o.shutdown_grace_seconds,
                 "how long in-flight calls may finish after SIGTERM (running jobs first finish "
                 "their current step and checkpoint)")
      ->capture_default_str()
      ->check(CLI::Range(0, 3600));
  AddStringFlag(app, "--auth_tokens", o.auth_tokens,
                "token file: '<admin|trainer|viewer> <principal> <sha256 of token>' lines; "
                "re-read on SIGHUP; empty: no identities");
  AddStringFlag(app, "--tls_cert", o.tls_cert, "server certificate chain (PEM); enables TLS");
  AddStringFlag(app, "--tls_key", o.tls_key, "server private key (PEM)");
  AddStringFlag(app, "--tls_client_ca", o.tls_client_ca,
                "CA (PEM) that client certificates must be signed by (mutual TLS)");
  app.add_flag("--allow_insecure", o.allow_insecure,
               "serve a non-loopback --listen without TLS and tokens (not recommended)");
  app.add_option("--max_jobs_per_principal", o.max_jobs_per_principal,
                 "queued + running jobs of one principal; 0: no limit")
      ->capture_default_str()
      ->check(CLI::Range(0, 100000));
  app.add_option("--max_streams_per_principal", o.max_streams_per_principal,
                 "StreamMetrics streams one principal may have open (without --auth_tokens: "
                 "all callers together); 0: no limit")
      ->capture_default_str()
      ->check(CLI::Range(0, 1000000));
  app.add_option("--min_client_ping_interval_seconds", o.min_client_ping_interval_seconds,
                 "clients pinging more often get a strike")
      ->capture_default_str()
      ->check(CLI::Range(1, 86400));
  app.add_option("--max_ping_strikes", o.max_ping_strikes, "strikes before a connection is closed")
      ->capture_default_str()
      ->check(CLI::Range(0, 1000));
  CLI11_PARSE(app, argc, argv);

  auto server = gan::server::Server::BuildAndStart(o);
  if (!server.ok()) {
    gan::server::log::Error("server not started", {{"status", server.status()}});
    return 1;
  }
  // The readiness lines on stdout are a contract for scripts and tests (the log is on stderr):
  // the first line carries the bound gRPC port, the second (when metrics are on) the metrics port.
  std::printf("gan-server listening on %s (port %d), data in %s\n", o.listen.c_str(),
              (*server)->port(), o.data_dir.c_str());
  if ((*server)->metrics_port() > 0) {
    std::printf("gan-server metrics on http://%s/metrics (metrics port %d)\n",
                o.metrics_listen.c_str(), (*server)->metrics_port());
  }
  std::fflush(stdout);
  int signal_number = 0;
  while (true) {
    sigwait(&signals, &signal_number);
    gan::server::log::Info("signal received", {{"signal", signal_number}});
    if (signal_number != SIGHUP) break;
    (*server)->ReloadTokens().IgnoreError();  // logged by ReloadTokens; the old tokens stay
  }
  (*server)->Shutdown();
  std::printf("gan-server: stopped\n");
  return 0;
}
