#include "server/job_manager.h"

#include <omp.h>

#include <chrono>
#include <filesystem>
#include <optional>

#include "absl/strings/str_cat.h"
#include "core/step_metrics_proto.h"
#include "core/training_run.h"
#include "io/status_macros.h"
#include "server/job_state.h"
#include "server/log.h"

namespace gan::server {
namespace {

// How long a worker waits before retrying a job it could not start because the store failed.
constexpr absl::Duration kStoreRetryDelay = absl::Seconds(1);

}  // namespace

JobManager::JobManager(JobStore* store, DatasetRegistry* datasets, JobManagerOptions options)
    : store_(store), datasets_(datasets), options_(std::move(options)) {}

JobManager::~JobManager() { Shutdown(); }

std::string JobManager::CheckpointDir(const std::string& job_id) const {
  return absl::StrCat(options_.data_dir, "/jobs/", job_id, "/checkpoints");
}

absl::Status JobManager::Start() {
  if (options_.max_concurrent_jobs < 1 || options_.threads_per_job < 1 ||
      options_.max_queued_jobs < 0) {
    return absl::InvalidArgumentError(
        "job manager: max_concurrent_jobs and threads_per_job must be >= 1, max_queued_jobs >= 0");
  }
  GAN_ASSIGN_OR_RETURN(std::vector<JobRecord> running,
                       store_->JobsInState(gan::v1::JOB_STATE_RUNNING));
  GAN_ASSIGN_OR_RETURN(std::vector<JobRecord> queued,
                       store_->JobsInState(gan::v1::JOB_STATE_QUEUED));
  if (ServerMetrics* metrics = options_.metrics) {
    for (gan::v1::JobState state :
         {gan::v1::JOB_STATE_QUEUED, gan::v1::JOB_STATE_RUNNING, gan::v1::JOB_STATE_SUCCEEDED,
          gan::v1::JOB_STATE_FAILED, gan::v1::JOB_STATE_CANCELLED}) {
      GAN_ASSIGN_OR_RETURN(int64_t count, store_->CountJobs(state));
      metrics->SetJobs(state, count);
    }
  }
  {
    absl::MutexLock lock(&mu_);
    for (const JobRecord& r : running) queue_.push_back({r.job_id, /*resume=*/true});
    for (const JobRecord& r : queued) queue_.push_back({r.job_id, /*resume=*/false});
  }
  if (!running.empty() || !queued.empty()) {
    log::Info("jobs recovered", {{"running", static_cast<int64_t>(running.size())},
                                 {"queued", static_cast<int64_t>(queued.size())}});
  }
  for (int i = 0; i < options_.max_concurrent_jobs; ++i) {
    workers_.emplace_back([this] { WorkerLoop(); });
  }
  return absl::OkStatus();
}

void JobManager::Shutdown() {
  std::set<std::string> running;
  {
    absl::MutexLock lock(&mu_);
    if (shutting_down_) return;
    shutting_down_ = true;
    running = running_;
  }
  for (const std::string& job_id : running) {
    log::Info("shutdown waits for a job to finish its current step and checkpoint",
              {{"job_id", job_id}});
  }
  for (std::thread& worker : workers_) worker.join();
  workers_.clear();
  // Wake every waiting stream so it can end now instead of at the server's grace deadline.
  std::map<std::string, std::vector<std::function<void()>>> waiters;
  {
    absl::MutexLock lock(&waiters_mu_);
    waiters.swap(waiters_);
  }
  for (auto& [job_id, callbacks] : waiters) {
    for (auto& callback : callbacks) callback();
  }
}

absl::StatusOr<gan::v1::Job> JobManager::Submit(const std::string& principal,
                                                const std::string& request_id,
                                                const gan::v1::JobSpec& spec) {
  if (request_id.size() > 128) {
    return absl::InvalidArgumentError("request_id: at most 128 characters");
  }
  GAN_ASSIGN_OR_RETURN(ResolvedJob resolved, ResolveJobSpec(spec, options_.defaults, datasets_));
  absl::MutexLock lock(&mu_);
  if (shutting_down_) return absl::UnavailableError("the server is shutting down");
  // A retry of an accepted submission gets its job back even when the queue is full now: the
  // store asks `admit` only before inserting a new job.
  auto admit = [this](int64_t principal_active_jobs) -> absl::Status {
    mu_.AssertHeld();
    if (static_cast<int>(queue_.size()) >= options_.max_queued_jobs) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "the queue is full (", options_.max_queued_jobs, " jobs, --max_queued_jobs)"));
    }
    if (options_.max_jobs_per_principal > 0 &&
        principal_active_jobs >= options_.max_jobs_per_principal) {
      return absl::ResourceExhaustedError(
          absl::StrCat("quota: at most ", options_.max_jobs_per_principal,
                       " queued or running jobs per principal (--max_jobs_per_principal)"));
    }
    return absl::OkStatus();
  };
  bool created = false;
  GAN_ASSIGN_OR_RETURN(
      JobRecord record,
      store_->CreateJob({principal, request_id, spec, resolved.total_steps}, admit, &created));
  if (created) {
    queue_.push_back({record.job_id, false});
    if (options_.metrics != nullptr) options_.metrics->JobSubmitted();
    log::Info("job submitted", {{"job_id", record.job_id},
                                {"principal", principal},
                                {"preset", spec.preset()},
                                {"dataset", resolved.dataset},
                                {"total_steps", resolved.total_steps},
                                {"queued", static_cast<int64_t>(queue_.size())}});
  }
  return ToProto(record);
}

