#include "io/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <filesystem>

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

// Everything up to and including the rename; the caller removes `temp` when this fails.
absl::Status WriteAndRename(const std::string& temp, const std::string& path,
                            absl::string_view contents) {
  const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoError(errno, "create", temp);
  absl::Status status = WriteAll(fd, contents, temp);
  if (status.ok() && FaultAt(AtomicWriteStage::kAfterWrite)) {
    status = InjectedFault("after write", path);
  }
  if (status.ok() && ::fsync(fd) != 0) status = ErrnoError(errno, "fsync", temp);
  // close() is not retried on EINTR: on Linux the descriptor is released regardless.
  if (::close(fd) != 0 && status.ok()) status = ErrnoError(errno, "close", temp);
  if (!status.ok()) return status;
  if (FaultAt(AtomicWriteStage::kAfterFsync)) return InjectedFault("after fsync", path);
  if (std::rename(temp.c_str(), path.c_str()) != 0) return ErrnoError(errno, "rename to", path);
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
  const std::string temp = absl::StrCat(path, ".tmp.", ::getpid(), ".", temp_counter++);
  if (absl::Status status = WriteAndRename(temp, path, contents); !status.ok()) {
    ::unlink(temp.c_str());  // best effort; ENOENT when the create itself failed
    return status;
  }
  if (FaultAt(AtomicWriteStage::kAfterRename)) return InjectedFault("after rename", path);
  std::string dir = std::filesystem::path(path).parent_path().string();
  return SyncDirectory(dir.empty() ? "." : dir);
}

void SetAtomicWriteFaultForTesting(AtomicWriteStage stage) { pending_fault.store(stage); }

}  // namespace gan
