#include "io/idx_reader.h"

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <memory>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "absl/strings/string_view.h"
#include "io/status_macros.h"

namespace gan {
namespace {

// Up-front reservation cap: beyond it the buffer only grows as bytes actually arrive.
constexpr uint64_t kMaxUpfrontReserve = 16ull << 20;
constexpr size_t kReadChunk = 1u << 20;

struct GzCloser {
  void operator()(gzFile file) const { gzclose(file); }
};
using GzFile = std::unique_ptr<gzFile_s, GzCloser>;

absl::Status GzReadError(gzFile file, const std::string& path) {
  int errnum = Z_OK;
  // zlib reports "<path>: <problem>"; keep only the problem.
  const absl::string_view message = absl::StripPrefix(gzerror(file, &errnum), path + ": ");
  if (errnum == Z_ERRNO) return absl::InternalError(absl::StrCat(path, ": read failed: ", message));
  return absl::DataLossError(absl::StrCat(path, ": damaged gzip stream: ", message));
}

// Reads up to `len` bytes; returns how many were read (fewer only at the end of the data).
absl::StatusOr<size_t> ReadUpTo(gzFile file, const std::string& path, uint8_t* buf, size_t len) {
  size_t total = 0;
  while (total < len) {
    const auto want = static_cast<unsigned>(std::min(len - total, kReadChunk));
    const int n = gzread(file, buf + total, want);
    if (n < 0) return GzReadError(file, path);
    if (n == 0) {
      // A clean end of data leaves no error; Z_BUF_ERROR means the gzip stream was cut short.
      int errnum = Z_OK;
      gzerror(file, &errnum);
      if (errnum != Z_OK) return GzReadError(file, path);
      break;
    }
    total += static_cast<size_t>(n);
  }
  return total;
}

}  // namespace

absl::StatusOr<IdxArray> ReadIdxFile(const std::string& path, const IdxLimits& limits) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": is a directory, not an IDX file"));
  }
  errno = 0;
  GzFile file(gzopen(path.c_str(), "rb"));
  if (file == nullptr) {
    const int err = errno;
    const std::string message = absl::StrCat(path, ": cannot open: ", std::strerror(err));
    if (err == ENOENT) return absl::NotFoundError(message);
    if (err == EACCES) return absl::PermissionDeniedError(message);
    return absl::InternalError(message);
  }
  gzbuffer(file.get(), 1 << 17);

  // Header: 00 00 <type> <rank>, then rank big-endian uint32 dimensions.
  uint8_t header[4 + 4 * 3];
  GAN_ASSIGN_OR_RETURN(size_t got, ReadUpTo(file.get(), path, header, 4));
  if (got < 4) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s: %d bytes is too short for an IDX header", path, got));
  }
  if (header[0] != 0 || header[1] != 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s: bad magic %02x %02x %02x %02x, expected 00 00 08 0<rank>", path,
                        header[0], header[1], header[2], header[3]));
  }
  if (header[2] != 0x08) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: element type 0x%02x is not supported (only unsigned byte, 0x08)", path, header[2]));
  }
  const int rank = header[3];
  if (rank < 1 || rank > 3) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s: rank %d is not supported (1..3)", path, rank));
  }
  GAN_ASSIGN_OR_RETURN(got, ReadUpTo(file.get(), path, header + 4, 4 * rank));
  if (got < static_cast<size_t>(4 * rank)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: header truncated: rank %d needs %d dimension bytes but the file holds %d", path, rank,
        4 * rank, got));
  }

  IdxArray array;
  for (int d = 0; d < rank; ++d) {
    const uint8_t* b = header + 4 + 4 * d;
    const uint32_t dim = (uint32_t{b[0]} << 24) | (uint32_t{b[1]} << 16) |
                         (uint32_t{b[2]} << 8) | uint32_t{b[3]};
    array.dims.push_back(dim);
  }
  const std::string shape = absl::StrJoin(array.dims, "x");
  uint64_t claimed = 1;
  for (int64_t dim : array.dims) {
    if (dim == 0) {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s: header has a zero dimension (%s)", path, shape));
    }
    // claimed * dim > max_bytes, written so that it cannot overflow.
    if (claimed > limits.max_bytes / static_cast<uint64_t>(dim)) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s: header claims %s bytes, more than the limit of %d", path, shape, limits.max_bytes));
    }
    claimed *= static_cast<uint64_t>(dim);
  }

  // Payload: grow with the data actually read, never straight to the header's claim.
  std::vector<uint8_t>& data = array.data;
  data.reserve(std::min(claimed, kMaxUpfrontReserve));
  while (data.size() < claimed) {
    const size_t old_size = data.size();
    const size_t want = std::min<uint64_t>(claimed - old_size, kReadChunk);
    if (old_size + want > data.capacity()) {
      data.reserve(std::min<uint64_t>(claimed, std::max(2 * data.capacity(), old_size + want)));
    }
    data.resize(old_size + want);
    GAN_ASSIGN_OR_RETURN(const size_t n, ReadUpTo(file.get(), path, data.data() + old_size, want));
    data.resize(old_size + n);
    if (n < want) {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s: header claims %s = %d bytes but the file holds %d", path, shape,
                          claimed, data.size()));
    }
  }

  // Read to the end: reports trailing bytes, and lets zlib verify the gzip CRC and length.
  uint64_t trailing = 0;
  uint8_t scratch[16384];
  for (;;) {
    GAN_ASSIGN_OR_RETURN(const size_t n, ReadUpTo(file.get(), path, scratch, sizeof(scratch)));
    trailing += n;
    if (n < sizeof(scratch)) break;
  }
  if (trailing > 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: %d trailing bytes after the %s = %d-byte payload", path, trailing, shape, claimed));
  }
  return array;
}

}  // namespace gan
