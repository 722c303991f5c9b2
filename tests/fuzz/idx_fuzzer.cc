// IDX files, raw and gzip (the reader detects gzip from the content), through ReadIdxFile on an
// in-memory file. The limit is lowered to 16 MiB so that a header's claim can never make one
// input slow; the reader's behaviour does not depend on the limit's value.

#include <cstddef>
#include <cstdint>

#include "io/idx_reader.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  gan::fuzz::MemoryFile file(data, size);
  gan::IdxLimits limits;
  limits.max_bytes = 16u << 20;
  absl::StatusOr<gan::IdxArray> array = gan::ReadIdxFile(file.path(), limits);
  if (!array.ok()) return 0;
  uint64_t expected = 1;
  for (int64_t dim : array->dims) {
    if (dim <= 0) __builtin_trap();
    expected *= static_cast<uint64_t>(dim);
  }
  if (array->dims.empty() || array->dims.size() > 3 || array->data.size() != expected) {
    __builtin_trap();
  }
  return 0;
}
