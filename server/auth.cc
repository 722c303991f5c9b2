#include "server/auth.h"

#include <openssl/sha.h>

#include <fstream>
#include <set>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace gan::server {
namespace {

// The largest token file read, so a wrong path (a device, a huge file) cannot exhaust memory.
constexpr size_t kMaxTokenFileBytes = 1 << 20;

bool ValidPrincipal(absl::string_view name) {
  if (name.empty() || name.size() > 128) return false;
  for (char c : name) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-' &&
        c != '@') {
      return false;
    }
  }
  return true;
}

bool ParseRole(absl::string_view name, Role* role) {
  if (name == "admin") {
    *role = Role::kAdmin;
  } else if (name == "trainer") {
    *role = Role::kTrainer;
  } else if (name == "viewer") {
    *role = Role::kViewer;
  } else {
    return false;
  }
  return true;
}

// Equal-length comparison without an early exit.
bool ConstantTimeEquals(absl::string_view a, absl::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char difference = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    difference |= static_cast<unsigned char>(a[i] ^ b[i]);
  }
  return difference == 0;
}

}  // namespace

bool Allows(Role role, Permission permission) {
  switch (role) {
    case Role::kAdmin:
      return true;
    case Role::kTrainer:
      return true;  // on its own jobs; ownership is checked separately
    case Role::kViewer:
      return permission == Permission::kRead || permission == Permission::kInfer;
  }
  return false;
}

const char* RoleName(Role role) {
  switch (role) {
    case Role::kAdmin:
      return "admin";
    case Role::kTrainer:
      return "trainer";
    case Role::kViewer:
      return "viewer";
  }
  return "unknown";
}

std::string Sha256(absl::string_view data) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest);
  return std::string(reinterpret_cast<const char*>(digest), sizeof(digest));
}

absl::StatusOr<TokenTable> TokenTable::Parse(absl::string_view contents, absl::string_view source) {
  TokenTable table;
  std::set<std::string> hashes;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(contents, '\n')) {
    ++line_number;
    if (const size_t hash = line.find('#'); hash != absl::string_view::npos) {
      line = line.substr(0, hash);
    }
    line = absl::StripAsciiWhitespace(line);
    if (line.empty()) continue;
    auto invalid = [&](absl::string_view what) {
      return absl::InvalidArgumentError(
          absl::StrCat("--auth_tokens ", source, " line ", line_number, ": ", what,
                       " (expected: <admin|trainer|viewer> <principal> <hex sha256>)"));
    };
    const std::vector<absl::string_view> fields =
        absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    if (fields.size() != 3) return invalid("not three fields");
    Entry entry;
    if (!ParseRole(fields[0], &entry.principal.role)) return invalid("unknown role");
    if (!ValidPrincipal(fields[1])) {
      return invalid("the principal must be 1 to 128 of [A-Za-z0-9._@-]");
    }
    entry.principal.name = std::string(fields[1]);
    const std::string hex = absl::AsciiStrToLower(fields[2]);
    if (hex.size() != 64 || hex.find_first_not_of("0123456789abcdef") != std::string::npos) {
      return invalid("the hash must be 64 hex digits (sha256sum of the token)");
    }
    entry.sha256 = absl::HexStringToBytes(hex);
    if (!hashes.insert(entry.sha256).second) return invalid("this token hash is listed twice");
    table.entries_.push_back(std::move(entry));
  }
  return table;
}

absl::StatusOr<TokenTable> TokenTable::Load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return absl::FailedPreconditionError(absl::StrCat("--auth_tokens ", path, ": cannot read it"));
  std::string contents(kMaxTokenFileBytes + 1, '\0');
  in.read(contents.data(), static_cast<std::streamsize>(contents.size()));
  contents.resize(static_cast<size_t>(in.gcount()));
  if (contents.size() > kMaxTokenFileBytes) {
    return absl::FailedPreconditionError(
        absl::StrCat("--auth_tokens ", path, ": larger than ", kMaxTokenFileBytes, " bytes"));
  }
  return Parse(contents, path);
}

const Principal* TokenTable::Find(absl::string_view token) const {
  const std::string hash = Sha256(token);
  const Principal* found = nullptr;
  for (const Entry& entry : entries_) {
    if (ConstantTimeEquals(entry.sha256, hash)) found = &entry.principal;
  }
  return found;
}

absl::StatusOr<std::unique_ptr<Authenticator>> Authenticator::Create(const std::string& path) {
  absl::StatusOr<TokenTable> table = TokenTable::Load(path);
  if (!table.ok()) return table.status();
  return std::unique_ptr<Authenticator>(
      new Authenticator(path, std::make_shared<const TokenTable>(*std::move(table))));
}

absl::StatusOr<Principal> Authenticator::Authenticate(absl::string_view authorization) const {
  if (authorization.empty()) {
    return absl::UnauthenticatedError(
        "missing credentials: send metadata 'authorization: Bearer <token>'");
  }
  absl::string_view token = authorization;
  if (!absl::ConsumePrefix(&token, "Bearer ") || token.empty()) {
    return absl::UnauthenticatedError(
        "malformed authorization metadata: expected 'Bearer <token>'");
  }
  std::shared_ptr<const TokenTable> table;
  {
    absl::MutexLock lock(&mu_);
    table = table_;
  }
  const Principal* principal = table->Find(token);
  if (principal == nullptr) return absl::UnauthenticatedError("unknown token");
  return *principal;
}

absl::Status Authenticator::Reload() {
  absl::StatusOr<TokenTable> table = TokenTable::Load(path_);
  if (!table.ok()) return table.status();
  absl::MutexLock lock(&mu_);
  table_ = std::make_shared<const TokenTable>(*std::move(table));
  return absl::OkStatus();
}

size_t Authenticator::tokens() const {
  absl::MutexLock lock(&mu_);
  return table_->size();
}

}  // namespace gan::server
