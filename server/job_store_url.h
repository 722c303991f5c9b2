#ifndef GAN_SERVER_JOB_STORE_URL_H_
#define GAN_SERVER_JOB_STORE_URL_H_

// --job_store: which JobStore backend a server uses, named by a URL.
//
//   sqlite:///abs/path/jobs.sqlite   the embedded store, one process per file (the default:
//                                    <data_dir>/jobs.sqlite when --job_store is empty)
//   postgresql://user[:password]@host[:port]/db[?param=value...]   (or postgres://; any libpq
//                                    URI): the shared store for several replicas. The password
//                                    may also come from PGPASSFILE (~/.pgpass).
//
// A URL may hold a password: only RedactJobStoreUrl's form is ever logged or put in a status.

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/job_store.h"

namespace gan::server {

struct JobStoreUrl {
  enum class Backend { kSqlite, kPostgres };
  Backend backend = Backend::kSqlite;
  std::string sqlite_path;   // kSqlite: the database file
  std::string postgres_url;  // kPostgres: the URL as given, for libpq (secret)
};

// Parses `url`; an empty one is sqlite://<data_dir>/jobs.sqlite. INVALID_ARGUMENT naming
// --job_store (with the redacted URL) for an unknown scheme or a sqlite URL without a path.
absl::StatusOr<JobStoreUrl> ParseJobStoreUrl(const std::string& url, const std::string& data_dir);

// `url` with any password replaced by "***" (the user-info password and a password= parameter),
// for logs and messages.
std::string RedactJobStoreUrl(const std::string& url);

// Opens the store `url` names (creating or migrating its schema). PostgreSQL connection
// attempts give up after `connect_timeout`.
absl::StatusOr<std::unique_ptr<JobStore>> OpenJobStore(const JobStoreUrl& url,
                                                       absl::Duration connect_timeout);

}  // namespace gan::server

#endif  // GAN_SERVER_JOB_STORE_URL_H_
