#ifndef GAN_IO_IDX_READER_H_
#define GAN_IO_IDX_READER_H_

// Reader for IDX files (the MNIST / Fashion-MNIST container), raw or gzip-compressed.
//
// Format: 2 zero bytes, a type code (only 0x08 = unsigned byte is supported), the rank r (1..3),
// r big-endian uint32 dimensions, then exactly prod(dims) payload bytes, row-major.
// idx1 files hold labels (N), idx3 files hold images (N, H, W).

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace gan {

struct IdxArray {
  std::vector<int64_t> dims;  // every entry > 0
  std::vector<uint8_t> data;  // prod(dims) bytes, row-major
};

struct IdxLimits {
  // Largest accepted payload (prod(dims)), checked against the header before anything is read.
  uint64_t max_bytes = 1ull << 30;
};

// Reads `path`, raw or gzip (detected from the content, not the name).
//
// Memory follows the bytes actually present, not the header's claim: the buffer grows while the
// payload is read, so a tiny file claiming a gigabyte fails after reading a few bytes.
//
// Errors (messages name the file and the problem):
//   NOT_FOUND         the file does not exist.
//   INVALID_ARGUMENT  not a valid IDX file: bad magic, type code other than 0x08, rank outside 1..3,
//                     a zero dimension, a size that overflows or exceeds limits.max_bytes, fewer
//                     payload bytes than the header claims (truncated), or trailing bytes.
//   DATA_LOSS         the gzip stream itself is damaged: corrupt deflate data, CRC/length
//                     mismatch, or a compressed stream cut short.
//   PERMISSION_DENIED / INTERNAL  the file cannot be opened or read.
absl::StatusOr<IdxArray> ReadIdxFile(const std::string& path, const IdxLimits& limits = {});

}  // namespace gan

#endif  // GAN_IO_IDX_READER_H_