absl::StatusOr<gan::v1::Job> JobManager::Get(const std::string& job_id) {
  GAN_ASSIGN_OR_RETURN(JobRecord record, store_->GetJob(job_id));
  return ToProto(record);
}

absl::StatusOr<gan::v1::ListJobsResponse> JobManager::List(
    const gan::v1::ListJobsRequest& request, const std::optional<std::string>& principal) {
  gan::v1::ListJobsResponse response;
  std::string next;
  GAN_ASSIGN_OR_RETURN(std::vector<JobRecord> jobs,
                       store_->ListJobs(request.state(), principal, request.page_size(),
                                        request.page_token(), &next));
  for (const JobRecord& r : jobs) *response.add_jobs() = ToProto(r);
  response.set_next_page_token(next);
  return response;
}

absl::StatusOr<gan::v1::Job> JobManager::Cancel(const std::string& job_id) {
  GAN_ASSIGN_OR_RETURN(JobRecord record, store_->GetJob(job_id));
  if (IsTerminal(record.state)) {
    return absl::FailedPreconditionError(absl::StrCat("job ", job_id, " already ended (",
                                                      gan::v1::JobState_Name(record.state), ")"));
  }
  bool was_queued = false;
  {
    absl::MutexLock lock(&mu_);
    for (auto it = queue_.begin(); it != queue_.end(); ++it) {
      if (it->job_id == job_id) {
        queue_.erase(it);
        was_queued = true;
        break;
      }
    }
    if (!was_queued) {
      if (running_.count(job_id) == 0) {
        // It ended between the read above and now.
        return absl::FailedPreconditionError(absl::StrCat("job ", job_id, " already ended"));
      }
      cancel_requested_.insert(job_id);
    }
  }
  if (was_queued) {
    Finish(job_id, gan::v1::JOB_STATE_CANCELLED, "");
  } else {
    // The trainer checks between steps; the job reports CANCELLED when its current step ends.
    log::Info("job cancel requested", {{"job_id", job_id}});
  }
  return Get(job_id);
}

absl::StatusOr<std::string> JobManager::CheckpointPath(const std::string& job_id, int64_t step) {
  GAN_ASSIGN_OR_RETURN(JobRecord record, store_->GetJob(job_id));
  GAN_ASSIGN_OR_RETURN(std::vector<CheckpointRow> rows, store_->ListCheckpoints(job_id));
  if (rows.empty()) {
    return absl::FailedPreconditionError(absl::StrCat("job ", job_id,
                                                      " has no checkpoint yet (it is ",
                                                      gan::v1::JobState_Name(record.state), ")"));
  }
  if (step == 0) return rows.back().path;
  for (const CheckpointRow& row : rows) {
    if (row.step == step) return row.path;
  }
  return absl::NotFoundError(
      absl::StrCat("checkpoint_step: job ", job_id, " has no checkpoint at step ", step));
}

absl::StatusOr<std::vector<MetricRow>> JobManager::ReadEvents(const std::string& job_id,
                                                              int64_t from_step,
                                                              int64_t after_sequence, int limit) {
  return store_->ReadMetrics(job_id, from_step, after_sequence, limit);
}

void JobManager::NotifyOnNextEvent(const std::string& job_id, std::function<void()> callback) {
  absl::MutexLock lock(&waiters_mu_);
  waiters_[job_id].push_back(std::move(callback));
}

bool JobManager::shutting_down() {
  absl::MutexLock lock(&mu_);
  return shutting_down_;
}

void JobManager::Notify(const std::string& job_id) {
  std::vector<std::function<void()>> callbacks;
  {
    absl::MutexLock lock(&waiters_mu_);
    auto it = waiters_.find(job_id);
    if (it == waiters_.end()) return;
    callbacks.swap(it->second);
    waiters_.erase(it);
  }
  for (auto& callback : callbacks) callback();
}

