#ifndef GAN_IO_IDX_WRITER_H_
#define GAN_IO_IDX_WRITER_H_

// Writer for IDX files (the MNIST / Fashion-MNIST container), the inverse of io/idx_reader.h.

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/types/span.h"

namespace gan {

// Writes `data` as an uncompressed IDX file of unsigned bytes (type 0x08) with the given
// dimensions (rank 1..3, every entry in 1..2^32-1, prod(dims) == data.size()), atomically (see
// io/atomic_file.h). INVALID_ARGUMENT for dimensions that do not describe `data`; otherwise the
// write's status.
absl::Status WriteIdxFile(const std::string& path, absl::Span<const int64_t> dims,
                          absl::Span<const uint8_t> data);

}  // namespace gan

#endif  // GAN_IO_IDX_WRITER_H_
