#ifndef GAN_SERVER_JOB_MANAGER_H_
#define GAN_SERVER_JOB_MANAGER_H_

// Owns the training jobs: validates and queues submissions, runs them on worker threads (never on
// a gRPC thread), records metrics and checkpoints in the JobStore, cancels, and recovers after a
// restart (RUNNING jobs resume from their newest checkpoint, QUEUED ones queue again). Streams
// read the stored history through ReadEvents and ask to be woken when a job has a new event, so a
// slow client never holds up a trainer. Every job lifecycle change is logged (server/log.h).
//
// Blocking: Submit may load a dataset (once per name; about a second for Fashion-MNIST) and
// commits to the store; callers run it off gRPC threads. Cancel never waits for a training step.
// Thread-safe.

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
#include "gan/v1/service.pb.h"
#include "server/dataset_registry.h"
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
  JobDefaults defaults;
  // Job counts, training progress and running jobs' losses go here when set; must outlive the
  // manager.
  ServerMetrics* metrics = nullptr;
};

class JobManager {
 public:
  JobManager(JobStore* store, DatasetRegistry* datasets, JobManagerOptions options);
  ~JobManager();

  // Recovers jobs left by an earlier process and starts the workers. INVALID_ARGUMENT for
  // options out of range; the store's status when it cannot be read.
  absl::Status Start();
  // Stops taking jobs; running ones stop after their current step, write a checkpoint and stay
  // RUNNING in the store so the next Start resumes them. Joins the workers (logging which jobs
  // it waits for: a step in progress is never interrupted). Idempotent.
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
  // current step ends. FAILED_PRECONDITION for a job that already ended.
  absl::StatusOr<gan::v1::Job> Cancel(const std::string& job_id);

  // The checkpoint file of a job: its newest (step 0) or the one at `step`. FAILED_PRECONDITION
  // when the job has none yet, NOT_FOUND for an unknown job or step.
  absl::StatusOr<std::string> CheckpointPath(const std::string& job_id, int64_t step);

  // At most `limit` of the job's stored events with sequence > after_sequence and
  // step >= from_step, in order (JobStore::ReadMetrics).
  absl::StatusOr<std::vector<MetricRow>> ReadEvents(const std::string& job_id, int64_t from_step,
                                                    int64_t after_sequence, int limit);

  // Calls `callback` once, on another thread, when the job's next event has been stored or the
  // manager shuts down. Never calls it from within this call. The callback must not block.
  // A caller re-reads the events after registering, so an event stored just before is not missed.
  void NotifyOnNextEvent(const std::string& job_id, std::function<void()> callback);
  bool shutting_down();

 private:
  struct QueuedJob {
    std::string job_id;
    bool resume;
  };
  void WorkerLoop();
  // Returns false when the job could not be started because the store failed; the caller
  // requeues it.
  bool RunJob(const QueuedJob& job);
  void Finish(const std::string& job_id, gan::v1::JobState state, const std::string& message);
  void Notify(const std::string& job_id);
  std::string CheckpointDir(const std::string& job_id) const;

  JobStore* store_;
  DatasetRegistry* datasets_;
  const JobManagerOptions options_;

  absl::Mutex mu_;
  std::deque<QueuedJob> queue_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> running_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> cancel_requested_ ABSL_GUARDED_BY(mu_);
  bool shutting_down_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> workers_;

  absl::Mutex waiters_mu_;
  std::map<std::string, std::vector<std::function<void()>>> waiters_ ABSL_GUARDED_BY(waiters_mu_);
};

}  // namespace gan::server

#endif  // GAN_SERVER_JOB_MANAGER_H_