void JobManager::Finish(const std::string& job_id, gan::v1::JobState state,
                        const std::string& message) {
  const absl::StatusOr<JobRecord> before = store_->GetJob(job_id);
  if (absl::Status s = store_->MarkFinished(job_id, state, message); !s.ok()) {
    // Already ended (a cancel racing the end) is not an error; anything else leaves the job
    // unfinished in the store, and the next start recovers it.
    if (s.code() != absl::StatusCode::kFailedPrecondition) {
      log::Error("job could not be marked finished",
                 {{"job_id", job_id}, {"state", gan::v1::JobState_Name(state)}, {"status", s}});
    }
    Notify(job_id);
    return;
  }
  if (options_.metrics != nullptr && before.ok()) options_.metrics->MoveJob(before->state, state);
  absl::StatusOr<JobRecord> record = store_->GetJob(job_id);
  if (record.ok()) {
    gan::v1::MetricEvent event;
    *event.mutable_finished() = ToProto(*record);
    if (absl::Status s = store_->AppendMetric(job_id, record->step, event).status(); !s.ok()) {
      log::Error("job's finished event not stored", {{"job_id", job_id}, {"status", s}});
    }
  } else {
    log::Error("job's final record not readable",
               {{"job_id", job_id}, {"status", record.status()}});
  }
  const int64_t step = record.ok() ? record->step : -1;
  if (state == gan::v1::JOB_STATE_FAILED) {
    log::Warning("job failed", {{"job_id", job_id}, {"step", step}, {"error", message}});
  } else {
    log::Info("job finished",
              {{"job_id", job_id}, {"state", gan::v1::JobState_Name(state)}, {"step", step}});
  }
  Notify(job_id);
}

void JobManager::WorkerLoop() {
  while (true) {
    QueuedJob job;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](JobManager* m) {
            m->mu_.AssertReaderHeld();
            return m->shutting_down_ || !m->queue_.empty();
          },
          this));
      if (shutting_down_) return;
      job = queue_.front();
      queue_.pop_front();
      running_.insert(job.job_id);
    }
    const bool handled = RunJob(job);
    bool cancel_unstarted = false;
    {
      absl::MutexLock lock(&mu_);
      running_.erase(job.job_id);
      if (!handled) {
        cancel_unstarted = cancel_requested_.count(job.job_id) > 0;
        if (!cancel_unstarted) queue_.push_back(job);  // retried after the delay below
      }
      cancel_requested_.erase(job.job_id);
    }
    if (cancel_unstarted) Finish(job.job_id, gan::v1::JOB_STATE_CANCELLED, "");
    if (!handled) {
      absl::MutexLock lock(&mu_);
      mu_.AwaitWithTimeout(absl::Condition(&shutting_down_), kStoreRetryDelay);
    }
  }
}

