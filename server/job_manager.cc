#include "server/job_manager.h"

#include <omp.h>

#include <chrono>
#include <filesystem>
#include <optional>

#include "absl/strings/str_cat.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "io/status_macros.h"
#include "core/training_run.h"

namespace gan::server {
namespace {

bool Ended(gan::v1::JobState state) {
  return state == gan::v1::JOB_STATE_SUCCEEDED || state == gan::v1::JOB_STATE_FAILED ||
         state == gan::v1::JOB_STATE_CANCELLED;
}

std::string Serialized(const gan::v1::JobSpec& spec) {
  std::string bytes;
  google::protobuf::io::StringOutputStream stream(&bytes);
  google::protobuf::io::CodedOutputStream coded(&stream);
  coded.SetSerializationDeterministic(true);
  spec.SerializeToCodedStream(&coded);
  coded.Trim();
  return bytes;
}

}  // namespace

JobManager::JobManager(JobStore* store, DatasetRegistry* datasets, JobManagerOptions options)
    : store_(store), datasets_(datasets), options_(std::move(options)) {}

JobManager::~JobManager() { Shutdown(); }

std::string JobManager::CheckpointDir(const std::string& job_id) const {
  return absl::StrCat(options_.data_dir, "/jobs/", job_id, "/checkpoints");
}

absl::Status JobManager::Start() {
  GAN_ASSIGN_OR_RETURN(std::vector<JobRecord> running,
                       store_->JobsInState(gan::v1::JOB_STATE_RUNNING));
  GAN_ASSIGN_OR_RETURN(std::vector<JobRecord> queued,
                       store_->JobsInState(gan::v1::JOB_STATE_QUEUED));
  if (Metrics* metrics = options_.metrics) {
    for (gan::v1::JobState state :
         {gan::v1::JOB_STATE_QUEUED, gan::v1::JOB_STATE_RUNNING, gan::v1::JOB_STATE_SUCCEEDED,
          gan::v1::JOB_STATE_FAILED, gan::v1::JOB_STATE_CANCELLED}) {
      GAN_ASSIGN_OR_RETURN(std::vector<JobRecord> jobs, store_->JobsInState(state));
      metrics->SetJobs(state, static_cast<int64_t>(jobs.size()));
    }
  }
  {
    absl::MutexLock lock(&mu_);
    for (const JobRecord& r : running) queue_.push_back({r.job_id, /*resume=*/true});
    for (const JobRecord& r : queued) queue_.push_back({r.job_id, /*resume=*/false});
  }
  for (int i = 0; i < options_.max_concurrent_jobs; ++i) {
    workers_.emplace_back([this] { WorkerLoop(); });
  }
  return absl::OkStatus();
}

void JobManager::Shutdown() {
  {
    absl::MutexLock lock(&mu_);
    if (shutting_down_) return;
    shutting_down_ = true;
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

absl::StatusOr<gan::v1::Job> JobManager::Submit(const std::string& request_id,
                                                const gan::v1::JobSpec& spec) {
  if (request_id.size() > 128) {
    return absl::InvalidArgumentError("request_id: at most 128 characters");
  }
  // A retry of an accepted submission gets its job back, even when the queue is full now.
  auto previous = [&]() -> absl::StatusOr<std::optional<gan::v1::Job>> {
    if (request_id.empty()) return std::optional<gan::v1::Job>();
    GAN_ASSIGN_OR_RETURN(std::optional<JobRecord> record, store_->FindByRequestId(request_id));
    if (!record.has_value()) return std::optional<gan::v1::Job>();
    if (Serialized(record->spec) != Serialized(spec)) {
      return absl::AlreadyExistsError(absl::StrCat(
          "request_id: '", request_id, "' was used for job ", record->job_id,
          " with a different spec"));
    }
    return std::optional<gan::v1::Job>(ToProto(*record));
  };
  GAN_ASSIGN_OR_RETURN(std::optional<gan::v1::Job> existing, previous());
  if (existing.has_value()) return *existing;
  GAN_ASSIGN_OR_RETURN(ResolvedJob resolved, ResolveJobSpec(spec, options_.defaults, datasets_));
  absl::MutexLock lock(&mu_);
  if (shutting_down_) return absl::UnavailableError("the server is shutting down");
  if (static_cast<int>(queue_.size()) >= options_.max_queued_jobs) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "the queue is full (", options_.max_queued_jobs, " jobs, --max_queued_jobs)"));
  }
  bool created = false;
  GAN_ASSIGN_OR_RETURN(JobRecord record,
                       store_->CreateJob(request_id, spec, resolved.total_steps, &created));
  if (!created) {  // a concurrent submission with the same request_id won the race
    if (Serialized(record.spec) != Serialized(spec)) {
      return absl::AlreadyExistsError(absl::StrCat(
          "request_id: '", request_id, "' was used for job ", record.job_id,
          " with a different spec"));
    }
    return ToProto(record);
  }
  queue_.push_back({record.job_id, false});
  if (options_.metrics != nullptr) options_.metrics->JobSubmitted();
  return ToProto(record);
}

absl::StatusOr<gan::v1::Job> JobManager::Get(const std::string& job_id) {
  GAN_ASSIGN_OR_RETURN(JobRecord record, store_->GetJob(job_id));
  return ToProto(record);
}

