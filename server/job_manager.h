#ifndef GAN_SERVER_JOB_MANAGER_H_
#define GAN_SERVER_JOB_MANAGER_H_

// Owns this replica's part of the training jobs: validates and stores submissions, and runs jobs
// on worker threads (never on a gRPC thread), each claimed from the JobStore under a lease that a
// renewer thread keeps alive; records metrics and checkpoints with writes fenced by that lease;
// cancels wherever the job runs (through the store's cancel_requested); and takes over jobs
// whose lease ran out (their replica died or paused) or was released (it shut down), resuming
// them from their newest checkpoint. With SQLite the one process holds every lease, so a restart
// resumes RUNNING jobs at once and QUEUED ones in their order. Streams
// read the stored history through ReadEvents and ask to be woken when a job has a new event, so a
// slow client never holds up a trainer. Every job lifecycle change is logged (server/log.h).
//
// Blocking: Submit may load a dataset (once per name; about a second for Fashion-MNIST) and
// commits to the store; callers run it off gRPC threads. Cancel never waits for a training step.
// Thread-safe.

#include <atomic>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "core/training_defaults.h"
#include "gan/v1/service.pb.h"
#include "server/dataset_registry.h"
#include "server/init_from.h"
#include "server/job_spec.h"
#include "server/job_store.h"
#include "server/server_metrics.h"

namespace gan::server {

// Filled from the server's Options (server/server.h), the one home of their defaults.
struct JobManagerOptions {
  std::string data_dir;            // jobs/<job_id>/checkpoints live here
  int max_concurrent_jobs = 0;     // worker threads; at least 1
  int max_queued_jobs = 0;         // queued jobs before Submit is RESOURCE_EXHAUSTED
  int max_jobs_per_principal = 0;  // QUEUED + RUNNING jobs of one principal; 0: no limit
  int threads_per_job = 0;         // OpenMP threads of one job's oneDNN primitives; at least 1
  bool background_checkpoints = kDefaultBackgroundCheckpoints;  // TrainingOptions'
  std::string replica_id;  // this replica's name as a lease holder; not empty
  absl::Duration lease;    // a claim's lease, renewed every third of it
  // Shared store: how often idle workers look for jobs, and waiting streams re-read their job.
  absl::Duration poll_interval;
  JobDefaults defaults;
  // Job counts, training progress and running jobs' losses go here when set; must outlive the
  // manager.
  ServerMetrics* metrics = nullptr;
  // Called (on a manager thread) when the store turns unreachable (false: a call failed with
  // UNAVAILABLE) or reachable again (true); the server's health follows it.
  std::function<void(bool reachable)> on_store_health;
};

class JobManager {
 public:
  JobManager(JobStore* store, DatasetRegistry* datasets, JobManagerOptions options);
  ~JobManager();

  // Starts the workers (which claim jobs, those left by an earlier process first) and the lease
  // renewer. INVALID_ARGUMENT for options out of range; the store's status when it cannot be read.
  absl::Status Start();
  // Stops taking jobs; running ones stop after their current step, write a checkpoint, stay
  // RUNNING in the store and have their leases released, so another replica (or the next Start)
  // resumes them at once. Joins the workers (logging which jobs it waits for: a step in progress
  // is never interrupted). Idempotent.
  void Shutdown();

  // Queues a job owned by `principal` (empty on a server without identities). RESOURCE_EXHAUSTED
  // naming the option when the queue or the principal's quota is full.
  absl::StatusOr<gan::v1::Job> Submit(const std::string& principal, const std::string& request_id,
                                      const gan::v1::JobSpec& spec);
  absl::StatusOr<gan::v1::Job> Submit(const std::string& request_id, const gan::v1::JobSpec& spec) {
    return Submit("", request_id, spec);
  }
  absl::StatusOr<gan::v1::Job> Get(const std::string& job_id);
  // With `principal`, only that principal's jobs.
  absl::StatusOr<gan::v1::ListJobsResponse> List(const gan::v1::ListJobsRequest& request,
                                                 const std::optional<std::string>& principal);
  absl::StatusOr<gan::v1::ListJobsResponse> List(const gan::v1::ListJobsRequest& request) {
    return List(request, std::nullopt);
  }
  // A queued job is CANCELLED at once. A running job is asked to stop and the call returns
  // without waiting: the job is still RUNNING in the answer and becomes CANCELLED when its
  // current step ends (on another replica: when that replica next renews its lease, within a
  // third of the lease). FAILED_PRECONDITION for a job that already ended.
  absl::StatusOr<gan::v1::Job> Cancel(const std::string& job_id);