bool JobManager::RunJob(const QueuedJob& job) {
  omp_set_num_threads(options_.threads_per_job);
  const std::string& id = job.job_id;
  absl::StatusOr<JobRecord> record = store_->GetJob(id);
  if (!record.ok()) {
    log::Error("job not started: the store failed; retrying",
               {{"job_id", id}, {"status", record.status()}});
    return false;
  }
  if (IsTerminal(record->state)) return true;  // cancelled or finished meanwhile
  auto fail = [&](const absl::Status& status) {
    Finish(id, gan::v1::JOB_STATE_FAILED, std::string(status.message()));
    return true;
  };
  auto resolved = ResolveJobSpec(record->spec, options_.defaults, datasets_);
  if (!resolved.ok()) return fail(resolved.status());
  auto dataset = datasets_->Load(resolved->dataset);
  if (!dataset.ok()) return fail(dataset.status());

  TrainingOptions training;
  training.spec = resolved->gan;
  training.seed = resolved->seed;
  training.total_steps = resolved->total_steps;
  training.checkpoint_every = resolved->checkpoint_every;
  training.keep_checkpoints = 0;  // pruned here, after the store has recorded the newer one
  training.checkpoint_dir = CheckpointDir(id);
  training.limits = options_.defaults.limits;
  auto run = TrainingRun::Create(training, dataset->get());
  if (!run.ok()) return fail(run.status());

  // A state change the store refuses because the job ended (a cancel won the race) ends this
  // attempt quietly; any other store failure requeues the job.
  auto start_failed = [&](const absl::Status& s) {
    if (s.code() == absl::StatusCode::kFailedPrecondition) return true;
    log::Error("job not started: the store failed; retrying", {{"job_id", id}, {"status", s}});
    return false;
  };
  if (job.resume) {
    auto step = (*run)->ResumeFromLatest();
    if (!step.ok()) return fail(step.status());
    if (absl::Status s = store_->MarkResumed(id, *step); !s.ok()) return start_failed(s);
    // The process may have died between writing this checkpoint and recording it.
    if (*step > 0) {
      if (absl::Status s = store_->RecordCheckpoint(id, *step, (*run)->CheckpointPath(*step));
          !s.ok()) {
        log::Error("checkpoint not recorded", {{"job_id", id}, {"step", *step}, {"status", s}});
      }
    }
    log::Info("job resumed", {{"job_id", id}, {"from_step", *step}});
  } else {
    if (absl::Status s = store_->MarkRunning(id); !s.ok()) return start_failed(s);
    if (options_.metrics != nullptr) {
      options_.metrics->MoveJob(gan::v1::JOB_STATE_QUEUED, gan::v1::JOB_STATE_RUNNING);
    }
    log::Info("job started", {{"job_id", id}, {"total_steps", resolved->total_steps}});
  }
  Notify(id);
  // This job's gauges, until it ends or the server stops; a step touches only their atomics.
  std::optional<JobMetrics> job_metrics;
  if (options_.metrics != nullptr) job_metrics.emplace(options_.metrics, id);
  const int64_t batch_size = resolved->gan.batch_size();
  // A step's time runs from the end of the previous on_step to the start of this one.
  auto step_start = std::chrono::steady_clock::now();

  const int keep = resolved->keep_checkpoints;
  const int64_t metrics_every = resolved->metrics_every;
  const int64_t total = resolved->total_steps;
  // Store failures during training are logged once per job, not once per step.
  bool store_error_logged = false;
  auto store_error = [&](const char* what, const absl::Status& s) {
    if (s.ok() || store_error_logged) return;
    store_error_logged = true;
    log::Error(what, {{"job_id", id}, {"status", s}});
  };
  TrainingCallbacks callbacks;
  callbacks.on_step = [&](const StepMetrics& m, int64_t epoch, double images_per_s) {
    if (job_metrics.has_value()) {
      const std::chrono::duration<double> seconds = std::chrono::steady_clock::now() - step_start;
      job_metrics->Step(m.d_loss, m.g_loss, m.d_real, m.d_fake, batch_size, seconds.count());
    }
    struct RestartClock {
      std::chrono::steady_clock::time_point* start;
      ~RestartClock() { *start = std::chrono::steady_clock::now(); }
    } restart_clock{&step_start};
    store_error("job progress not stored", store_->SetStep(id, m.step + 1));
    if ((m.step + 1) % metrics_every != 0 && m.step + 1 != total) return;
    gan::v1::MetricEvent event;
    *event.mutable_step() = StepMetricsToProto(m, epoch, images_per_s);
    store_error("job metric event not stored", store_->AppendMetric(id, m.step, event).status());
    Notify(id);
  };
  callbacks.on_checkpoint = [&](int64_t step, const std::string& path) {
    if (absl::Status s = store_->RecordCheckpoint(id, step, path); !s.ok()) {
      log::Error("checkpoint not recorded", {{"job_id", id}, {"step", step}, {"status", s}});
      return;
    }
    log::Info("job checkpointed", {{"job_id", id}, {"step", step}});
    absl::StatusOr<std::vector<CheckpointRow>> rows = store_->ListCheckpoints(id);
    if (!rows.ok()) {
      log::Error("old checkpoints not pruned", {{"job_id", id}, {"status", rows.status()}});
      return;
    }
    // Older checkpoints go only now that the newer one is durable and recorded.
    for (size_t i = 0; i + keep < rows->size(); ++i) {
      std::error_code error;
      std::filesystem::remove((*rows)[i].path, error);
      if (error) {
        log::Warning("old checkpoint file not removed",
                     {{"job_id", id}, {"path", (*rows)[i].path}, {"error", error.message()}});
      }
      if (absl::Status s = store_->DeleteCheckpointRow(id, (*rows)[i].step); !s.ok()) {
        log::Error("old checkpoint row not deleted", {{"job_id", id}, {"status", s}});
      }
    }
  };
  callbacks.should_stop = [&] {
    absl::MutexLock lock(&mu_);
    return shutting_down_ || cancel_requested_.count(id) > 0;
  };
  const absl::Status status = (*run)->Run(callbacks);
  bool cancelled, shutting_down;
  {
    absl::MutexLock lock(&mu_);
    cancelled = cancel_requested_.count(id) > 0;
    shutting_down = shutting_down_;
  }
  if (!status.ok()) return fail(status);
  if (cancelled) {
    Finish(id, gan::v1::JOB_STATE_CANCELLED, "");
    return true;
  }
  if (shutting_down && (*run)->step() < total) {
    log::Info("job paused for shutdown; it resumes at the next start",
              {{"job_id", id}, {"step", (*run)->step()}});
    return true;  // stays RUNNING in the store
  }
  Finish(id, gan::v1::JOB_STATE_SUCCEEDED, "");
  return true;
}

}  // namespace gan::server
