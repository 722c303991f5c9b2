#include "server/job_manager.h"

#include <omp.h>

#include <chrono>
#include <filesystem>
#include <optional>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/step_metrics_proto.h"
#include "core/training_run.h"
#include "io/status_macros.h"
#include "server/init_from.h"
#include "server/job_state.h"
#include "server/log.h"

namespace gan::server {
namespace {

// How long a worker waits before claiming again after the store failed.
constexpr absl::Duration kStoreRetryDelay = absl::Seconds(1);

bool IsLeaseLost(const absl::Status& status) { return status.code() == absl::StatusCode::kAborted; }

}  // namespace

JobManager::JobManager(JobStore* store, DatasetRegistry* datasets, JobManagerOptions options)
    : store_(store), datasets_(datasets), options_(std::move(options)) {}

JobManager::~JobManager() { Shutdown(); }

std::string JobManager::CheckpointDir(const std::string& job_id) const {
  return absl::StrCat(options_.data_dir, "/jobs/", job_id, "/checkpoints");
}

absl::Status JobManager::Start() {
  if (options_.max_concurrent_jobs < 1 || options_.threads_per_job < 1 ||
      options_.max_queued_jobs < 0 || options_.replica_id.empty() ||
      options_.lease <= absl::ZeroDuration() || options_.poll_interval <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "job manager: max_concurrent_jobs and threads_per_job must be >= 1, max_queued_jobs >= 0, "
        "replica_id set, lease and poll_interval positive");
  }
  // One process per SQLite file: whatever held a lease before this start is gone.
  if (!store_->shared()) GAN_RETURN_IF_ERROR(store_->ReleaseAllLeases());
  GAN_ASSIGN_OR_RETURN(int64_t running, store_->CountJobs(gan::v1::JOB_STATE_RUNNING));
  GAN_ASSIGN_OR_RETURN(int64_t queued, store_->CountJobs(gan::v1::JOB_STATE_QUEUED));
  if (ServerMetrics* metrics = options_.metrics) {
    for (gan::v1::JobState state :
         {gan::v1::JOB_STATE_QUEUED, gan::v1::JOB_STATE_RUNNING, gan::v1::JOB_STATE_SUCCEEDED,
          gan::v1::JOB_STATE_FAILED, gan::v1::JOB_STATE_CANCELLED}) {
      GAN_ASSIGN_OR_RETURN(int64_t count, store_->CountJobs(state));
      metrics->SetJobs(state, count);
    }
  }
  if (running > 0 || queued > 0) {
    log::Info("jobs recovered",
              {{"running", running}, {"queued", queued}, {"replica", options_.replica_id}});
  }
  // A notification of another replica: a job's new event, or (empty id) new or released jobs.
  store_->WatchEvents([this](const std::string& job_id) {
    if (!job_id.empty()) {
      Notify(job_id);
      return;
    }
    {
      absl::MutexLock lock(&mu_);
      ++claim_wakeups_;
    }
    NotifyAll();
  });
  for (int i = 0; i < options_.max_concurrent_jobs; ++i) {
    workers_.emplace_back([this] { WorkerLoop(); });
  }
  renewer_ = std::thread([this] { RenewLoop(); });
  if (store_->shared()) poller_ = std::thread([this] { PollLoop(); });
  return absl::OkStatus();
}

void JobManager::Shutdown() {
  std::map<std::string, RunningJob> running;
  {
    absl::MutexLock lock(&mu_);
    if (shutting_down_) return;
    shutting_down_ = true;
    running = running_;
  }
  for (const auto& [job_id, job] : running) {
    log::Info("shutdown waits for a job to finish its current step and checkpoint",
              {{"job_id", job_id}});
  }
  for (std::thread& worker : workers_) worker.join();
  workers_.clear();
  if (renewer_.joinable()) renewer_.join();
  if (poller_.joinable()) poller_.join();
  store_->WatchEvents(nullptr);  // no notification may reach this manager any more
  // Wake every waiting stream so it can end now instead of at the server's grace deadline.
  NotifyAll();
}

