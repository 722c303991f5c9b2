#ifndef GAN_SERVER_SQLITE_H_
#define GAN_SERVER_SQLITE_H_

// A small RAII layer over the SQLite C API (in the spirit of SQLiteCpp): Database owns a
// connection, Statement a prepared statement, Transaction a BEGIN IMMEDIATE ... COMMIT that rolls
// back unless committed. Every error is an absl::Status (INTERNAL with SQLite's message and the
// SQL). None of these classes is thread-safe; the store that uses them serializes access.

#include <sqlite3.h>

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace gan::server::sqlite {

// One prepared statement. Parameters bind in order (Bind, BindText, ... each take the next `?`);
// a bind error is reported by the next Step. Finalized on destruction.
class Statement {
 public:
  Statement(sqlite3* db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}
  Statement(Statement&& other) noexcept;
  Statement& operator=(Statement&&) = delete;
  ~Statement();

  Statement& Bind(int64_t value);
  Statement& BindText(absl::string_view value);
  // NULL for an empty string (e.g. for a UNIQUE column where "no value" must not collide).
  Statement& BindTextOrNull(absl::string_view value);
  Statement& BindBlob(absl::string_view value);
  // NULL for an unset time (InfinitePast), else microseconds since the Unix epoch.
  Statement& BindTime(absl::Time value);

  // True with a row to read, false when the statement is done.
  absl::StatusOr<bool> Step();
  // Runs the statement to completion, ignoring any rows.
  absl::Status Run();

  bool IsNull(int column) const;
  int64_t Int64(int column) const;
  std::string Text(int column) const;
  std::string Blob(int column) const;
  // InfinitePast for NULL, else the column's microseconds since the Unix epoch.
  absl::Time Time(int column) const;

 private:
  Statement& Check(int rc);
  absl::Status Error() const;

  sqlite3* db_;
  sqlite3_stmt* stmt_;
  int next_index_ = 1;
  absl::Status bind_status_;
};

// Owns one sqlite3 connection, opened without SQLite's own mutex (the owner serializes use);
// closed on destruction.
class Database {
 public:
  static absl::StatusOr<std::unique_ptr<Database>> Open(const std::string& path);

  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;
  ~Database();

  absl::StatusOr<Statement> Prepare(absl::string_view sql);
  // Runs SQL text without parameters (schema, pragmas, transaction control).
  absl::Status Exec(const char* sql);

  void SetBusyTimeout(absl::Duration timeout);
  int64_t Changes() const;
  int64_t LastInsertRowid() const;
  bool InTransaction() const;

 private:
  explicit Database(sqlite3* db) : db_(db) {}
  sqlite3* db_;
};

// BEGIN IMMEDIATE on construction (check status()); Commit() commits; destruction without a
// successful Commit rolls back, so an early return leaves nothing behind.
class Transaction {
 public:
  explicit Transaction(Database& db);
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  ~Transaction();

  // The result of BEGIN; when not OK, nothing else may be done with this transaction.
  const absl::Status& status() const { return begin_status_; }
  absl::Status Commit();

 private:
  Database& db_;
  absl::Status begin_status_;
};

}  // namespace gan::server::sqlite

#endif  // GAN_SERVER_SQLITE_H_
