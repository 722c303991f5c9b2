#ifndef GAN_IO_ATOMIC_FILE_H_
#define GAN_IO_ATOMIC_FILE_H_

// The one way this project replaces a file on disk: readers and a crash at any moment see either
// the old contents or the new, never a mix or a truncated file.

#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace gan {

// Replaces `path` with `contents` durably: writes a uniquely named temp file in the same directory
// (`<path>.tmp.<pid>.<counter>`), fsyncs and closes it, renames it over `path`, then fsyncs the
// directory so the rename itself survives a power loss. The rename is the commit point.
//
// On failure before the rename the temp file is removed and `path` is untouched. A failure after
// the rename (fsync of the directory) is still reported, though `path` already holds the new
// contents. Errors carry the absl code mapped from errno (e.g. NOT_FOUND for a missing directory)
// and the errno text. Thread-safe; concurrent writers to one path each commit whole contents, last
// wins.
absl::Status WriteFileAtomically(const std::string& path, absl::string_view contents);

// The same replacement written in pieces, for contents too large to assemble in memory first:
// Create opens the temp file, Append writes to it, Commit fsyncs, renames and fsyncs the directory
// (the guarantees and errors of WriteFileAtomically). A writer destroyed without a successful
// Commit removes its temp file and leaves `path` untouched. Not thread-safe; movable.
class AtomicFileWriter {
 public:
  static absl::StatusOr<AtomicFileWriter> Create(const std::string& path);
  AtomicFileWriter(AtomicFileWriter&& other) noexcept;
  AtomicFileWriter& operator=(AtomicFileWriter&& other) noexcept;
  AtomicFileWriter(const AtomicFileWriter&) = delete;
  AtomicFileWriter& operator=(const AtomicFileWriter&) = delete;
  ~AtomicFileWriter();

  absl::Status Append(absl::string_view data);
  // After the first error of Append, Commit returns it (and nothing is renamed).
  absl::Status Commit();

 private:
  AtomicFileWriter(std::string path, std::string temp, int fd)
      : path_(std::move(path)), temp_(std::move(temp)), fd_(fd) {}
  void Abandon();

  std::string path_, temp_;
  int fd_ = -1;  // -1 once closed
  absl::Status status_;
  bool done_ = false;  // committed or abandoned
};

// Fault injection for tests: the steps after which a write can be made to fail.
enum class AtomicWriteStage {
  kNone,         // no fault
  kAfterWrite,   // contents written to the temp file, not yet fsynced
  kAfterFsync,   // temp file fsynced and closed, not yet renamed
  kAfterRename,  // renamed over the target, directory not yet fsynced
};

// The next WriteFileAtomically call (or AtomicFileWriter commit) fails with INTERNAL right after
// `stage`, taking the same cleanup path as a real failure there; the fault then clears itself.
// kNone clears a pending fault.
void SetAtomicWriteFaultForTesting(AtomicWriteStage stage);

}  // namespace gan

#endif  // GAN_IO_ATOMIC_FILE_H_
