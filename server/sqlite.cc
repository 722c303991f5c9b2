#include "server/sqlite.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "io/status_macros.h"

namespace gan::server::sqlite {

Statement::Statement(Statement&& other) noexcept
    : db_(other.db_),
      stmt_(std::exchange(other.stmt_, nullptr)),
      next_index_(other.next_index_),
      bind_status_(std::move(other.bind_status_)) {}

Statement::~Statement() { sqlite3_finalize(stmt_); }

Statement& Statement::Bind(int64_t value) {
  return Check(sqlite3_bind_int64(stmt_, next_index_++, value));
}

Statement& Statement::BindText(absl::string_view value) {
  return Check(sqlite3_bind_text(stmt_, next_index_++, value.empty() ? "" : value.data(),
                                 static_cast<int>(value.size()), SQLITE_TRANSIENT));
}

Statement& Statement::BindTextOrNull(absl::string_view value) {
  if (value.empty()) return Check(sqlite3_bind_null(stmt_, next_index_++));
  return BindText(value);
}

Statement& Statement::BindBlob(absl::string_view value) {
  if (value.empty()) return Check(sqlite3_bind_zeroblob(stmt_, next_index_++, 0));
  return Check(sqlite3_bind_blob(stmt_, next_index_++, value.data(), static_cast<int>(value.size()),
                                 SQLITE_TRANSIENT));
}

Statement& Statement::BindTime(absl::Time value) {
  if (value == absl::InfinitePast()) return Check(sqlite3_bind_null(stmt_, next_index_++));
  return Bind(absl::ToUnixMicros(value));
}

absl::StatusOr<bool> Statement::Step() {
  GAN_RETURN_IF_ERROR(bind_status_);
  const int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return Error();
}

absl::Status Statement::Run() {
  while (true) {
    GAN_ASSIGN_OR_RETURN(bool row, Step());
    if (!row) return absl::OkStatus();
  }
}

bool Statement::IsNull(int column) const {
  return sqlite3_column_type(stmt_, column) == SQLITE_NULL;
}

int64_t Statement::Int64(int column) const { return sqlite3_column_int64(stmt_, column); }

std::string Statement::Text(int column) const {
  const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, column));
  if (text == nullptr) return "";
  return std::string(text, static_cast<size_t>(sqlite3_column_bytes(stmt_, column)));
}

std::string Statement::Blob(int column) const {
  const auto* data = static_cast<const char*>(sqlite3_column_blob(stmt_, column));
  if (data == nullptr) return "";
  return std::string(data, static_cast<size_t>(sqlite3_column_bytes(stmt_, column)));
}

absl::Time Statement::Time(int column) const {
  return IsNull(column) ? absl::InfinitePast() : absl::FromUnixMicros(Int64(column));
}

Statement& Statement::Check(int rc) {
  if (rc != SQLITE_OK && bind_status_.ok()) bind_status_ = Error();
  return *this;
}

absl::Status Statement::Error() const {
  return absl::InternalError(
      absl::StrCat("SQLite: ", sqlite3_errmsg(db_), " (in: ", sqlite3_sql(stmt_), ")"));
}

absl::StatusOr<std::unique_ptr<Database>> Database::Open(const std::string& path) {
  sqlite3* raw = nullptr;
  const int rc =
      sqlite3_open_v2(path.c_str(), &raw,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  std::unique_ptr<Database> db(new Database(raw));  // closes `raw` on every path
  if (rc != SQLITE_OK) {
    return absl::InternalError(absl::StrCat("cannot open database ", path, ": ",
                                            raw ? sqlite3_errmsg(raw) : sqlite3_errstr(rc)));
  }
  sqlite3_extended_result_codes(raw, 1);
  return db;
}

Database::~Database() { sqlite3_close_v2(db_); }

absl::StatusOr<Statement> Database::Prepare(absl::string_view sql) {
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(db_, sql.data(), static_cast<int>(sql.size()), &stmt, nullptr) !=
      SQLITE_OK) {
    return absl::InternalError(
        absl::StrCat("SQLite: ", sqlite3_errmsg(db_), " (preparing: ", sql, ")"));
  }
  return Statement(db_, stmt);
}

absl::Status Database::Exec(const char* sql) {
  char* message = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &message) != SQLITE_OK) {
    absl::Status status = absl::InternalError(
        absl::StrCat("SQLite: ", message ? message : sqlite3_errmsg(db_), " (in: ", sql, ")"));
    sqlite3_free(message);
    return status;
  }
  return absl::OkStatus();
}

void Database::SetBusyTimeout(absl::Duration timeout) {
  sqlite3_busy_timeout(db_, static_cast<int>(absl::ToInt64Milliseconds(timeout)));
}

int64_t Database::Changes() const { return sqlite3_changes(db_); }
int64_t Database::LastInsertRowid() const { return sqlite3_last_insert_rowid(db_); }
bool Database::InTransaction() const { return sqlite3_get_autocommit(db_) == 0; }

Transaction::Transaction(Database& db) : db_(db), begin_status_(db.Exec("BEGIN IMMEDIATE")) {}

Transaction::~Transaction() {
  // Not committed, or a COMMIT that failed and left the transaction open (e.g. SQLITE_BUSY):
  // never leave it dangling.
  if (begin_status_.ok() && db_.InTransaction()) db_.Exec("ROLLBACK").IgnoreError();
}

absl::Status Transaction::Commit() {
  GAN_RETURN_IF_ERROR(begin_status_);
  return db_.Exec("COMMIT");
}

}  // namespace gan::server::sqlite
