#include "server/process_collector.h"

#include <sys/resource.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace gan::server {
namespace {

std::optional<std::string> ReadFile(const char* path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// A "Key:   123 kB" line of /proc/self/status, in bytes.
std::optional<double> StatusBytes(const std::string& status, absl::string_view key) {
  for (absl::string_view line : absl::StrSplit(status, '\n')) {
    if (!absl::ConsumePrefix(&line, key) || !absl::ConsumePrefix(&line, ":")) continue;
    line = absl::StripAsciiWhitespace(line);
    const bool kilobytes = absl::ConsumeSuffix(&line, " kB");
    double value = 0;
    if (!absl::SimpleAtod(absl::StripAsciiWhitespace(line), &value)) return std::nullopt;
    return kilobytes ? value * 1024 : value;
  }
  return std::nullopt;
}

prometheus::MetricFamily Family(const char* name, const char* help, prometheus::MetricType type,
                                double value) {
  prometheus::MetricFamily family;
  family.name = name;
  family.help = help;
  family.type = type;
  prometheus::ClientMetric metric;
  if (type == prometheus::MetricType::Counter) {
    metric.counter.value = value;
  } else {
    metric.gauge.value = value;
  }
  family.metric.push_back(metric);
  return family;
}

}  // namespace

std::vector<prometheus::MetricFamily> ProcessCollector::Collect() const {
  std::vector<prometheus::MetricFamily> families;
  const double ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
  // /proc/self/stat: "pid (comm) state ppid ..."; comm may hold spaces, so split after ')'.
  // Fields after it, from 0: state(0) ... utime(11) stime(12) ... starttime(19).
  if (std::optional<std::string> stat = ReadFile("/proc/self/stat"); stat && ticks > 0) {
    const size_t close = stat->rfind(')');
    if (close != std::string::npos) {
      std::vector<absl::string_view> fields =
          absl::StrSplit(absl::string_view(*stat).substr(close + 1), ' ', absl::SkipEmpty());
      double utime = 0, stime = 0, start = 0;
      if (fields.size() > 19 && absl::SimpleAtod(fields[11], &utime) &&
          absl::SimpleAtod(fields[12], &stime) && absl::SimpleAtod(fields[19], &start)) {
        families.push_back(Family("process_cpu_seconds_total",
                                  "Total user and system CPU time spent in seconds.",
                                  prometheus::MetricType::Counter, (utime + stime) / ticks));
        std::optional<std::string> system = ReadFile("/proc/stat");
        double boot = 0;
        if (system) {
          for (absl::string_view line : absl::StrSplit(*system, '\n')) {
            if (absl::ConsumePrefix(&line, "btime ") &&
                absl::SimpleAtod(absl::StripAsciiWhitespace(line), &boot)) {
              families.push_back(Family("process_start_time_seconds",
                                        "Start time of the process since unix epoch in seconds.",
                                        prometheus::MetricType::Gauge, boot + start / ticks));
              break;
            }
          }
        }
      }
    }
  }
  if (std::optional<std::string> status = ReadFile("/proc/self/status")) {
    if (std::optional<double> rss = StatusBytes(*status, "VmRSS")) {
      families.push_back(Family("process_resident_memory_bytes", "Resident memory size in bytes.",
                                prometheus::MetricType::Gauge, *rss));
    }
    if (std::optional<double> vsize = StatusBytes(*status, "VmSize")) {
      families.push_back(Family("process_virtual_memory_bytes", "Virtual memory size in bytes.",
                                prometheus::MetricType::Gauge, *vsize));
    }
  }
  std::error_code error;
  std::filesystem::directory_iterator fds("/proc/self/fd", error);
  if (!error) {
    // The iterator's own descriptor is counted too, as in the Go and Python clients.
    double open = 0;
    for (auto it = std::filesystem::begin(fds); it != std::filesystem::end(fds);
         it.increment(error)) {
      if (error) break;
      ++open;
    }
    if (!error) {
      families.push_back(Family("process_open_fds", "Number of open file descriptors.",
                                prometheus::MetricType::Gauge, open));
    }
  }
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY) {
    families.push_back(Family("process_max_fds", "Maximum number of open file descriptors.",
                              prometheus::MetricType::Gauge, static_cast<double>(limit.rlim_cur)));
  }
  return families;
}

}  // namespace gan::server
