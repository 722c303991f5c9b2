#include "server/job_store_url.h"

#include <memory>
#include <string>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "io/status_macros.h"
#include "server/postgres_job_store.h"
#include "server/sqlite_job_store.h"

namespace gan::server {
namespace {

constexpr char kSqliteScheme[] = "sqlite://";

bool IsPostgresUrl(const std::string& url) {
  const std::string lower = absl::AsciiStrToLower(url.substr(0, 16));
  return absl::StartsWith(lower, "postgresql://") || absl::StartsWith(lower, "postgres://");
}

}  // namespace

std::string RedactJobStoreUrl(const std::string& url) {
  std::string redacted = url;
  // scheme://user:password@host...: the password ends at the last '@' of the authority.
  if (const size_t scheme_end = redacted.find("://"); scheme_end != std::string::npos) {
    const size_t authority = scheme_end + 3;
    size_t authority_end = redacted.find_first_of("/?#", authority);
    if (authority_end == std::string::npos) authority_end = redacted.size();
    const size_t at = redacted.rfind('@', authority_end);
    if (at != std::string::npos && at >= authority) {
      const size_t colon = redacted.find(':', authority);
      if (colon != std::string::npos && colon < at) {
        redacted.replace(colon + 1, at - colon - 1, "***");
      }
    }
  }
  // ...?password=secret&... (libpq URI parameters), in any case.
  size_t from = 0;
  while (true) {
    const std::string lower = absl::AsciiStrToLower(redacted);
    const size_t key = lower.find("password=", from);
    if (key == std::string::npos) break;
    const size_t value = key + 9;
    size_t end = redacted.find_first_of("&# ", value);
    if (end == std::string::npos) end = redacted.size();
    redacted.replace(value, end - value, "***");
    from = value + 3;
  }
  return redacted;
}

absl::StatusOr<JobStoreUrl> ParseJobStoreUrl(const std::string& url, const std::string& data_dir) {
  JobStoreUrl parsed;
  if (url.empty()) {
    parsed.sqlite_path = data_dir + "/jobs.sqlite";
    return parsed;
  }
  if (absl::StartsWith(url, kSqliteScheme)) {
    parsed.sqlite_path = url.substr(sizeof(kSqliteScheme) - 1);
    if (parsed.sqlite_path.empty()) {
      return absl::InvalidArgumentError(
          "--job_store: a sqlite URL needs a file path: sqlite:///path/jobs.sqlite");
    }
    return parsed;
  }
  if (IsPostgresUrl(url)) {
    parsed.backend = JobStoreUrl::Backend::kPostgres;
    parsed.postgres_url = url;
    return parsed;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("--job_store ", RedactJobStoreUrl(url),
                   ": unknown scheme; use sqlite:///path/jobs.sqlite or "
                   "postgresql://user@host:port/db"));
}

absl::StatusOr<std::unique_ptr<JobStore>> OpenJobStore(const JobStoreUrl& url,
                                                       absl::Duration connect_timeout) {
  if (url.backend == JobStoreUrl::Backend::kSqlite) {
    GAN_ASSIGN_OR_RETURN(std::unique_ptr<SqliteJobStore> store,
                         SqliteJobStore::Open(url.sqlite_path));
    return std::unique_ptr<JobStore>(std::move(store));
  }
  GAN_ASSIGN_OR_RETURN(std::unique_ptr<PostgresJobStore> store,
                       PostgresJobStore::Open(url.postgres_url, connect_timeout));
  return std::unique_ptr<JobStore>(std::move(store));
}

}  // namespace gan::server
