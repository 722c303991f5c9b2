#ifndef GAN_SERVER_POSTGRES_H_
#define GAN_SERVER_POSTGRES_H_

// A small RAII layer over libpq: Connection owns a connection, Result a query result, Params the
// parameters of one statement ($1, $2, ... in the order they are added). Every error is an
// absl::Status: UNAVAILABLE when the server cannot be reached or the connection broke (with a
// message that says so), ABORTED for serialization failures and deadlocks, INTERNAL with the
// server's message and the SQL otherwise. Messages never contain the connection URL (it may hold
// a password). None of these classes is thread-safe; the store that uses them serializes access.

#include <libpq-fe.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace gan::server::postgres {

// Statement parameters: integers and text are sent as text, bytes as binary (BYTEA).
class Params {
 public:
  Params& Add(int64_t value);
  Params& AddText(absl::string_view value);
  // NULL for an empty string (e.g. for a UNIQUE column where "no value" must not collide).
  Params& AddTextOrNull(absl::string_view value);
  Params& AddBytes(absl::string_view value);
  // NULL for an unset time (InfinitePast), else microseconds since the Unix epoch.
  Params& AddTime(absl::Time value);

  int size() const { return static_cast<int>(values_.size()); }
  // Pointers into this object for PQexecParams; valid while it lives unchanged.
  std::vector<const char*> Values() const;
  std::vector<int> Lengths() const;
  std::vector<int> Formats() const;

 private:
  Params& Push(std::string value, bool is_null, int format);
  std::vector<std::string> values_;
  std::vector<bool> null_;
  std::vector<int> formats_;
};

// The rows of one statement (text format). Cleared on destruction.
class Result {
 public:
  explicit Result(PGresult* result) : result_(result) {}
  Result(Result&& other) noexcept : result_(std::exchange(other.result_, nullptr)) {}
  Result& operator=(Result&& other) noexcept {
    std::swap(result_, other.result_);
    return *this;
  }
  ~Result();

  const PGresult* get() const { return result_; }
  int rows() const;
  // Rows an INSERT, UPDATE or DELETE changed.
  int64_t affected() const;
  bool IsNull(int row, int column) const;
  int64_t Int64(int row, int column) const;
  bool Bool(int row, int column) const;
  std::string Text(int row, int column) const;
  // A BYTEA column.
  std::string Bytes(int row, int column) const;
  // InfinitePast for NULL, else the column's microseconds since the Unix epoch.
  absl::Time Time(int row, int column) const;

 private:
  PGresult* result_;
};

class Connection {
 public:
  // Every transaction of the job store takes milliseconds; a session idle inside one for longer
  // belongs to a paused or stuck process, and the server ends it (releasing its locks).
  static constexpr absl::Duration kIdleTransactionTimeout = absl::Seconds(2);

  // Connects to a libpq connection string or URI (postgresql://...). UNAVAILABLE when the server
  // cannot be reached; `connect_timeout` bounds the attempt unless the URL sets its own.
  static absl::StatusOr<std::unique_ptr<Connection>> Open(const std::string& url,
                                                          absl::Duration connect_timeout);

  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  ~Connection();

  // Runs one statement with parameters.
  absl::StatusOr<Result> Exec(absl::string_view sql, const Params& params);
  absl::StatusOr<Result> Exec(absl::string_view sql) { return Exec(sql, Params()); }
  // Runs SQL text without parameters, possibly several statements (schema, LISTEN, BEGIN).
  absl::Status ExecScript(const std::string& sql);

  // False once the connection broke; Reconnect() then tries again.
  bool healthy() const;
  absl::Status Reconnect();

  // The socket, for waiting on notifications (poll for POLLIN, then ConsumeNotifications).
  int socket() const;
  // Reads what arrived on the socket and returns the payloads of notifications received on any
  // channel, as (channel, payload) pairs. UNAVAILABLE when the connection broke.
  absl::StatusOr<std::vector<std::pair<std::string, std::string>>> ConsumeNotifications();

 private:
  explicit Connection(PGconn* conn) : conn_(conn) {}
  // The status for a failed statement: UNAVAILABLE for connection problems, else by SQLSTATE.
  absl::Status Error(const PGresult* result, absl::string_view sql) const;

  PGconn* conn_;
};

}  // namespace gan::server::postgres

#endif  // GAN_SERVER_POSTGRES_H_