absl::StatusOr<gan::v1::ListJobsResponse> JobManager::List(
    const gan::v1::ListJobsRequest& request) {
  gan::v1::ListJobsResponse response;
  std::string next;
  GAN_ASSIGN_OR_RETURN(std::vector<JobRecord> jobs,
                       store_->ListJobs(request.state(), request.page_size(),
                                        request.page_token(), &next));
  for (const JobRecord& r : jobs) *response.add_jobs() = ToProto(r);
  response.set_next_page_token(next);
  return response;
}

absl::StatusOr<gan::v1::Job> JobManager::Cancel(const std::string& job_id) {
  GAN_ASSIGN_OR_RETURN(JobRecord record, store_->GetJob(job_id));
  if (Ended(record.state)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "job ", job_id, " already ended (", gan::v1::JobState_Name(record.state), ")"));
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
    // A running job stops after its current step; wait (bounded) for it to acknowledge.
    struct Args {
      JobManager* manager;
      const std::string* job_id;
    } args{this, &job_id};
    absl::MutexLock lock(&mu_);
    mu_.AwaitWithTimeout(absl::Condition(
                             +[](Args* a) {
                               a->manager->mu_.AssertReaderHeld();
                               return a->manager->running_.count(*a->job_id) == 0;
                             },
                             &args),
                         absl::Seconds(30));
  }
  return Get(job_id);
}

absl::StatusOr<std::string> JobManager::CheckpointPath(const std::string& job_id, int64_t step) {
  GAN_ASSIGN_OR_RETURN(JobRecord record, store_->GetJob(job_id));
  GAN_ASSIGN_OR_RETURN(std::vector<CheckpointRow> rows, store_->ListCheckpoints(job_id));
  if (rows.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("job ", job_id, " has no checkpoint yet (it is ",
                     gan::v1::JobState_Name(record.state), ")"));
  }
  if (step == 0) return rows.back().path;
  for (const CheckpointRow& row : rows) {
    if (row.step == step) return row.path;
  }
  return absl::NotFoundError(
      absl::StrCat("checkpoint_step: job ", job_id, " has no checkpoint at step ", step));
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
  auto before = store_->GetJob(job_id);
  if (store_->MarkFinished(job_id, state, message).ok()) {
    if (options_.metrics != nullptr && before.ok()) options_.metrics->MoveJob(before->state, state);
    auto record = store_->GetJob(job_id);
    if (record.ok()) {
      gan::v1::MetricEvent event;
      *event.mutable_finished() = ToProto(*record);
      (void)store_->AppendMetric(job_id, record->step, event);
    }
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
    RunJob(job);
    absl::MutexLock lock(&mu_);
    running_.erase(job.job_id);
    cancel_requested_.erase(job.job_id);
  }
}

void JobManager::RunJob(const QueuedJob& job) {
  omp_set_num_threads(options_.threads_per_job);
  const std::string& id = job.job_id;
  auto record = store_->GetJob(id);
  if (!record.ok()) return;
  auto fail = [&](const absl::Status& status) {
    Finish(id, gan::v1::JOB_STATE_FAILED, std::string(status.message()));
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

  if (job.resume) {
    auto step = (*run)->ResumeFromLatest();
    if (!step.ok()) return fail(step.status());
    if (auto s = store_->MarkResumed(id, *step); !s.ok()) return fail(s);
    // The process may have died between writing this checkpoint and recording it.
    if (*step > 0) (void)store_->RecordCheckpoint(id, *step, (*run)->CheckpointPath(*step));
  } else if (auto s = store_->MarkRunning(id); !s.ok()) {
    return;  // cancelled between the queue and here
  } else if (options_.metrics != nullptr) {
    options_.metrics->MoveJob(gan::v1::JOB_STATE_QUEUED, gan::v1::JOB_STATE_RUNNING);
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
    (void)store_->SetStep(id, m.step + 1);
    if ((m.step + 1) % metrics_every != 0 && m.step + 1 != total) return;
    gan::v1::MetricEvent event;
    gan::v1::StepMetrics* s = event.mutable_step();
    s->set_step(m.step);
    s->set_epoch(epoch);
    s->set_d_loss(m.d_loss);
    s->set_g_loss(m.g_loss);
    s->set_d_real(m.d_real);
    s->set_d_fake(m.d_fake);
    s->set_d_accuracy(m.d_accuracy);
    s->set_images_per_second(images_per_s);
    for (const LayerGradNorm& g : m.grad_norms) {
      gan::v1::LayerGradientNorm* n = s->add_gradient_norms();
      n->set_layer(g.layer);
      n->set_norm(g.norm);
    }
    (void)store_->AppendMetric(id, m.step, event);
    Notify(id);
  };
  callbacks.on_checkpoint = [&](int64_t step, const std::string& path) {
    if (!store_->RecordCheckpoint(id, step, path).ok()) return;
    auto rows = store_->ListCheckpoints(id);
    if (!rows.ok()) return;
    // Older checkpoints go only now that the newer one is durable and recorded.
    for (size_t i = 0; i + keep < rows->size(); ++i) {
      std::error_code error;
      std::filesystem::remove((*rows)[i].path, error);
      (void)store_->DeleteCheckpointRow(id, (*rows)[i].step);
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
  if (cancelled) return Finish(id, gan::v1::JOB_STATE_CANCELLED, "");
  if (shutting_down && (*run)->step() < total) return;  // stays RUNNING; resumes at next start
  Finish(id, gan::v1::JOB_STATE_SUCCEEDED, "");
}

}  // namespace gan::server
