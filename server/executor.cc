#include "server/executor.h"

#include <algorithm>
#include <utility>

namespace gan::server {

Executor::Executor(std::string name, int threads, int max_queue, std::function<void()> thread_init)
    : name_(std::move(name)), max_queue_(std::max(max_queue, 0)) {
  for (int i = 0; i < std::max(threads, 1); ++i) {
    workers_.emplace_back([this, thread_init] { WorkerLoop(thread_init); });
  }
}

Executor::~Executor() { Shutdown(); }

bool Executor::TrySchedule(absl::AnyInvocable<void()> fn) {
  absl::MutexLock lock(&mu_);
  if (stopping_) return false;
  // Idle workers take closures at once, so they do not count against the queue bound.
  if (static_cast<int>(queue_.size()) >= max_queue_ + idle_) return false;
  queue_.push_back(std::move(fn));
  return true;
}

int Executor::queued() {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(queue_.size());
}

void Executor::Shutdown() {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  for (std::thread& worker : workers_) worker.join();
  workers_.clear();
}

void Executor::WorkerLoop(const std::function<void()>& thread_init) {
  if (thread_init) thread_init();
  while (true) {
    absl::AnyInvocable<void()> fn;
    {
      absl::MutexLock lock(&mu_);
      ++idle_;
      mu_.Await(absl::Condition(
          +[](Executor* e) {
            e->mu_.AssertReaderHeld();
            return e->stopping_ || !e->queue_.empty();
          },
          this));
      --idle_;
      if (queue_.empty()) return;  // stopping, and everything queued has run
      fn = std::move(queue_.front());
      queue_.pop_front();
    }
    fn();
  }
}

}  // namespace gan::server
