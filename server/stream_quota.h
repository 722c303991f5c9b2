#ifndef GAN_SERVER_STREAM_QUOTA_H_
#define GAN_SERVER_STREAM_QUOTA_H_

// How many StreamMetrics streams each principal has open, capped by --max_streams_per_principal.
// A stream takes a Slot when it is accepted and gives it back when it ends, whatever ends it (the
// job's final event, the client cancelling or disconnecting, a failed write, server shutdown):
// the Slot is released by the stream's Stop and, failing that, by its destructor. Without
// --auth_tokens every caller is the one anonymous principal (name ""), so the cap then bounds the
// streams of the whole server. Thread-safe.

#include <map>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "prometheus/gauge.h"

namespace gan::server {

class StreamQuota {
 public:
  // One open stream's place in its principal's count; move-only, released once.
  class Slot {
   public:
    Slot() = default;
    ~Slot() { Release(); }
    Slot(Slot&& other) noexcept;
    Slot& operator=(Slot&& other) noexcept;
    Slot(const Slot&) = delete;
    Slot& operator=(const Slot&) = delete;

    // Gives the place back (at most once; nothing for an empty Slot).
    void Release();

   private:
    friend class StreamQuota;
    Slot(StreamQuota* quota, std::string principal)
        : quota_(quota), principal_(std::move(principal)) {}

    StreamQuota* quota_ = nullptr;
    std::string principal_;
  };

  // At most `max_per_principal` open streams per principal (0: no limit). `open_streams`, when
  // given, is kept at the total of open streams (gan_metric_streams_open). Must outlive its Slots.
  explicit StreamQuota(int max_per_principal, prometheus::Gauge* open_streams = nullptr);

  // A Slot for one more stream of `principal` (empty: the anonymous caller of a server without
  // tokens), or RESOURCE_EXHAUSTED naming --max_streams_per_principal when it has the most
  // allowed open.
  absl::StatusOr<Slot> Acquire(const std::string& principal);

  // Streams `principal` has open, and all principals together.
  int open(const std::string& principal) const;
  int total() const;

 private:
  void Release(const std::string& principal);

  const int max_per_principal_;
  prometheus::Gauge* const open_streams_;
  mutable absl::Mutex mu_;
  // Principals with at least one open stream (an entry leaves when its count reaches 0).
  std::map<std::string, int> open_ ABSL_GUARDED_BY(mu_);
  int total_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace gan::server

#endif  // GAN_SERVER_STREAM_QUOTA_H_
