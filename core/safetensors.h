#ifndef GAN_CORE_SAFETENSORS_H_
#define GAN_CORE_SAFETENSORS_H_

// The safetensors file format (https://github.com/huggingface/safetensors), used for checkpoints
// and committed reference data:
//
//   u64 little-endian N | N bytes of UTF-8 JSON header | data buffer (raw little-endian values)
//
// The header maps each tensor name to {"dtype", "shape", "data_offsets": [begin, end]} (offsets
// relative to the data buffer) plus an optional "__metadata__" object of string values.
//
// Error convention: every problem with the file's contents (ParseSafeTensors, ReadSafeTensorsFile)
// and every mismatch found by GetF32/GetI64, including an absent tensor, is INVALID_ARGUMENT with a
// message naming the tensor and what is wrong. I/O failures carry the absl code mapped from errno.

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace gan {

enum class DType { kF32, kF64, kI64, kI32, kU8 };

// "F32", "F64", "I64", "I32", "U8" as in the header.
absl::string_view DTypeName(DType dtype);
// Bytes per element.
size_t DTypeSize(DType dtype);

struct Tensor {
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  std::string bytes;  // raw little-endian, row-major; size == product(shape) * DTypeSize(dtype)
};

struct SafeTensors {
  std::map<std::string, Tensor> tensors;
  std::map<std::string, std::string> metadata;  // "__metadata__"; omitted from the file when empty
};

// Byte layout of the reference implementation: compact JSON with "__metadata__" first and each
// entry's keys in the order dtype, shape, data_offsets; header padded with spaces to a multiple of
// 8 bytes. Tensors are laid out back to back in name order (the reference orders by alignment
// first; any order is valid). Deterministic: equal inputs give equal bytes. Precondition: every
// tensor's bytes match its shape and dtype (WriteSafeTensorsFile checks this); names and metadata
// should be valid UTF-8 (invalid sequences are replaced by U+FFFD).
std::string SerializeSafeTensors(const SafeTensors& st);

struct SafeTensorsLimits {
  uint64_t max_file_bytes = 4ull << 30;
  uint64_t max_header_bytes = 100ull << 20;
};

// Parses and fully validates untrusted bytes: header length within the file and the limit, JSON an
// object, known dtypes, non-negative shapes whose byte size equals the offset range, offsets inside
// the data buffer, no two tensors overlapping, metadata values strings, no unknown keys. Gaps
// between tensors and trailing bytes after the last one are allowed. Never allocates by an
// unchecked size. `keep`, when set, chooses the tensors the result holds: the others are validated
// all the same but their bytes are not copied (a reader that needs a part of a large file, e.g. the
// weights without the optimizer state).
using TensorFilter = std::function<bool(absl::string_view name)>;
absl::StatusOr<SafeTensors> ParseSafeTensors(absl::string_view file_bytes,
                                             const SafeTensorsLimits& limits = {},
                                             const TensorFilter& keep = nullptr);

// Checks the file size against limits.max_file_bytes before reading, then parses. Error messages
// are prefixed with the path.
absl::StatusOr<SafeTensors> ReadSafeTensorsFile(const std::string& path,
                                                const SafeTensorsLimits& limits = {},
                                                const TensorFilter& keep = nullptr);

// Serializes and writes with WriteFileAtomically. INVALID_ARGUMENT (nothing written) when a
// tensor's bytes do not match its shape and dtype.
absl::Status WriteSafeTensorsFile(const std::string& path, const SafeTensors& st);

// A tensor to write without copying it first: `bytes` (raw little-endian, row-major) stay the
// caller's and must outlive the write.
struct TensorView {
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  absl::string_view bytes;
};
// The same file as WriteSafeTensorsFile of the equal SafeTensors, byte for byte, streamed from the
// caller's memory into an AtomicFileWriter: no copy of the tensors or of the file is assembled.
absl::Status WriteSafeTensorsFile(const std::string& path,
                                  const std::map<std::string, TensorView>& tensors,
                                  const std::map<std::string, std::string>& metadata);

// Typed helpers. Precondition: values.size() == product(shape).
Tensor MakeF32Tensor(std::vector<int64_t> shape, absl::Span<const float> values);
Tensor MakeI64Tensor(std::vector<int64_t> shape, absl::Span<const int64_t> values);

// The tensor's values. INVALID_ARGUMENT naming the tensor when it is absent, of another dtype, or
// (when expected_shape is non-empty) of another shape. An empty expected_shape accepts any shape,
// so a scalar's shape cannot be enforced this way.
absl::StatusOr<std::vector<float>> GetF32(const SafeTensors& st, const std::string& name,
                                          const std::vector<int64_t>& expected_shape = {});
absl::StatusOr<std::vector<int64_t>> GetI64(const SafeTensors& st, const std::string& name,
                                            const std::vector<int64_t>& expected_shape = {});

}  // namespace gan

#endif  // GAN_CORE_SAFETENSORS_H_
