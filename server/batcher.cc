#include "server/batcher.h"

#include <algorithm>
#include <deque>
#include <utility>

#include "absl/strings/str_cat.h"

namespace gan::server {

struct Batcher::Queue {
  Queue(std::string key, InferenceModelMetrics* metrics) : key(std::move(key)), metrics(metrics) {}

  const std::string key;
  InferenceModelMetrics* const metrics;  // null without ServerMetrics
  // Guarded by Batcher::mu_.
  std::deque<std::unique_ptr<BatchItem>> items;
  int64_t images = 0;  // of `items`
  bool task = false;   // a Drain task is scheduled or running
  absl::CondVar full;  // signalled when `images` reaches max_batch_images
};

namespace {

using Rejection = InferenceModelMetrics::Rejection;

void Count(InferenceModelMetrics* metrics, Rejection reason) {
  if (metrics != nullptr) metrics->Rejected(reason);
}

}  // namespace

Batcher::Batcher(const BatcherOptions& options, Executor* executor, RunFn run,
                 ServerMetrics* metrics)
    : options_([&] {
        BatcherOptions o = options;
        o.max_batch_images = std::max<int64_t>(o.max_batch_images, 1);
        o.timeout = std::max(o.timeout, absl::ZeroDuration());
        o.max_queued_requests = std::max(o.max_queued_requests, 0);
        return o;
      }()),
      executor_(executor),
      run_(std::move(run)),
      metrics_(metrics) {}

Batcher::~Batcher() {
  std::vector<std::pair<std::unique_ptr<BatchItem>, InferenceModelMetrics*>> left;
  {
    absl::MutexLock lock(&mu_);
    for (auto& [key, queue] : queues_) {
      for (auto& item : queue->items) left.emplace_back(std::move(item), queue->metrics);
      queue->items.clear();
      queue->images = 0;
    }
    queues_.clear();
    queued_ = 0;
  }
  for (auto& [item, metrics] : left) {
    Count(metrics, Rejection::kShuttingDown);
    item->Fail(absl::UnavailableError("the server is shutting down"));
  }
}

int Batcher::queued() const {
  absl::MutexLock lock(&mu_);
  return queued_;
}

void Batcher::Submit(const std::string& key, const std::string& model,
                     std::unique_ptr<BatchItem> item) {
  std::shared_ptr<Queue> schedule;
  {
    absl::MutexLock lock(&mu_);
    if (queued_ < options_.max_queued_requests) {
      std::shared_ptr<Queue>& queue = queues_[key];
      if (queue == nullptr) {
        queue = std::make_shared<Queue>(
            key, metrics_ == nullptr ? nullptr : metrics_->InferenceModel(model));
      }
      item->enqueued_ = absl::Now();
      queue->images += item->images();
      queue->items.push_back(std::move(item));
      ++queued_;
      if (queue->metrics != nullptr) queue->metrics->QueueDepth(queue->items.size());
      if (queue->images >= options_.max_batch_images) queue->full.Signal();
      if (!queue->task) {
        queue->task = true;
        schedule = queue;
      }
    }
  }
  const absl::Status busy = absl::ResourceExhaustedError(
      absl::StrCat("the server is busy: its work queue is full (", options_.queue_option, ")"));
  if (item != nullptr) {  // not queued
    Count(metrics_ == nullptr ? nullptr : metrics_->InferenceModel(model), Rejection::kQueueFull);
    item->Fail(busy);
    return;
  }
  if (schedule != nullptr && !executor_->TrySchedule([this, schedule] { Drain(schedule); })) {
    FailQueue(schedule, busy);
  }
}

void Batcher::FailQueue(const std::shared_ptr<Queue>& queue, const absl::Status& status) {
  std::deque<std::unique_ptr<BatchItem>> items;
  {
    absl::MutexLock lock(&mu_);
    items.swap(queue->items);
    queued_ -= static_cast<int>(items.size());
    queue->images = 0;
    queue->task = false;
    auto it = queues_.find(queue->key);
    if (it != queues_.end() && it->second == queue) queues_.erase(it);
    if (queue->metrics != nullptr) queue->metrics->QueueDepth(0);
  }
  for (auto& item : items) {
    Count(queue->metrics, Rejection::kQueueFull);
    item->Fail(status);
  }
}

BatchItems Batcher::NextBatch(
    Queue& queue, std::vector<std::pair<std::unique_ptr<BatchItem>, absl::Status>>* dropped) {
  const int64_t max = options_.max_batch_images;
  // Wait for a full batch, or until the oldest request has waited `timeout`.
  while (!queue.items.empty() && queue.images < max) {
    const absl::Time due = queue.items.front()->enqueued_ + options_.timeout;
    if (absl::Now() >= due) break;
    queue.full.WaitWithDeadline(&mu_, due);
  }
  const absl::Time now = absl::Now();
  BatchItems batch;
  int64_t images = 0;
  while (!queue.items.empty()) {
    std::unique_ptr<BatchItem>& front = queue.items.front();
    absl::Status drop;
    if (front->deadline() <= now) {
      drop = absl::DeadlineExceededError("the deadline passed before the call was computed");
    } else if (front->Cancelled()) {
      drop = absl::CancelledError("the client cancelled the call");
    } else if (!batch.empty() && images + front->images() > max) {
      break;  // the next batch's
    }
    queue.images -= front->images();
    --queued_;
    if (drop.ok()) {
      images += front->images();
      batch.push_back(std::move(front));
    } else {
      dropped->emplace_back(std::move(front), drop);
    }
    queue.items.pop_front();
    if (images >= max) break;
  }
  if (queue.metrics != nullptr) queue.metrics->QueueDepth(queue.items.size());
  return batch;
}

void Batcher::Drain(const std::shared_ptr<Queue>& queue) {
  while (true) {
    std::vector<std::pair<std::unique_ptr<BatchItem>, absl::Status>> dropped;
    BatchItems batch;
    {
      absl::MutexLock lock(&mu_);
      batch = NextBatch(*queue, &dropped);
    }
    for (auto& [item, status] : dropped) {
      Count(queue->metrics, status.code() == absl::StatusCode::kCancelled
                                ? Rejection::kCancelled
                                : Rejection::kDeadlineExceeded);
      item->Fail(status);
    }
    if (!batch.empty()) {
      if (queue->metrics != nullptr) {
        const absl::Time start = absl::Now();
        int64_t images = 0;
        for (const auto& item : batch) {
          queue->metrics->QueueWait(absl::ToDoubleSeconds(start - item->enqueued()));
          images += item->images();
        }
        // One observation per network pass: a request larger than a batch runs in full chunks
        // and a tail.
        for (; images > options_.max_batch_images; images -= options_.max_batch_images) {
          queue->metrics->Batch(options_.max_batch_images);
        }
        queue->metrics->Batch(images);
      }
      run_(queue->key, std::move(batch));
    }
    {
      absl::MutexLock lock(&mu_);
      if (queue->items.empty()) {
        queue->task = false;
        auto it = queues_.find(queue->key);
        if (it != queues_.end() && it->second == queue) queues_.erase(it);
        return;
      }
    }
    // More requests arrived meanwhile: let other models' tasks run first, and carry on here only
    // when the executor cannot take another task.
    if (executor_->TrySchedule([this, queue] { Drain(queue); })) return;
  }
}

}  // namespace gan::server
