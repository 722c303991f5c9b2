#ifndef GAN_TESTS_METRICS_SCRAPE_H_
#define GAN_TESTS_METRICS_SCRAPE_H_

// Reading a gan-server's Prometheus exposition in tests: one GET of /metrics, and one series'
// value out of it.

#include <map>
#include <string>

#include "absl/status/statusor.h"

namespace gan::testing {

// The body of GET http://127.0.0.1:<port>/metrics (HTTP/1.0; a 10 s receive timeout).
absl::StatusOr<std::string> ScrapeMetrics(int port);

// The value of the series `name{labels}` in `exposition` (labels in any order; prometheus-cpp
// writes them sorted by name), or -1 when it is absent.
double MetricValue(const std::string& exposition, const std::string& name,
                   const std::map<std::string, std::string>& labels = {});

}  // namespace gan::testing

#endif  // GAN_TESTS_METRICS_SCRAPE_H_
