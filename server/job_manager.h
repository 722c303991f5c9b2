#ifndef GAN_SERVER_JOB_MANAGER_H_
#define GAN_SERVER_JOB_MANAGER_H_

// Owns the training jobs: validates and queues submissions, runs them on worker threads (never on
// a gRPC thread), records metrics and checkpoints in the JobStore, cancels, and recovers after a
// restart (RUNNING jobs resume from their newest checkpoint, QUEUED ones queue again). Streams
// read the stored history and ask to be woken when a job has a new event, so a slow client never
// holds up a trainer. Thread-safe.

#include <atomic>
#include <deque>
#include <functional>
#include <map>
#include <memory>
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
#include "server/metrics.h"

namespace gan::server {

struct JobManagerOptions {
  std::string data_dir = "./gan-data";  // jobs/<job_id>/checkpoints live here
  int max_concurrent_jobs = 1;
  int max_queued_jobs = 64;
  int threads_per_job = 2;  // OpenMP threads of one job's oneDNN primitives
  JobDefaults defaults;
  // Job counts, training progress and running jobs' losses go here when set; must outlive the
  // manager.
  Metrics* metrics = nullptr;
};

class JobManager {
 public:
  JobManager(JobStore* store, DatasetRegistry* datasets, JobManagerOptions options);
  ~JobManager();

  // Recovers jobs left by an earlier process and starts the workers.
  absl::Status Start();
  // Stops taking jobs; running ones stop after their current step, write a checkpoint and stay
  // RUNNING in the store so the next Start resumes them. Joins the workers. Idempotent.
  void Shutdown();

  absl::StatusOr<gan::v1::Job> Submit(const std::string& request_id,
                                      const gan::v1::JobSpec& spec);
  absl::StatusOr<gan::v1::Job> Get(const std::string& job_id);
  absl::StatusOr<gan::v1::ListJobsResponse> List(const gan::v1::ListJobsRequest& request);
  absl::StatusOr<gan::v1::Job> Cancel(const std::string& job_id);

  // The checkpoint file of a job: its newest (step 0) or the one at `step`. FAILED_PRECONDITION
  // when the job has none yet, NOT_FOUND for an unknown job or step.
  absl::StatusOr<std::string> CheckpointPath(const std::string& job_id, int64_t step);

  // Calls `callback` once, on another thread, when the job's next event has been stored or the
  // manager shuts down. Never calls it from within this call. The callback must not block.
  // A caller re-reads the store after registering, so an event stored just before is not missed.
  void NotifyOnNextEvent(const std::string& job_id, std::function<void()> callback);
  bool shutting_down();

  JobStore* store() { return store_; }

 private:
  struct QueuedJob {
    std::string job_id;
    bool resume;
  };
  void WorkerLoop();
  void RunJob(const QueuedJob& job);
  void Finish(const std::string& job_id, gan::v1::JobState state, const std::string& message);
  void Notify(const std::string& job_id);
  std::string CheckpointDir(const std::string& job_id) const;

  JobStore* store_;
  DatasetRegistry* datasets_;
  JobManagerOptions options_;

  absl::Mutex mu_;
  std::deque<QueuedJob> queue_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> running_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> cancel_requested_ ABSL_GUARDED_BY(mu_);
  bool shutting_down_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> workers_;

  absl::Mutex waiters_mu_;
  std::map<std::string, std::vector<std::function<void()>>> waiters_
      ABSL_GUARDED_BY(waiters_mu_);
};

}  // namespace gan::server

#endif  // GAN_SERVER_JOB_MANAGER_H_