absl::StatusOr<gan::v1::Job> JobManager::Submit(const std::string& principal,
                                                const std::string& request_id,
                                                const gan::v1::JobSpec& spec) {
  if (request_id.size() > 128) {
    return absl::InvalidArgumentError("request_id: at most 128 characters");
  }
  GAN_ASSIGN_OR_RETURN(ResolvedJob resolved, ResolveJobSpec(spec, options_.defaults, datasets_));
  if (spec.has_init_from()) {
    GAN_RETURN_IF_ERROR(CheckInitFrom(spec.init_from(), resolved.gan, options_.defaults.limits,
                                      CheckpointPathLookup())
                            .status());
  }
  if (shutting_down()) return absl::UnavailableError("the server is shutting down");
  // A retry of an accepted submission gets its job back even when the queue is full now: the
  // store asks `admit` only before inserting a new job. The queue is the store's, shared by
  // every replica.
  int64_t queued = 0;
  auto admit = [this, &queued](int64_t principal_active_jobs, int64_t queued_jobs) -> absl::Status {
    queued = queued_jobs + 1;
    if (queued_jobs >= options_.max_queued_jobs) {
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
    {
      absl::MutexLock lock(&mu_);
      ++claim_wakeups_;  // a worker of this replica may claim it at once
    }
    if (options_.metrics != nullptr) options_.metrics->JobSubmitted();
    log::Info("job submitted", {{"job_id", record.job_id},
                                {"principal", principal},
                                {"preset", spec.preset()},
                                {"dataset", resolved.dataset},
                                {"total_steps", resolved.total_steps},
                                {"queued", queued}});
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
  GAN_ASSIGN_OR_RETURN(JobRecord before, store_->GetJob(job_id));
  GAN_ASSIGN_OR_RETURN(JobRecord record, store_->RequestCancel(job_id));
  if (record.state == gan::v1::JOB_STATE_CANCELLED) {
    // It was queued and nobody held it: it ended now.
    Finished(job_id, before.state, record.state, "", Lease());
    return ToProto(record);
  }
  {
    // Running here: the trainer sees it before its next step. Elsewhere: its replica sees the
    // store's cancel_requested when it next renews the lease.
    absl::MutexLock lock(&mu_);
    if (running_.count(job_id) > 0) cancel_requested_.insert(job_id);
  }
  log::Info("job cancel requested", {{"job_id", job_id}, {"replica", record.replica}});
  return ToProto(record);
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

CheckpointLookup JobManager::CheckpointPathLookup() {
  return [this](const std::string& job_id, int64_t step) { return CheckpointPath(job_id, step); };
}

absl::StatusOr<std::vector<MetricRow>> JobManager::ReadEvents(const std::string& job_id,
                                                              int64_t from_step,
                                                              int64_t after_sequence, int limit) {
  return store_->ReadMetrics(job_id, from_step, after_sequence, limit);
}

void JobManager::NotifyAll() {
  std::map<std::string, std::map<uint64_t, std::function<void()>>> waiters;
  {
    absl::MutexLock lock(&waiters_mu_);
    waiters.swap(waiters_);
  }
  for (auto& [job_id, callbacks] : waiters) {
    for (auto& [registration, callback] : callbacks) callback();
  }
}

uint64_t JobManager::NotifyOnNextEvent(const std::string& job_id, std::function<void()> callback) {
  absl::MutexLock lock(&waiters_mu_);
  const uint64_t registration = ++next_registration_;
  waiters_[job_id].emplace(registration, std::move(callback));
  return registration;
}

void JobManager::CancelNotify(const std::string& job_id, uint64_t registration) {
  absl::MutexLock lock(&waiters_mu_);
  auto it = waiters_.find(job_id);
  if (it == waiters_.end()) return;
  it->second.erase(registration);
  if (it->second.empty()) waiters_.erase(it);
}

bool JobManager::shutting_down() {
  absl::MutexLock lock(&mu_);
  return shutting_down_;
}

void JobManager::Notify(const std::string& job_id) {
  std::map<uint64_t, std::function<void()>> callbacks;
  {
    absl::MutexLock lock(&waiters_mu_);
    auto it = waiters_.find(job_id);
    if (it == waiters_.end()) return;
    callbacks.swap(it->second);
    waiters_.erase(it);
  }
  for (auto& [registration, callback] : callbacks) callback();
}

void JobManager::Finish(const std::string& job_id, gan::v1::JobState state,
                        const std::string& message, const Lease& lease) {
  const absl::StatusOr<JobRecord> before = store_->GetJob(job_id);
  if (absl::Status s = store_->MarkFinished(job_id, state, message, lease); !s.ok()) {
    // Already ended (a cancel racing the end) is not an error; a lost lease means another
    // replica owns the job now; anything else leaves the job unfinished in the store, and it is
    // taken over when its lease runs out.
    if (IsLeaseLost(s)) {
      LoseLease(job_id, s);
    } else if (s.code() != absl::StatusCode::kFailedPrecondition) {
      log::Error("job could not be marked finished",
                 {{"job_id", job_id}, {"state", gan::v1::JobState_Name(state)}, {"status", s}});
    }
    Notify(job_id);
    return;
  }
  Finished(job_id, before.ok() ? before->state : gan::v1::JOB_STATE_RUNNING, state, message, lease);
}

void JobManager::Finished(const std::string& job_id, gan::v1::JobState before,
                          gan::v1::JobState state, const std::string& message, const Lease& lease) {
  if (options_.metrics != nullptr) options_.metrics->MoveJob(before, state);
  absl::StatusOr<JobRecord> record = store_->GetJob(job_id);
  if (record.ok()) {
    gan::v1::MetricEvent event;
    *event.mutable_finished() = ToProto(*record);
    if (absl::Status s = store_->AppendMetric(job_id, record->step, event, lease).status();
        !s.ok()) {
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

void JobManager::LoseLease(const std::string& job_id, const absl::Status& why) {
  {
    absl::MutexLock lock(&mu_);
    if (!lease_lost_.insert(job_id).second) return;
  }
  log::Warning(
      "job lease lost or its history not stored: training stops without writing; the "
      "job resumes wherever its lease is next won",
      {{"job_id", job_id}, {"replica", options_.replica_id}, {"status", why}});
}

void JobManager::ReportStore(const absl::Status& status) {
  const bool reachable = status.code() != absl::StatusCode::kUnavailable;
  if (store_reachable_.exchange(reachable) == reachable) return;
  if (reachable) {
    log::Info("job store reachable again");
  } else {
    log::Error("job store unreachable: health is NOT_SERVING until it is back",
               {{"status", status}});
  }
  if (options_.on_store_health) options_.on_store_health(reachable);
}

bool JobManager::LeaseLost(const std::string& job_id) {
  absl::MutexLock lock(&mu_);
  return lease_lost_.count(job_id) > 0;
}

void JobManager::WorkerLoop() {
  bool store_error_logged = false;
  while (true) {
    int64_t wakeups = 0;
    {
      absl::MutexLock lock(&mu_);
      if (shutting_down_) return;
      wakeups = claim_wakeups_;
    }
    absl::StatusOr<std::optional<ClaimedJob>> claim =
        store_->ClaimJob(options_.replica_id, options_.lease);
    ReportStore(claim.status());
    if (!claim.ok()) {
      if (!store_error_logged) {
        log::Error("jobs not claimed: the store failed; retrying", {{"status", claim.status()}});
        store_error_logged = true;
      }
      absl::MutexLock lock(&mu_);
      mu_.AwaitWithTimeout(absl::Condition(&shutting_down_), kStoreRetryDelay);
      continue;
    }
    if (store_error_logged) log::Info("jobs claimed again: the store is back");
    store_error_logged = false;
    if (!claim->has_value()) {
      // Nothing to do: wait for a submission or notification, or poll the shared store.
      absl::MutexLock lock(&mu_);
      auto woken = [this, wakeups]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return shutting_down_ || claim_wakeups_ != wakeups;
      };
      mu_.AwaitWithTimeout(absl::Condition(&woken), options_.poll_interval);
      continue;
    }
    const ClaimedJob& job = **claim;
    {
      absl::MutexLock lock(&mu_);
      running_[job.record.job_id] = RunningJob{job.lease, absl::Now()};
      lease_lost_.erase(job.record.job_id);
      if (job.record.cancel_requested) cancel_requested_.insert(job.record.job_id);
    }
    const bool handled = RunJob(job);
    {
      absl::MutexLock lock(&mu_);
      running_.erase(job.record.job_id);
      cancel_requested_.erase(job.record.job_id);
      lease_lost_.erase(job.record.job_id);
    }
    if (!handled) {
      absl::MutexLock lock(&mu_);
      mu_.AwaitWithTimeout(absl::Condition(&shutting_down_), kStoreRetryDelay);
    }
  }
}

void JobManager::RenewLoop() {
  const absl::Duration every = options_.lease / 3;
  while (true) {
    std::map<std::string, RunningJob> running;
    {
      absl::MutexLock lock(&mu_);
      // Runs until the workers are gone: a job finishing its last step during shutdown keeps
      // its lease until it is released.
      if (mu_.AwaitWithTimeout(absl::Condition(
                                   +[](JobManager* m) ABSL_EXCLUSIVE_LOCKS_REQUIRED(m->mu_) {
                                     return m->shutting_down_ && m->running_.empty();
                                   },
                                   this),
                               every)) {
        return;
      }
      running = running_;
    }
    for (const auto& [job_id, job] : running) {
      absl::StatusOr<JobRecord> renewed = store_->RenewLease(job_id, job.lease, options_.lease);
      ReportStore(renewed.status());
      if (renewed.ok()) {
        absl::MutexLock lock(&mu_);
        auto it = running_.find(job_id);
        if (it != running_.end() && it->second.lease.epoch == job.lease.epoch) {
          it->second.renewed = absl::Now();
        }
        if (renewed->cancel_requested && cancel_requested_.insert(job_id).second) {
          log::Info("job cancel requested", {{"job_id", job_id}, {"replica", options_.replica_id}});
        }
      } else if (IsLeaseLost(renewed.status())) {
        LoseLease(job_id, renewed.status());
      } else if (absl::Now() - job.renewed >= options_.lease) {
        // The store has been unreachable for a whole lease: another replica may hold the job by
        // now, so this one stops writing to it.
        LoseLease(job_id, renewed.status());
      } else {
        log::Warning("job lease not renewed; retrying",
                     {{"job_id", job_id}, {"status", renewed.status()}});
      }
    }
  }
}

void JobManager::PollLoop() {
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      if (mu_.AwaitWithTimeout(absl::Condition(&shutting_down_), options_.poll_interval)) return;
    }
    NotifyAll();  // streams re-read their job: events another replica stored arrive this way
    ReportStore(store_->CountJobs(gan::v1::JOB_STATE_QUEUED).status());  // health follows it
  }
}

bool JobManager::RunJob(const ClaimedJob& claim) {
  omp_set_num_threads(options_.threads_per_job);
  const std::string& id = claim.record.job_id;
  const Lease& lease = claim.lease;
  const JobRecord* record = &claim.record;
  auto fail = [&](const absl::Status& status) {
    Finish(id, gan::v1::JOB_STATE_FAILED, std::string(status.message()), lease);
    return true;
  };
  if (record->cancel_requested) {  // cancelled while nobody was training it
    Finish(id, gan::v1::JOB_STATE_CANCELLED, "", lease);
    return true;
  }
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
  training.background_checkpoints = options_.background_checkpoints;
  training.checkpoint_dir = CheckpointDir(id);
  training.limits = options_.defaults.limits;
  training.gradient_health = resolved->gradient_health;
  // A warm start, unless the job already has a checkpoint of its own to resume from.
  if (record->spec.has_init_from() && record->latest_checkpoint_step == 0) {
    auto init = InitFromPath(record->spec.init_from(), CheckpointPathLookup());
    if (!init.ok()) return fail(init.status());
    training.init_checkpoint = *init;
    training.init_optimizer = record->spec.init_from().init_optimizer();
  }
  auto run = TrainingRun::Create(training, dataset->get());
  if (!run.ok()) return fail(run.status());

  // A state change the store refuses because the job ended (a cancel won the race) or another
  // replica took it ends this attempt quietly; any other store failure releases the lease so the
  // job is claimed again (here or elsewhere).
  auto start_failed = [&](const absl::Status& s) {
    if (s.code() == absl::StatusCode::kFailedPrecondition || IsLeaseLost(s)) return true;
    log::Error("job not started: the store failed; retrying", {{"job_id", id}, {"status", s}});
    store_->ReleaseLease(id, lease).IgnoreError();  // else it runs out
    return false;
  };
  if (claim.resume) {
    // The store's step says how far the history is stored (a step's progress is recorded only
    // after its event): a checkpoint beyond it was written while the store was unreachable, or
    // by a replica that had lost the lease, so the history after it is incomplete. Resuming from
    // it would leave a gap; it goes, and training repeats those steps.
    for (int64_t step : (*run)->CheckpointSteps()) {
      if (step <= record->step) continue;
      std::error_code error;
      std::filesystem::remove((*run)->CheckpointPath(step), error);
      log::Info("checkpoint beyond the stored history removed",
                {{"job_id", id}, {"step", step}, {"stored_step", record->step}});
    }
    // A damaged checkpoint is set aside (renamed, kept for inspection) and the next older one is
    // tried; another seed's checkpoint or a file that cannot be read at all fails the job.
    std::vector<SetAsideCheckpoint> set_aside;
    auto step = (*run)->ResumeFromLatest(&set_aside);
    for (const SetAsideCheckpoint& damaged : set_aside) {
      log::Warning("damaged checkpoint set aside", {{"job_id", id},
                                                    {"step", damaged.step},
                                                    {"moved_to", damaged.moved_to},
                                                    {"reason", damaged.reason}});
    }
    if (!step.ok()) {
      // Score, SampleImages and ExportModel find checkpoints through the store: it must not keep
      // naming files that were set aside.
      for (const SetAsideCheckpoint& damaged : set_aside) {
        if (absl::Status s = store_->DeleteCheckpointRow(id, damaged.step, lease);
            !s.ok() && !absl::IsNotFound(s)) {
          log::Error("checkpoint row of a set-aside file not deleted",
                     {{"job_id", id}, {"step", damaged.step}, {"status", s}});
        }
      }
      return fail(step.status());
    }
    // Every set-aside checkpoint is newer than *step, so MarkResumed drops its row, with the
    // events from *step on (the history keeps every step once however far back it falls).
    if (absl::Status s = store_->MarkResumed(id, *step, lease); !s.ok()) return start_failed(s);
    // The process may have died between writing this checkpoint and recording it.
    if (*step > 0) {
      if (absl::Status s =
              store_->RecordCheckpoint(id, *step, (*run)->CheckpointPath(*step), lease);
          !s.ok()) {
        log::Error("checkpoint not recorded", {{"job_id", id}, {"step", *step}, {"status", s}});
      }
    }
    log::Info("job resumed", {{"job_id", id},
                              {"from_step", *step},
                              {"set_aside", static_cast<int64_t>(set_aside.size())},
                              {"replica", options_.replica_id}});
  } else {
    if (absl::Status s = store_->MarkRunning(id, lease); !s.ok()) return start_failed(s);
    if (options_.metrics != nullptr) {
      options_.metrics->MoveJob(gan::v1::JOB_STATE_QUEUED, gan::v1::JOB_STATE_RUNNING);
    }
    log::Info(
        "job started",
        {{"job_id", id}, {"total_steps", resolved->total_steps}, {"replica", options_.replica_id}});
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
  // Store failures during training are logged once per job, not once per step; a fenced write
  // refused because the lease is gone stops the job.
  bool store_error_logged = false;
  auto store_error = [&](const char* what, const absl::Status& s) {
    if (IsLeaseLost(s)) LoseLease(id, s);
    if (s.ok() || store_error_logged) return;
    store_error_logged = true;
    log::Error(what, {{"job_id", id}, {"status", s}});
  };
  TrainingCallbacks callbacks;
  callbacks.on_step = [&](const StepMetrics& m, int64_t epoch, double images_per_s) {
    if (job_metrics.has_value()) {
      const std::chrono::duration<double> seconds = std::chrono::steady_clock::now() - step_start;
      job_metrics->Step(m.d_loss, m.g_loss, m.d_real, m.d_fake, batch_size, seconds.count());
      job_metrics->Gradients(m);
    }
    struct RestartClock {
      std::chrono::steady_clock::time_point* start;
      ~RestartClock() { *start = std::chrono::steady_clock::now(); }
    } restart_clock{&step_start};
    // The event first: a recorded step promises every event before it is stored (a resume
    // relies on that).
    if ((m.step + 1) % metrics_every == 0 || m.step + 1 == total) {
      gan::v1::MetricEvent event;
      *event.mutable_step() = StepMetricsToProto(m, epoch, images_per_s);
      const absl::Status appended = store_->AppendMetric(id, m.step, event, lease).status();
      store_error("job metric event not stored", appended);
      if (!appended.ok()) {
        // A gap in the history must never be papered over by later steps: this attempt stops
        // and the job resumes (here or elsewhere) from a checkpoint before the missing event.
        LoseLease(id, appended);
        return;
      }
      Notify(id);
    }
    store_error("job progress not stored", store_->SetStep(id, m.step + 1, lease));
  };
  callbacks.on_checkpoint = [&](int64_t step, const std::string& path) {
    if (absl::Status s = store_->RecordCheckpoint(id, step, path, lease); !s.ok()) {
      if (IsLeaseLost(s)) {
        LoseLease(id, s);
      } else {
        log::Error("checkpoint not recorded", {{"job_id", id}, {"step", step}, {"status", s}});
      }
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
      if (absl::Status s = store_->DeleteCheckpointRow(id, (*rows)[i].step, lease); !s.ok()) {
        log::Error("old checkpoint row not deleted", {{"job_id", id}, {"status", s}});
      }
    }
  };
  callbacks.should_stop = [&] {
    absl::MutexLock lock(&mu_);
    return shutting_down_ || cancel_requested_.count(id) > 0 || lease_lost_.count(id) > 0;
  };
  const absl::Status status = (*run)->Run(callbacks);
  // The job's gauges go before its end is stored: whoever sees it ended never sees them.
  job_metrics.reset();
  bool cancelled, shutting_down, lost;
  {
    absl::MutexLock lock(&mu_);
    cancelled = cancel_requested_.count(id) > 0;
    shutting_down = shutting_down_;
    lost = lease_lost_.count(id) > 0;
  }
  if (lost) {
    // It resumes from a checkpoint within the stored history, wherever its lease is next won;
    // nothing more is written. Releasing the lease (refused when another replica holds it)
    // lets that happen at once when the store is back.
    log::Info("job stopped: its lease is lost", {{"job_id", id}, {"step", (*run)->step()}});
    store_->ReleaseLease(id, lease).IgnoreError();
    Notify(id);
    return false;  // the worker waits a moment before claiming again
  }
  if (!status.ok()) return fail(status);
  if (cancelled) {
    Finish(id, gan::v1::JOB_STATE_CANCELLED, "", lease);
    return true;
  }
  if (shutting_down && (*run)->step() < total) {
    log::Info("job paused for shutdown; it resumes at the next start or on another replica",
              {{"job_id", id}, {"step", (*run)->step()}});
    // Stays RUNNING in the store; released, so another replica takes it over at once.
    if (absl::Status s = store_->ReleaseLease(id, lease); !s.ok() && !IsLeaseLost(s)) {
      log::Warning("job lease not released; it is taken over when it runs out",
                   {{"job_id", id}, {"status", s}});
    }
    return true;
  }
  Finish(id, gan::v1::JOB_STATE_SUCCEEDED, "", lease);
  return true;
}

}  // namespace gan::server
