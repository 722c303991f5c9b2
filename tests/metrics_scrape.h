#ifndef GAN_TESTS_METRICS_SCRAPE_H_
#define GAN_TESTS_METRICS_SCRAPE_H_

// HTTP GETs in tests (a gan-server's /metrics, Prometheus' API), and one series' value out of a
// Prometheus exposition.

#include <map>
#include <string>

#include "absl/status/statusor.h"

namespace gan::testing {

// The body of a plain HTTP/1.0 GET of http://127.0.0.1:<port><target> (a 10 s receive timeout)
// when the response is 200; UNAVAILABLE naming the status line otherwise.
absl::StatusOr<std::string> HttpGet(int port, const std::string& target);
// HttpGet(port, "/metrics").
absl::StatusOr<std::string> ScrapeMetrics(int port);

// The value of the series `name{labels}` in `exposition` (labels in any order; prometheus-cpp
// writes them sorted by name), or -1 when it is absent.
double MetricValue(const std::string& exposition, const std::string& name,
                   const std::map<std::string, std::string>& labels = {});

}  // namespace gan::testing

#endif  // GAN_TESTS_METRICS_SCRAPE_H_
