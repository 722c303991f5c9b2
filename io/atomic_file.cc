#include "io/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <utility>

#include "absl/strings/str_cat.h"

namespace gan {
namespace {

std::atomic<AtomicWriteStage> pending_fault{AtomicWriteStage::kNone};
std::atomic<uint64_t> temp_counter{0};

// Consumes the pending fault if it is set for `stage`.
bool FaultAt(AtomicWriteStage stage) {
  AtomicWriteStage expected = stage;
  return pending_fault.compare_exchange_strong(expected, AtomicWriteStage::kNone);
}

absl::Status ErrnoError(int error_number, absl::string_view what, const std::string& file) {
  return absl::ErrnoToStatus(error_number, absl::StrCat(what, " '", file, "'"));
}

absl::Status InjectedFault(absl::string_view stage, const std::string& path) {
  return absl::InternalError(absl::StrCat("injected fault ", stage, " writing '", path, "'"));
}

// Writes all of `data`, retrying short writes and EINTR.
absl::Status WriteAll(int fd, absl::string_view data, const std::string& file) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError(errno, "write", file);
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

absl::Status SyncDirectory(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ErrnoError(errno, "open directory", dir);
  absl::Status status;
  if (::fsync(fd) != 0) status = ErrnoError(errno, "fsync directory", dir);
  ::close(fd);
  return status;
}

}  // namespace

absl::Status WriteFileAtomically(const std::string& path, absl::string_view contents) {
  absl::StatusOr<AtomicFileWriter> writer = AtomicFileWriter::Create(path);
  if (!writer.ok()) return writer.status();
  if (absl::Status status = writer->Append(contents); !status.ok()) return status;
  return writer->Commit();
}

absl::StatusOr<AtomicFileWriter> AtomicFileWriter::Create(const std::string& path) {
  std::string temp = absl::StrCat(path, ".tmp.", ::getpid(), ".", temp_counter++);
  const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoError(errno, "create", temp);
  return AtomicFileWriter(path, std::move(temp), fd);
}

AtomicFileWriter::AtomicFileWriter(AtomicFileWriter&& other) noexcept
    : path_(std::move(other.path_)),
      temp_(std::move(other.temp_)),
      fd_(std::exchange(other.fd_, -1)),
      status_(std::move(other.status_)),
      done_(std::exchange(other.done_, true)) {}

AtomicFileWriter& AtomicFileWriter::operator=(AtomicFileWriter&& other) noexcept {
  if (this != &other) {
    Abandon();
    path_ = std::move(other.path_);
    temp_ = std::move(other.temp_);
    fd_ = std::exchange(other.fd_, -1);
    status_ = std::move(other.status_);
    done_ = std::exchange(other.done_, true);
  }
  return *this;
}

AtomicFileWriter::~AtomicFileWriter() { Abandon(); }

void AtomicFileWriter::Abandon() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  if (!done_) ::unlink(temp_.c_str());  // best effort
  done_ = true;
}

absl::Status AtomicFileWriter::Append(absl::string_view data) {
  if (done_ || fd_ < 0) return absl::FailedPreconditionError("the file was already committed");
  if (status_.ok()) status_ = WriteAll(fd_, data, temp_);
  return status_;
}

absl::Status AtomicFileWriter::Commit() {
  if (done_ || fd_ < 0) return absl::FailedPreconditionError("the file was already committed");
  absl::Status status = status_;
  if (status.ok() && FaultAt(AtomicWriteStage::kAfterWrite)) {
    status = InjectedFault("after write", path_);
  }
  if (status.ok() && ::fsync(fd_) != 0) status = ErrnoError(errno, "fsync", temp_);
  // close() is not retried on EINTR: on Linux the descriptor is released regardless.
  if (::close(fd_) != 0 && status.ok()) status = ErrnoError(errno, "close", temp_);
  fd_ = -1;
  if (status.ok() && FaultAt(AtomicWriteStage::kAfterFsync)) {
    status = InjectedFault("after fsync", path_);
  }
  if (status.ok() && std::rename(temp_.c_str(), path_.c_str()) != 0) {
    status = ErrnoError(errno, "rename to", path_);
  }
  if (!status.ok()) {
    Abandon();  // removes the temp file; `path` is untouched
    return status;
  }
  done_ = true;  // the rename is the commit point
  if (FaultAt(AtomicWriteStage::kAfterRename)) return InjectedFault("after rename", path_);
  std::string dir = std::filesystem::path(path_).parent_path().string();
  return SyncDirectory(dir.empty() ? "." : dir);
}

void SetAtomicWriteFaultForTesting(AtomicWriteStage stage) { pending_fault.store(stage); }

}  // namespace gan
