#ifndef GAN_TESTS_FUZZ_FUZZ_UTIL_H_
#define GAN_TESTS_FUZZ_FUZZ_UTIL_H_

// Shared pieces of the fuzz targets (tests/fuzz/*_fuzzer.cc).

#include <cstddef>
#include <cstdint>
#include <string>

#include "gan/v1/spec.pb.h"

namespace gan::fuzz {

// The bytes of one input as an in-memory file (memfd_create), for readers that take a path.
// path() is "/proc/self/fd/<n>": no disk I/O, nothing left behind. Aborts if the kernel refuses a
// memfd (a broken harness, not a finding).
class MemoryFile {
 public:
  MemoryFile(const uint8_t* data, size_t size);
  ~MemoryFile();
  MemoryFile(const MemoryFile&) = delete;
  MemoryFile& operator=(const MemoryFile&) = delete;

  const std::string& path() const { return path_; }

 private:
  int fd_ = -1;
  std::string path_;
};

// Discards protobuf's log lines (invalid UTF-8 in string fields is logged on every parse).
// Returns true, for use as a static initialiser.
bool SilenceProtobufLogs();

// A tiny GAN (4x4x1 images, noise 4, batch 2, about 120 parameters: dense, batch norm, conv) that
// the checkpoint fuzzer restores into and whose checkpoint seeds its corpus.
gan::v1::GanSpec TinyGanSpec();

}  // namespace gan::fuzz

#endif  // GAN_TESTS_FUZZ_FUZZ_UTIL_H_
