#ifndef GAN_SERVER_BATCHER_H_
#define GAN_SERVER_BATCHER_H_

// Dynamic batching per model, in the manner of TF Serving's and Triton's dynamic batchers:
// concurrent requests for the same model wait in that model's queue and run as one network pass
// of up to `max_batch_images` images. A batch starts as soon as the queue holds max_batch_images
// images, or `timeout` after its oldest request was queued, whichever comes first; a request of
// more than max_batch_images images runs alone (the run function chunks it).
//
// Threads: Submit only queues (it never computes and never waits), so gRPC threads may call it.
// Batches run on the Executor given to the constructor (the server's inference executor): a
// model with waiting requests has exactly one task there, which waits for its batch to form,
// runs it, and requeues itself while requests remain, so models share the threads fairly and one
// model's batches never run concurrently. Requests whose deadline has passed, or whose client has
// gone, when their batch forms are answered without being computed.
//
// Every item is completed exactly once: by BatchItem::Fail (rejected, expired, cancelled, or
// still queued at destruction) or by the run function, which must complete every item it is
// given. Thread-safe.

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/executor.h"
#include "server/server_metrics.h"

namespace gan::server {

// Filled from the server's Options (server/server.h), the one home of their defaults.
struct BatcherOptions {
  // Most images in one batch; at least 1.
  int64_t max_batch_images = 1;
  // How long the oldest queued request of a model waits for others to join its batch.
  absl::Duration timeout = absl::ZeroDuration();
  // Requests waiting across all models; more are RESOURCE_EXHAUSTED naming `queue_option`.
  int max_queued_requests = 0;
  std::string queue_option = "--max_inference_queue";
};

// One request waiting for a batch. The run function downcasts to its own subclass, which holds
// the payload and the completion.
class BatchItem {
 public:
  BatchItem(int64_t images, absl::Time deadline) : images_(images), deadline_(deadline) {}
  virtual ~BatchItem() = default;
  BatchItem(const BatchItem&) = delete;
  BatchItem& operator=(const BatchItem&) = delete;

  int64_t images() const { return images_; }
  absl::Time deadline() const { return deadline_; }
  // When the item was queued (set by Submit).
  absl::Time enqueued() const { return enqueued_; }

  // Whether the client has gone; such items are failed with CANCELLED instead of computed.
  virtual bool Cancelled() const { return false; }
  // Completes the item with an error.
  virtual void Fail(const absl::Status& status) = 0;

 private:
  friend class Batcher;
  const int64_t images_;
  const absl::Time deadline_;
  absl::Time enqueued_ = absl::InfinitePast();
};

using BatchItems = std::vector<std::unique_ptr<BatchItem>>;

class Batcher {
 public:
  // Runs one batch (items of one key, at most max_batch_images images unless a single item is
  // larger) on an executor thread and completes every item. `key` is the one given to Submit.
  using RunFn = std::function<void(const std::string& key, BatchItems items)>;

  // `executor` and `metrics` (optional) outlive the batcher; the executor must be shut down (its
  // tasks drained) before the batcher is destroyed.
  Batcher(const BatcherOptions& options, Executor* executor, RunFn run,
          ServerMetrics* metrics = nullptr);
  // Fails items still queued (none when the executor was drained first) with UNAVAILABLE.
  ~Batcher();
  Batcher(const Batcher&) = delete;
  Batcher& operator=(const Batcher&) = delete;

  // Queues `item` for the model `key` (items with equal keys may share a batch); `model` names
  // the model in metrics. A full queue (max_queued_requests) or a full executor fails the item at
  // once with RESOURCE_EXHAUSTED. Never blocks on compute and never runs a batch on the caller's
  // thread.
  void Submit(const std::string& key, const std::string& model, std::unique_ptr<BatchItem> item);

  // Requests waiting across all models (not yet taken into a batch).
  int queued() const;

 private:
  struct Queue;

  // The task of one model's queue: forms a batch, runs it, requeues itself while items remain.
  void Drain(const std::shared_ptr<Queue>& queue);
  // Takes the next batch from `queue` once it is full or its oldest item has waited `timeout`;
  // moves expired and cancelled items to `dropped`.
  BatchItems NextBatch(Queue& queue,
                       std::vector<std::pair<std::unique_ptr<BatchItem>, absl::Status>>* dropped)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Fails everything queued for `queue` (its task could not be scheduled).
  void FailQueue(const std::shared_ptr<Queue>& queue, const absl::Status& status);

  const BatcherOptions options_;
  Executor* const executor_;
  const RunFn run_;
  ServerMetrics* const metrics_;

  mutable absl::Mutex mu_;
  // Models with waiting or running requests; a queue leaves the map when it is empty and idle.
  std::map<std::string, std::shared_ptr<Queue>> queues_ ABSL_GUARDED_BY(mu_);
  int queued_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace gan::server

#endif  // GAN_SERVER_BATCHER_H_
