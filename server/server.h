#ifndef GAN_SERVER_SERVER_H_
#define GAN_SERVER_SERVER_H_

// The GAN training service as a library: gan-server's main() only maps flags onto Options, and
// tests run the same Server in-process.
//
//   gan::server::Options options;
//   options.listen = "127.0.0.1:0";
//   auto server = gan::server::Server::BuildAndStart(options);
//   ... (*server)->port() ...
//   (*server)->Shutdown();
//
// Serves gan.v1.TrainingService, gan.v1.ScoringService, the Open Inference Protocol's
// inference.GRPCInferenceService (server/inference_service.h), grpc.health.v1.Health and server
// reflection on `listen`, and Prometheus metrics on `metrics_listen`.

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "core/dataset.h"
#include "core/gan_spec.h"
#include "core/training_defaults.h"
#include "server/job_manager.h"
#include "server/scoring_engine.h"

namespace gan::server {

// Every server option and its default, in one place; gan-server has one flag per field, named
// like it (--listen, --max_queued_jobs, ...).
struct Options {
  // gRPC address (host:port; port 0 picks a free one, see Server::port()).
  std::string listen = "127.0.0.1:50051";
  // Prometheus /metrics address (host:port); empty disables metrics. An address that cannot be
  // bound is logged and the service runs without metrics.
  std::string metrics_listen = "127.0.0.1:9464";
  // The SQLite job store (jobs.sqlite, unless job_store names another), checkpoints
  // (jobs/<id>/checkpoints) and datasets/<name>/. Replicas sharing a PostgreSQL job store share
  // this directory too (shared storage: a replica taking a job over resumes from its checkpoint).
  std::string data_dir = "./gan-data";
  // The job store (server/job_store_url.h): empty means sqlite://<data_dir>/jobs.sqlite, one
  // process per file; postgresql://user@host:port/db (any libpq URI; the password from the URI or
  // PGPASSFILE) is shared by several replicas. The password is never logged.
  std::string job_store;
  // This replica's name in the store: the holder of the leases of the jobs it trains, shown as
  // Job.replica. Empty: <host name>-<pid>.
  std::string replica_id;
  // A claimed job's lease lasts this long unless renewed (every third of it). A replica that dies
  // or pauses loses its jobs to another replica this long after its last renewal; one that cannot
  // reach the store for this long stops training them (they resume wherever a lease is next won).
  int lease_seconds = 15;
  // With a shared store, how often idle workers look for jobs to claim and streams re-read a job
  // trained elsewhere when no notification arrived (LISTEN/NOTIFY normally wakes both at once).
  int store_poll_millis = 1000;
  // How long connecting to PostgreSQL may take before the call fails with UNAVAILABLE.
  int store_connect_timeout_seconds = 5;
  // Dataset of jobs that name none.
  std::string default_dataset = gan::kDefaultDataset;
  // Where Debian's dataset-fashion-mnist installs the built-in "fashion-mnist".
  std::string fashion_mnist_dir = gan::kFashionMnistDir;
  // Log lines on stderr: "text" or "json" (JSON lines for log collectors).
  std::string log_format = "text";

  // Jobs training at once (worker threads), and jobs waiting beyond them before SubmitJob is
  // RESOURCE_EXHAUSTED.
  int max_concurrent_jobs = 1;
  int max_queued_jobs = 64;
  // OpenMP threads of one training job.
  int threads_per_job = gan::kDefaultTrainingThreads;
  // Defaults for jobs whose spec leaves them unset.
  int64_t checkpoint_every = gan::kDefaultCheckpointEvery;
  int keep_checkpoints = gan::kDefaultKeepCheckpoints;
  // Periodic checkpoints written from a snapshot on a background thread (TrainingOptions).
  bool background_checkpoints = gan::kDefaultBackgroundCheckpoints;
  // Caps on what a job may ask for.
  int64_t max_steps = 10'000'000;
  int max_batch_size = GanLimits{}.max_batch_size;

