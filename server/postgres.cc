#include "server/postgres.h"

#include <algorithm>
#include <cstdlib>
#include <string>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "io/status_macros.h"

namespace gan::server::postgres {
namespace {

constexpr int kTextFormat = 0;
constexpr int kBinaryFormat = 1;

std::string Trimmed(const char* message) {
  return std::string(absl::StripTrailingAsciiWhitespace(message == nullptr ? "" : message));
}

}  // namespace

Params& Params::Push(std::string value, bool is_null, int format) {
  values_.push_back(std::move(value));
  null_.push_back(is_null);
  formats_.push_back(format);
  return *this;
}

Params& Params::Add(int64_t value) { return Push(std::to_string(value), false, kTextFormat); }

Params& Params::AddText(absl::string_view value) {
  return Push(std::string(value), false, kTextFormat);
}

Params& Params::AddTextOrNull(absl::string_view value) {
  return Push(std::string(value), value.empty(), kTextFormat);
}

Params& Params::AddBytes(absl::string_view value) {
  return Push(std::string(value), false, kBinaryFormat);
}

Params& Params::AddTime(absl::Time value) {
  if (value == absl::InfinitePast()) return Push("", true, kTextFormat);
  return Add(absl::ToUnixMicros(value));
}

std::vector<const char*> Params::Values() const {
  std::vector<const char*> values;
  for (size_t i = 0; i < values_.size(); ++i) {
    values.push_back(null_[i] ? nullptr : values_[i].c_str());
  }
  return values;
}

std::vector<int> Params::Lengths() const {
  std::vector<int> lengths;
  for (const std::string& value : values_) lengths.push_back(static_cast<int>(value.size()));
  return lengths;
}

std::vector<int> Params::Formats() const { return formats_; }

Result::~Result() { PQclear(result_); }

int Result::rows() const { return PQntuples(result_); }

int64_t Result::affected() const {
  int64_t count = 0;
  return absl::SimpleAtoi(PQcmdTuples(result_), &count) ? count : 0;
}

bool Result::IsNull(int row, int column) const { return PQgetisnull(result_, row, column) != 0; }

int64_t Result::Int64(int row, int column) const {
  int64_t value = 0;
  return absl::SimpleAtoi(PQgetvalue(result_, row, column), &value) ? value : 0;
}

bool Result::Bool(int row, int column) const {
  return absl::string_view(PQgetvalue(result_, row, column)) == "t";
}

std::string Result::Text(int row, int column) const {
  return std::string(PQgetvalue(result_, row, column),
                     static_cast<size_t>(PQgetlength(result_, row, column)));
}

std::string Result::Bytes(int row, int column) const {
  size_t length = 0;
  unsigned char* bytes = PQunescapeBytea(
      reinterpret_cast<const unsigned char*>(PQgetvalue(result_, row, column)), &length);
  if (bytes == nullptr) return "";
  std::string value(reinterpret_cast<const char*>(bytes), length);
  PQfreemem(bytes);
  return value;
}

absl::Time Result::Time(int row, int column) const {
  return IsNull(row, column) ? absl::InfinitePast() : absl::FromUnixMicros(Int64(row, column));
}

absl::StatusOr<std::unique_ptr<Connection>> Connection::Open(const std::string& url,
                                                             absl::Duration connect_timeout) {
  const std::string timeout = std::to_string(std::max<int64_t>(
      1, absl::ToInt64Seconds(connect_timeout + absl::Seconds(1) - absl::Nanoseconds(1))));
  // Later keywords override earlier ones, so the URL (expanded from "dbname") may set its own
  // timeout and keepalives. Keepalives notice a server that vanished without closing the socket.
  // A client that stops in the middle of a transaction (a paused or dying process) must not hold
  // its row locks, and so its jobs, beyond kIdleTransactionTimeout: the server ends its session.
  const char* keywords[] = {"connect_timeout",
                            "keepalives",
                            "keepalives_idle",
                            "keepalives_interval",
                            "keepalives_count",
                            "application_name",
                            "options",
                            "dbname",
                            nullptr};
  const std::string options = absl::StrCat("-c idle_in_transaction_session_timeout=",
                                           absl::ToInt64Milliseconds(kIdleTransactionTimeout));
  const char* values[] = {timeout.c_str(), "1",         "5",    "2", "3", "gan-server",
                          options.c_str(), url.c_str(), nullptr};
  std::unique_ptr<Connection> connection(
      new Connection(PQconnectdbParams(keywords, values, /*expand_dbname=*/1)));
  if (connection->conn_ == nullptr) {
    return absl::ResourceExhaustedError("PostgreSQL: out of memory for a connection");
  }
  if (PQstatus(connection->conn_) != CONNECTION_OK) {
    return absl::UnavailableError(absl::StrCat("PostgreSQL job store unreachable: ",
                                               Trimmed(PQerrorMessage(connection->conn_))));
  }
  return connection;
}

Connection::~Connection() { PQfinish(conn_); }

absl::Status Connection::Error(const PGresult* result, absl::string_view sql) const {
  const char* state = result == nullptr ? nullptr : PQresultErrorField(result, PG_DIAG_SQLSTATE);
  const std::string sqlstate = state == nullptr ? "" : state;
  std::string message =
      Trimmed(result != nullptr ? PQresultErrorMessage(result) : PQerrorMessage(conn_));
  if (message.empty()) message = Trimmed(PQerrorMessage(conn_));
  // Class 08: connection exceptions; 57P0x: the server is shutting down or restarting.
  if (PQstatus(conn_) != CONNECTION_OK || absl::StartsWith(sqlstate, "08") ||
      absl::StartsWith(sqlstate, "57P")) {
    return absl::UnavailableError(absl::StrCat("PostgreSQL job store unavailable: ", message));
  }
  if (sqlstate == "40001" || sqlstate == "40P01") {
    return absl::AbortedError(absl::StrCat("PostgreSQL: ", message));
  }
  return absl::InternalError(absl::StrCat("PostgreSQL: ", message, " (in: ", sql, ")"));
}

absl::StatusOr<Result> Connection::Exec(absl::string_view sql, const Params& params) {
  const std::string text(sql);
  const std::vector<const char*> values = params.Values();
  const std::vector<int> lengths = params.Lengths();
  const std::vector<int> formats = params.Formats();
  Result result(PQexecParams(conn_, text.c_str(), params.size(), /*paramTypes=*/nullptr,
                             values.data(), lengths.data(), formats.data(), kTextFormat));
  const PGresult* raw = result.get();
  const ExecStatusType status = raw == nullptr ? PGRES_FATAL_ERROR : PQresultStatus(raw);
  if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) return Error(raw, sql);
  return result;
}

