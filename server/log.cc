#include "server/log.h"

#include <atomic>
#include <cmath>
#include <memory>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "spdlog/sinks/stdout_sinks.h"
#include "spdlog/spdlog.h"

namespace gan::server::log {
namespace {

std::atomic<Format> g_format{Format::kText};

void ApplyPattern(spdlog::logger& logger, Format format) {
  if (format == Format::kJson) {
    logger.set_pattern(R"({"time":"%Y-%m-%dT%H:%M:%S.%fZ","level":"%l",%v})",
                       spdlog::pattern_time_type::utc);
  } else {
    logger.set_pattern("%Y-%m-%dT%H:%M:%S.%fZ %l %v", spdlog::pattern_time_type::utc);
  }
}

spdlog::logger& Logger() {
  // Built once (never destroyed, so threads may log during exit); stderr, one write per line,
  // UTC timestamps with microseconds.
  static spdlog::logger* logger = [] {
    auto sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
    auto* l = new spdlog::logger("gan-server", std::move(sink));
    l->set_level(spdlog::level::info);
    l->flush_on(spdlog::level::info);
    ApplyPattern(*l, g_format.load());
    return l;
  }();
  return *logger;
}

std::string JsonString(absl::string_view s) {
  return nlohmann::json(std::string(s))
      .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string Line(absl::string_view event, std::initializer_list<Field> fields) {
  std::string line;
  if (g_format.load() == Format::kJson) {
    line = absl::StrCat("\"msg\":", JsonString(event));
    for (const Field& f : fields) {
      absl::StrAppend(&line, ",", JsonString(f.key()), ":",
                      f.quoted() ? JsonString(f.value()) : f.value());
    }
  } else {
    line = std::string(event);
    for (const Field& f : fields) {
      const bool quote = f.quoted() && (f.value().empty() || absl::StrContains(f.value(), ' ') ||
                                        absl::StrContains(f.value(), '"'));
      absl::StrAppend(&line, " ", f.key(), "=", quote ? JsonString(f.value()) : f.value());
    }
  }
  return line;
}

void Log(spdlog::level::level_enum level, absl::string_view event,
         std::initializer_list<Field> fields) {
  Logger().log(level, "{}", Line(event, fields));
}

}  // namespace

absl::Status ParseFormat(absl::string_view name, Format* format) {
  if (name == "text") {
    *format = Format::kText;
  } else if (name == "json") {
    *format = Format::kJson;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("--log_format: unknown '", name, "' (text or json)"));
  }
  return absl::OkStatus();
}

void SetFormat(Format format) {
  g_format.store(format);
  ApplyPattern(Logger(), format);
}

Field::Field(absl::string_view key, absl::string_view value)
    : key_(key), value_(value), quoted_(true) {}
Field::Field(absl::string_view key, int64_t value)
    : key_(key), value_(std::to_string(value)), quoted_(false) {}
Field::Field(absl::string_view key, double value)
    : key_(key), value_(absl::StrCat(value)), quoted_(!std::isfinite(value)) {}  // "nan" in JSON
Field::Field(absl::string_view key, bool value)
    : key_(key), value_(value ? "true" : "false"), quoted_(false) {}
Field::Field(absl::string_view key, const absl::Status& status)
    : key_(key),
      value_(status.ok()
                 ? "OK"
                 : absl::StrCat(absl::StatusCodeToString(status.code()), ": ", status.message())),
      quoted_(true) {}

void Info(absl::string_view event, std::initializer_list<Field> fields) {
  Log(spdlog::level::info, event, fields);
}
void Warning(absl::string_view event, std::initializer_list<Field> fields) {
  Log(spdlog::level::warn, event, fields);
}
void Error(absl::string_view event, std::initializer_list<Field> fields) {
  Log(spdlog::level::err, event, fields);
}

}  // namespace gan::server::log