  // Threads and waiting calls for SubmitJob and CancelJob (store commits, dataset loading).
  int control_threads = 2;
  int max_control_queue = 128;
  // Threads for Score, SampleImages and ModelInfer (model loading and inference), and calls
  // waiting for them: requests waiting for a batch across all models, and SampleImages calls
  // waiting for a thread, each up to this bound; more are RESOURCE_EXHAUSTED.
  int inference_threads = 2;
  // OpenMP threads of each inference thread's oneDNN passes; 0: OpenMP's default (OMP_NUM_THREADS,
  // else one per core). 1 suits many small concurrent requests (docs/performance.md).
  int inference_omp_threads = 0;
  // Inference passes of networks sized for at most this many images run on one OpenMP thread
  // (small passes lose more to waking a team than they gain from it); 0: none. 8 measured best
  // on 2 cores (docs/performance.md, "OpenMP threads of small passes").
  int64_t inference_single_thread_images = 8;
  int max_inference_queue = 256;
  // Most images in one Score request, and in one SampleImages call.
  int64_t max_score_batch = 1024;
  int max_sample_count = 1024;
  // Checkpoints kept loaded for scoring and sampling (least recently used evicted first).
  int max_cached_models = 4;
  // Dynamic batching: concurrent Score and ModelInfer requests for the same checkpoint are merged
  // into one network pass of at most max_batch_images images, which starts when it is full or
  // batch_timeout_micros after its first request arrived (0: as soon as a thread is free, taking
  // whatever is waiting; requests arriving during a pass still merge into the next one, which is
  // what fills batches under load). A pass of n images runs a network sized for n (powers of two
  // up to max_batch_images, created per model on first use and sharing its weights); a request
  // larger than max_batch_images runs alone in passes of that many. Sampling uses the same sizes.
  // The default 0 was faster at every load measured (docs/performance.md, "Batch timeout").
  // (--inference_chunk is an older name of --max_batch_images.)
  int max_batch_images = 64;
  int batch_timeout_micros = 0;

  // Largest request or response; larger requests are RESOURCE_EXHAUSTED.
  int max_message_bytes = 16 << 20;
  // HTTP/2 streams per connection; connections idle or older than these are closed.
  int max_concurrent_streams = 100;
  int max_connection_idle_seconds = 300;
  int max_connection_age_seconds = 3600;
  // After Shutdown starts, how long in-flight calls may finish before they are cancelled. A
  // training step in progress is never interrupted: shutdown first waits for every running job
  // to finish its current step and write its checkpoint (each logged), so it takes up to one
  // step plus one checkpoint write plus this grace.
  int shutdown_grace_seconds = 5;

  // Identity: a token file ("<role> <principal> <sha256 of token>" lines, server/auth.h); empty
  // means no identities (every caller is the anonymous admin). Re-read on SIGHUP
  // (Server::ReloadTokens).
  std::string auth_tokens;
  // TLS: the server's certificate chain and key (PEM); with tls_client_ca, clients must present a
  // certificate signed by that CA (mutual TLS).
  std::string tls_cert;
  std::string tls_key;
  std::string tls_client_ca;
  // A non-loopback --listen refuses to start without TLS and tokens unless this is set.
  bool allow_insecure = false;
  // QUEUED + RUNNING jobs one principal may have; 0: no limit.
  int max_jobs_per_principal = 16;
  // StreamMetrics streams one principal may have open at once; 0: no limit. One more is
  // RESOURCE_EXHAUSTED naming this option; a stream's place is given back when it ends for any
  // reason (its job's final event, the client cancelling or going away, an error, shutdown).
  // Admins count like everyone else. Without auth_tokens every caller is the one anonymous
  // principal, so this then caps the streams of the whole server together.
  int max_streams_per_principal = 32;
  // HTTP/2 keepalive enforcement: clients may ping at most every this many seconds (more often
  // counts as a strike; after max_ping_strikes the connection is closed).
  int min_client_ping_interval_seconds = 60;
  int max_ping_strikes = 2;
};

// True for 127.0.0.0/8, ::1 and localhost listen addresses ("host:port", "[::1]:port").
bool IsLoopbackAddress(const std::string& listen);

// <host name>-<pid>: the replica id when --replica_id is empty.
std::string DefaultReplicaId();

// The parts of Options each component takes.
JobManagerOptions JobManagerOptionsFrom(const Options& options);
ScoringOptions ScoringOptionsFrom(const Options& options);

class Server {
 public:
  // Creates the data directory, opens the job store, recovers jobs left by an earlier process,
  // and starts serving. The status names what failed (e.g. an address that cannot be bound).
  static absl::StatusOr<std::unique_ptr<Server>> BuildAndStart(const Options& options);

  // Shuts down if still running.
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // The bound gRPC port, and the metrics port (0 when metrics are off or could not be bound).
  int port() const { return port_; }
  int metrics_port() const { return metrics_port_; }

  // Blocks until Shutdown has finished.
  void Wait();
  // Health turns NOT_SERVING; running jobs stop after their current step and checkpoint (they
  // resume at the next start); streams end; in-flight calls get shutdown_grace_seconds. Logged
  // step by step. Idempotent; safe from any thread but the gRPC ones.
  void Shutdown();

  // Re-reads the token file (SIGHUP). On error the previous tokens stay in force and the error
  // is returned (and logged). OK and nothing done without --auth_tokens.
  absl::Status ReloadTokens();

 private:
  struct Parts;
  explicit Server(std::unique_ptr<Parts> parts);

  std::unique_ptr<Parts> parts_;
  int port_ = 0;
  int metrics_port_ = 0;
};

}  // namespace gan::server

#endif  // GAN_SERVER_SERVER_H_
