#ifndef GAN_SERVER_PROCESS_COLLECTOR_H_
#define GAN_SERVER_PROCESS_COLLECTOR_H_

// The standard process_* metrics of the Prometheus client libraries, read from /proc/self on
// every scrape (prometheus-cpp 1.0.1 has no process collector):
//   process_cpu_seconds_total      utime + stime from /proc/self/stat
//   process_start_time_seconds     boot time (/proc/stat btime) + starttime from /proc/self/stat
//   process_resident_memory_bytes  VmRSS from /proc/self/status
//   process_virtual_memory_bytes   VmSize from /proc/self/status
//   process_open_fds               entries of /proc/self/fd
//   process_max_fds                RLIMIT_NOFILE soft limit
// A value that cannot be read is left out of the scrape. Thread-safe (no state).

#include <vector>

#include "prometheus/collectable.h"
#include "prometheus/metric_family.h"

namespace gan::server {

class ProcessCollector : public prometheus::Collectable {
 public:
  std::vector<prometheus::MetricFamily> Collect() const override;
};

}  // namespace gan::server

#endif  // GAN_SERVER_PROCESS_COLLECTOR_H_
