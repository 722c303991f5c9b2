#ifndef GAN_SERVER_LOG_H_
#define GAN_SERVER_LOG_H_

// The server's log: one line per event on stderr, through spdlog. Text lines read
//   2026-12-03T09:00:00.123456Z info job started job_id=job-0123 step=0
// and JSON lines (for Kubernetes log collectors)
//   {"time":"2026-12-03T09:00:00.123456Z","level":"info","msg":"job
//   started","job_id":"job-0123",...}
// An event is a short fixed phrase; everything variable goes into fields, so lines can be searched.
// Secrets (tokens, keys) must never be passed as fields. Thread-safe.

#include <cstdint>
#include <initializer_list>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace gan::server::log {

enum class Format { kText, kJson };

// Parses "text" or "json".
absl::Status ParseFormat(absl::string_view name, Format* format);

// Chooses the format of every later line (default text). Call before other threads log.
void SetFormat(Format format);

// One key=value of a line. Strings are quoted in JSON (and in text when they hold spaces).
class Field {
 public:
  Field(absl::string_view key, absl::string_view value);
  Field(absl::string_view key, const std::string& value) : Field(key, absl::string_view(value)) {}
  Field(absl::string_view key, const char* value) : Field(key, absl::string_view(value)) {}
  Field(absl::string_view key, int64_t value);
  Field(absl::string_view key, int value) : Field(key, static_cast<int64_t>(value)) {}
  Field(absl::string_view key, double value);
  Field(absl::string_view key, bool value);
  // "OK" or "<CODE>: <message>".
  Field(absl::string_view key, const absl::Status& status);

  absl::string_view key() const { return key_; }
  const std::string& value() const { return value_; }
  bool quoted() const { return quoted_; }

 private:
  absl::string_view key_;
  std::string value_;
  bool quoted_;
};

void Info(absl::string_view event, std::initializer_list<Field> fields = {});
void Warning(absl::string_view event, std::initializer_list<Field> fields = {});
void Error(absl::string_view event, std::initializer_list<Field> fields = {});

}  // namespace gan::server::log

#endif  // GAN_SERVER_LOG_H_
