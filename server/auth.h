#ifndef GAN_SERVER_AUTH_H_
#define GAN_SERVER_AUTH_H_

// Who may do what. With --auth_tokens=FILE, every call but health carries
// `authorization: Bearer <token>` metadata; the file has one line per token,
//
//   <role> <principal> <hex SHA-256 of the token>      # comments and blank lines allowed
//
// with role admin (everything, every principal's jobs), trainer (submit, cancel, read, stream,
// score, sample: its own principal's jobs) or viewer (read, stream, score, sample: its own). Only
// hashes are stored, tokens are compared in constant time (hash against every entry), and no
// token, hash or file line ever reaches a log, a metric or an error message. Without a token file
// every caller is the anonymous admin (the loopback development default).

#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

namespace gan::server {

enum class Role { kAdmin, kTrainer, kViewer };

enum class Permission {
  kSubmit,  // SubmitJob
  kCancel,  // CancelJob
  kRead,    // GetJob, ListJobs, StreamMetrics
  kInfer,   // Score, SampleImages, ExportModel, the inference protocol
};

struct Principal {
  std::string name;  // empty for the anonymous admin of a server without tokens
  Role role = Role::kAdmin;

  // Admins see every principal's jobs; everyone else only their own.
  bool SeesJobsOf(absl::string_view owner) const { return role == Role::kAdmin || owner == name; }
};

bool Allows(Role role, Permission permission);
const char* RoleName(Role role);

// The parsed token file.
class TokenTable {
 public:
  // INVALID_ARGUMENT naming `source` and the line number (never the line) for a malformed line:
  // not three fields, an unknown role, a principal outside [A-Za-z0-9._@-]{1,128}, a hash that is
  // not 64 hex digits, or a hash listed twice.
  static absl::StatusOr<TokenTable> Parse(absl::string_view contents, absl::string_view source);
  static absl::StatusOr<TokenTable> Load(const std::string& path);

  // The principal a bearer token belongs to, if any. Hashes `token` once and compares the hash
  // with every entry without an early exit, so the time does not depend on which entry matches.
  const Principal* Find(absl::string_view token) const;

  size_t size() const { return entries_.size(); }

 private:
  struct Entry {
    std::string sha256;  // 32 raw bytes
    Principal principal;
  };
  std::vector<Entry> entries_;
};

// The raw SHA-256 of `data` (32 bytes).
std::string Sha256(absl::string_view data);

// Authenticates calls against a token file that can be re-read (SIGHUP). Thread-safe.
class Authenticator {
 public:
  // Loads the file; its errors as TokenTable::Load.
  static absl::StatusOr<std::unique_ptr<Authenticator>> Create(const std::string& path);

  // The caller of a call with this `authorization` metadata value ("Bearer <token>"):
  // UNAUTHENTICATED when it is missing, malformed or unknown (the message says which, never the
  // token).
  absl::StatusOr<Principal> Authenticate(absl::string_view authorization) const;

  // Re-reads the file; on error the previous table stays in force and the error is returned.
  absl::Status Reload();
  size_t tokens() const;

 private:
  Authenticator(std::string path, std::shared_ptr<const TokenTable> table)
      : path_(std::move(path)), table_(std::move(table)) {}

  const std::string path_;
  mutable absl::Mutex mu_;
  std::shared_ptr<const TokenTable> table_ ABSL_GUARDED_BY(mu_);
};

}  // namespace gan::server

#endif  // GAN_SERVER_AUTH_H_