  // The checkpoint file of a job: its newest (step 0) or the one at `step`. FAILED_PRECONDITION
  // when the job has none yet, NOT_FOUND for an unknown job or step.
  absl::StatusOr<std::string> CheckpointPath(const std::string& job_id, int64_t step);
  // CheckpointPath as a function (for init_from, server/init_from.h).
  CheckpointLookup CheckpointPathLookup();

  // At most `limit` of the job's stored events with sequence > after_sequence and
  // step >= from_step, in order (JobStore::ReadMetrics).
  absl::StatusOr<std::vector<MetricRow>> ReadEvents(const std::string& job_id, int64_t from_step,
                                                    int64_t after_sequence, int limit);

  // Calls `callback` once, on another thread, when the job's next event has been stored (by this
  // replica, or by another one: a store notification, or at the latest after poll_interval with
  // a shared store, when the callback may come without a new event) or the manager shuts down.
  // Never calls it from within this call. The callback must not block. A caller re-reads the events
  // after registering, so an event stored just before is not missed.
  // Returns the registration, which CancelNotify withdraws (a stream that ends first: otherwise
  // the callback would be kept until the job's next event, which may be hours away).
  uint64_t NotifyOnNextEvent(const std::string& job_id, std::function<void()> callback);
  // Drops the callback of `registration` unless it has been called or is being called.
  void CancelNotify(const std::string& job_id, uint64_t registration);
  bool shutting_down();

 private:
  struct RunningJob {
    Lease lease;
    absl::Time renewed;  // the last successful renewal (or the claim)
  };
  void WorkerLoop();
  // Returns false when the job could not be started because the store failed; the worker waits
  // before claiming again (the job's lease was released, so any replica may retry it).
  bool RunJob(const ClaimedJob& claim);
  // Renews the leases of this replica's running jobs; marks lost ones and picks up cancels.
  void RenewLoop();
  // With a shared store, wakes every waiting stream each poll_interval (LISTEN/NOTIFY fallback).
  void PollLoop();
  // Ends the job in `state` under `lease` (empty: not fenced), then stores the `finished` event.
  void Finish(const std::string& job_id, gan::v1::JobState state, const std::string& message,
              const Lease& lease);
  // The `finished` event, metrics and log line of a job that just ended in `state`.
  void Finished(const std::string& job_id, gan::v1::JobState before, gan::v1::JobState state,
                const std::string& message, const Lease& lease);
  // The job's lease is gone (or one of its events could not be stored): its training stops
  // without another write.
  void LoseLease(const std::string& job_id, const absl::Status& why);
  bool LeaseLost(const std::string& job_id);
  // Notes whether a store call reached the store; reports changes (logged, on_store_health).
  void ReportStore(const absl::Status& status);
  void Notify(const std::string& job_id);
  void NotifyAll();
  std::string CheckpointDir(const std::string& job_id) const;

  JobStore* store_;
  DatasetRegistry* datasets_;
  const JobManagerOptions options_;

  absl::Mutex mu_;
  std::map<std::string, RunningJob> running_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> cancel_requested_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> lease_lost_ ABSL_GUARDED_BY(mu_);
  bool shutting_down_ ABSL_GUARDED_BY(mu_) = false;
  // Incremented when a job may be waiting to be claimed (a submission, a notification).
  int64_t claim_wakeups_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<std::thread> workers_;
  std::thread renewer_;
  std::thread poller_;
  std::atomic<bool> store_reachable_{true};

  absl::Mutex waiters_mu_;
  // Per job, by registration.
  std::map<std::string, std::map<uint64_t, std::function<void()>>> waiters_
      ABSL_GUARDED_BY(waiters_mu_);
  uint64_t next_registration_ ABSL_GUARDED_BY(waiters_mu_) = 0;
};

}  // namespace gan::server

#endif  // GAN_SERVER_JOB_MANAGER_H_
