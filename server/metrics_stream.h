#ifndef GAN_SERVER_METRICS_STREAM_H_
#define GAN_SERVER_METRICS_STREAM_H_

// The StreamMetrics reactor: a job's stored events from from_step (read through
// JobManager::ReadEvents, one page at a time), then live events as the manager announces them,
// ending with the `finished` event and OK. It writes one message at a time, never blocks inside a
// callback, reacts to cancellation, and deletes itself when done. State shared with the manager's
// wake-up callbacks lives in a shared block the callbacks hold weakly, so a wake-up after the
// stream ended does nothing. It holds its principal's StreamQuota slot until it ends, whatever
// ends it (given back before the final status is sent, or at the latest on destruction).

#include <cstdint>
#include <memory>
#include <string>

#include "gan/v1/service.grpc.pb.h"
#include "server/job_manager.h"
#include "server/server_metrics.h"
#include "server/stream_quota.h"

namespace gan::server {

class MetricsStream : public grpc::ServerWriteReactor<gan::v1::MetricEvent> {
 public:
  // Starts writing at once. `jobs` must outlive the stream.
  MetricsStream(RpcCall call, StreamQuota::Slot slot, JobManager* jobs, std::string job_id,
                int64_t from_step);

  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;

 private:
  struct Shared;

  static void Stop(Shared& s, const grpc::Status& status);
  static absl::Status Refill(Shared& s);
  static void WriteNext(Shared& s);
  static void Continue(Shared& s);

  RpcCall call_;            // counted as CANCELLED if the stream is torn down before Stop
  StreamQuota::Slot slot_;  // released by Stop, or by the destructor if Stop never ran
  std::shared_ptr<Shared> shared_;
};

}  // namespace gan::server

#endif  // GAN_SERVER_METRICS_STREAM_H_
