#include "server/metrics_stream.h"

#include <deque>
#include <mutex>
#include <utility>

#include "server/job_state.h"
#include "server/status_util.h"

namespace gan::server {
namespace {

// Stored events read per page; a stream holds at most one page.
constexpr int kPageSize = 32;

}  // namespace

struct MetricsStream::Shared {
  std::recursive_mutex mu;
  MetricsStream* reactor = nullptr;  // null once the RPC is done
  JobManager* jobs = nullptr;
  std::string job_id;
  int64_t from_step = 0;
  int64_t after_sequence = 0;
  std::deque<gan::v1::MetricEvent> pending;
  gan::v1::MetricEvent current;
  bool writing = false, waiting = false, finished = false, cancelled = false;
  uint64_t registration = 0;  // of the NotifyOnNextEvent callback while `waiting`
};

MetricsStream::MetricsStream(RpcCall call, StreamQuota::Slot slot, JobManager* jobs,
                             std::string job_id, int64_t from_step)
    : call_(std::move(call)), slot_(std::move(slot)), shared_(std::make_shared<Shared>()) {
  shared_->reactor = this;
  shared_->jobs = jobs;
  shared_->job_id = std::move(job_id);
  shared_->from_step = from_step;
  std::lock_guard<std::recursive_mutex> lock(shared_->mu);
  Continue(*shared_);
}

void MetricsStream::OnWriteDone(bool ok) {
  std::lock_guard<std::recursive_mutex> lock(shared_->mu);
  shared_->writing = false;
  if (!ok) return Stop(*shared_, grpc::Status(grpc::StatusCode::UNAVAILABLE, "write failed"));
  if (shared_->current.has_finished()) return Stop(*shared_, grpc::Status::OK);
  Continue(*shared_);
}

void MetricsStream::OnCancel() {
  std::lock_guard<std::recursive_mutex> lock(shared_->mu);
  if (!shared_->writing) Stop(*shared_, grpc::Status::CANCELLED);
  shared_->cancelled = true;
}

void MetricsStream::OnDone() {
  {
    std::lock_guard<std::recursive_mutex> lock(shared_->mu);
    shared_->reactor = nullptr;
  }
  delete this;
}

void MetricsStream::Stop(Shared& s, const grpc::Status& status) {
  if (s.finished || s.reactor == nullptr) return;
  s.finished = true;
  // A stream that ends while it waits for the job's next event (the client left) withdraws its
  // callback, which the job would otherwise keep until that event.
  if (s.waiting) s.jobs->CancelNotify(s.job_id, s.registration);
  s.waiting = false;
  // Before the status reaches the client: a client that saw its stream end may open another.
  s.reactor->slot_.Release();
  s.reactor->call_.Finish(status.error_code());
  s.reactor->Finish(status);
}

absl::Status MetricsStream::Refill(Shared& s) {
  auto rows = s.jobs->ReadEvents(s.job_id, s.from_step, s.after_sequence, kPageSize);
  if (!rows.ok()) return rows.status();
  for (MetricRow& row : *rows) {
    s.after_sequence = row.sequence;
    s.pending.push_back(std::move(row.event));
  }
  return absl::OkStatus();
}

void MetricsStream::WriteNext(Shared& s) {
  s.current = std::move(s.pending.front());
  s.pending.pop_front();
  s.writing = true;
  s.reactor->StartWrite(&s.current);
}

// Called with s.mu held and no write in flight: writes the next event, or waits for one.
void MetricsStream::Continue(Shared& s) {
  if (s.finished || s.writing || s.reactor == nullptr) return;
  if (s.cancelled) return Stop(s, grpc::Status::CANCELLED);
  if (s.pending.empty()) {
    if (auto status = Refill(s); !status.ok()) return Stop(s, ToGrpcStatus(status));
  }
  if (!s.pending.empty()) return WriteNext(s);
  // Nothing stored from from_step on. An ended job's final state still closes the stream
  // (its `finished` event lies before a from_step past the end).
  auto job = s.jobs->Get(s.job_id);
  if (!job.ok()) return Stop(s, ToGrpcStatus(job.status()));
  if (IsTerminal(job->state())) {
    *s.pending.emplace_back().mutable_finished() = *job;
    return WriteNext(s);
  }
  if (s.jobs->shutting_down()) {
    return Stop(s, grpc::Status(grpc::StatusCode::UNAVAILABLE,
                                "the server is shutting down; reconnect with from_step to resume"));
  }
  if (s.waiting) return;
  s.waiting = true;
  std::weak_ptr<Shared> weak = s.reactor->shared_;
  s.registration = s.jobs->NotifyOnNextEvent(s.job_id, [weak] {
    std::shared_ptr<Shared> shared = weak.lock();
    if (!shared) return;
    std::lock_guard<std::recursive_mutex> lock(shared->mu);
    shared->waiting = false;
    Continue(*shared);
  });
  // An event stored between the read above and the registration is not missed.
  if (auto status = Refill(s); !status.ok()) return Stop(s, ToGrpcStatus(status));
  if (!s.pending.empty()) WriteNext(s);
}

}  // namespace gan::server
