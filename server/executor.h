#ifndef GAN_SERVER_EXECUTOR_H_
#define GAN_SERVER_EXECUTOR_H_

// A fixed pool of threads running closures from a bounded FIFO queue: where RPC handlers send
// work that may block (store commits, dataset loading, model loading and inference), so gRPC's
// callback threads only ever hand off and return. A full queue refuses new work at once instead
// of growing. Thread-safe.

#include <deque>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/synchronization/mutex.h"

namespace gan::server {

class Executor {
 public:
  // `threads` >= 1 workers; at most `max_queue` closures wait (0: only as many as idle workers).
  // Each worker runs `thread_init` (when set) once, before its first closure.
  Executor(std::string name, int threads, int max_queue,
           std::function<void()> thread_init = nullptr);
  ~Executor();
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;

  // Queues `fn`. False, with `fn` destroyed unrun, when the queue is full or after Shutdown.
  bool TrySchedule(absl::AnyInvocable<void()> fn);

  // Runs what is queued to completion, then joins the workers. Idempotent.
  void Shutdown();

  // Closures waiting (not yet started).
  int queued();

 private:
  void WorkerLoop(const std::function<void()>& thread_init);

  const std::string name_;
  const int max_queue_;
  absl::Mutex mu_;
  std::deque<absl::AnyInvocable<void()>> queue_ ABSL_GUARDED_BY(mu_);
  int idle_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> workers_;
};

}  // namespace gan::server

#endif  // GAN_SERVER_EXECUTOR_H_