absl::Status Connection::ExecScript(const std::string& sql) {
  Result result(PQexec(conn_, sql.c_str()));
  const ExecStatusType status =
      result.get() == nullptr ? PGRES_FATAL_ERROR : PQresultStatus(result.get());
  if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) return Error(result.get(), sql);
  return absl::OkStatus();
}

bool Connection::healthy() const { return PQstatus(conn_) == CONNECTION_OK; }

absl::Status Connection::Reconnect() {
  PQreset(conn_);
  if (PQstatus(conn_) != CONNECTION_OK) {
    return absl::UnavailableError(
        absl::StrCat("PostgreSQL job store unreachable: ", Trimmed(PQerrorMessage(conn_))));
  }
  return absl::OkStatus();
}

int Connection::socket() const { return PQsocket(conn_); }

absl::StatusOr<std::vector<std::pair<std::string, std::string>>>
Connection::ConsumeNotifications() {
  if (PQconsumeInput(conn_) == 0) {
    return absl::UnavailableError(
        absl::StrCat("PostgreSQL job store unavailable: ", Trimmed(PQerrorMessage(conn_))));
  }
  std::vector<std::pair<std::string, std::string>> notifications;
  while (PGnotify* notify = PQnotifies(conn_)) {
    notifications.emplace_back(notify->relname, notify->extra);
    PQfreemem(notify);
  }
  return notifications;
}

}  // namespace gan::server::postgres
