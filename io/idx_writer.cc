#include "io/idx_writer.h"

#include <cstdint>
#include <string>

#include "absl/strings/str_cat.h"
#include "io/atomic_file.h"

namespace gan {

absl::Status WriteIdxFile(const std::string& path, absl::Span<const int64_t> dims,
                          absl::Span<const uint8_t> data) {
  if (dims.empty() || dims.size() > 3) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": an IDX file has 1 to 3 dimensions, not ", dims.size()));
  }
  uint64_t count = 1;
  for (const int64_t d : dims) {
    if (d < 1 || d > int64_t{0xffffffff}) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": IDX dimension ", d, " is outside 1..2^32-1"));
    }
    count *= static_cast<uint64_t>(d);  // at most 3 factors below 2^32 each: checked below
    if (count > data.size()) break;
  }
  if (count != data.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": the IDX dimensions do not describe the ", data.size(), " bytes given"));
  }
  std::string contents;
  contents.reserve(4 + 4 * dims.size() + data.size());
  contents.append({'\0', '\0', '\x08', static_cast<char>(dims.size())});
  for (const int64_t d : dims) {
    const auto v = static_cast<uint32_t>(d);
    contents.append({static_cast<char>(v >> 24), static_cast<char>((v >> 16) & 0xff),
                     static_cast<char>((v >> 8) & 0xff), static_cast<char>(v & 0xff)});
  }
  contents.append(reinterpret_cast<const char*>(data.data()), data.size());
  return WriteFileAtomically(path, contents);
}

}  // namespace gan
