#include "core/background_checkpoint.h"

#include <sys/resource.h>
#include <unistd.h>

#include <utility>

namespace gan {
namespace {

constexpr int kNice = 19;  // the lowest priority

}  // namespace

BackgroundCheckpoint::~BackgroundCheckpoint() {
  if (in_flight()) thread_.join();
}

void BackgroundCheckpoint::Start(int64_t step, std::string path, CheckpointSnapshot snapshot) {
  step_ = step;
  path_ = std::move(path);
  finished_.store(false, std::memory_order_relaxed);
  // The thread owns the snapshot: its memory goes back as soon as the file is written.
  thread_ = std::thread([this, path = path_, snapshot = std::move(snapshot)]() mutable {
    // The training threads keep the cores: the write has until the next checkpoint, and on a
    // machine with as many training threads as cores, a checksum and copy at equal priority
    // would slow every thread of the step it overlaps. (Linux: the nice value is per thread.)
    setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()), kNice);
    {
      const CheckpointSnapshot written = std::move(snapshot);
      status_ = written.Write(path);
    }
    finished_.store(true, std::memory_order_release);
  });
}

absl::Status BackgroundCheckpoint::Wait() {
  thread_.join();
  return std::exchange(status_, absl::OkStatus());
}

}  // namespace gan
