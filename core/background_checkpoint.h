#ifndef GAN_CORE_BACKGROUND_CHECKPOINT_H_
#define GAN_CORE_BACKGROUND_CHECKPOINT_H_

// One checkpoint write at a time on a thread of its own, from a snapshot of the trainer, so that
// training goes on while the file is checksummed, written and fsynced. The training thread owns
// the object: it starts a write, polls it between steps and waits for it before the next one.

#include <atomic>
#include <cstdint>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "core/checkpoint.h"

namespace gan {

class BackgroundCheckpoint {
 public:
  BackgroundCheckpoint() = default;
  BackgroundCheckpoint(const BackgroundCheckpoint&) = delete;
  BackgroundCheckpoint& operator=(const BackgroundCheckpoint&) = delete;
  // Waits for a write in flight; its status is dropped (a file it completed stays on disk).
  ~BackgroundCheckpoint();

  // Starts writing `snapshot` to `path` (CheckpointSnapshot::Write). Precondition: !in_flight().
  void Start(int64_t step, std::string path, CheckpointSnapshot snapshot);
  // A write was started and not yet waited for.
  bool in_flight() const { return thread_.joinable(); }
  // The write in flight has finished (Wait will not block). Never blocks.
  bool finished() const { return finished_.load(std::memory_order_acquire); }
  // Waits for the write in flight and returns its status. Precondition: in_flight().
  absl::Status Wait();

  // Of the write in flight (or the last one waited for).
  int64_t step() const { return step_; }
  const std::string& path() const { return path_; }

 private:
  std::thread thread_;
  std::atomic<bool> finished_{false};
  absl::Status status_;  // written by thread_ before finished_, read after the join
  int64_t step_ = 0;
  std::string path_;
};

}  // namespace gan

#endif  // GAN_CORE_BACKGROUND_CHECKPOINT_H_
