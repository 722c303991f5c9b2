#include "server/stream_quota.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace gan::server {

StreamQuota::Slot::Slot(Slot&& other) noexcept
    : quota_(other.quota_), principal_(std::move(other.principal_)) {
  other.quota_ = nullptr;
}

StreamQuota::Slot& StreamQuota::Slot::operator=(Slot&& other) noexcept {
  if (this != &other) {
    Release();
    quota_ = other.quota_;
    principal_ = std::move(other.principal_);
    other.quota_ = nullptr;
  }
  return *this;
}

void StreamQuota::Slot::Release() {
  if (quota_ == nullptr) return;
  quota_->Release(principal_);
  quota_ = nullptr;
}

StreamQuota::StreamQuota(int max_per_principal, prometheus::Gauge* open_streams)
    : max_per_principal_(max_per_principal), open_streams_(open_streams) {}

absl::StatusOr<StreamQuota::Slot> StreamQuota::Acquire(const std::string& principal) {
  {
    absl::MutexLock lock(&mu_);
    int& open = open_[principal];
    if (max_per_principal_ > 0 && open >= max_per_principal_) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "too many metric streams: ",
          principal.empty() ? "the anonymous caller (no --auth_tokens: every caller)"
                            : absl::StrCat("principal ", principal),
          " has ", open, " open, the most allowed (--max_streams_per_principal); end one first"));
    }
    ++open;
    ++total_;
    if (open_streams_ != nullptr) open_streams_->Set(total_);
  }
  return Slot(this, principal);
}

void StreamQuota::Release(const std::string& principal) {
  absl::MutexLock lock(&mu_);
  auto it = open_.find(principal);
  if (it == open_.end()) return;  // never: a Slot is released once
  if (--it->second <= 0) open_.erase(it);
  --total_;
  if (open_streams_ != nullptr) open_streams_->Set(total_);
}

int StreamQuota::open(const std::string& principal) const {
  absl::MutexLock lock(&mu_);
  auto it = open_.find(principal);
  return it == open_.end() ? 0 : it->second;
}

int StreamQuota::total() const {
  absl::MutexLock lock(&mu_);
  return total_;
}

}  // namespace gan::server
