#include "core/safetensors.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "io/atomic_file.h"
#include "io/status_macros.h"
#include "nlohmann/json.hpp"

namespace gan {
namespace {

using json = nlohmann::json;

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "tensor bytes are copied as-is; a big-endian host needs byte swapping");

constexpr size_t kLengthPrefixBytes = 8;
constexpr DType kAllDTypes[] = {DType::kF32, DType::kF64, DType::kI64, DType::kI32, DType::kU8};

std::string ShapeString(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

// Compact JSON for a string; invalid UTF-8 becomes U+FFFD instead of throwing.
std::string JsonString(const std::string& s) {
  return json(s).dump(-1, ' ', false, json::error_handler_t::replace);
}

absl::Status TensorError(const std::string& name, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("tensor '", name, "': ", what));
}

// Element count times element size into *bytes; false on 64-bit overflow.
bool ByteSize(const std::vector<uint64_t>& dims, size_t element_size, uint64_t* bytes) {
  uint64_t n = element_size;
  for (uint64_t d : dims) {
    if (__builtin_mul_overflow(n, d, &n)) return false;
  }
  *bytes = n;
  return true;
}

// Reads an array of non-negative integers (`shape` or `data_offsets`) from untrusted JSON.
absl::Status ParseUnsignedArray(const std::string& name, const char* key, const json& value,
                                std::vector<uint64_t>* out) {
  if (!value.is_array()) return TensorError(name, absl::StrCat("'", key, "' is not an array"));
  out->reserve(value.size());
  for (const json& element : value) {
    if (!element.is_number_unsigned()) {
      const std::string shown = element.is_primitive()
                                    ? element.dump(-1, ' ', false, json::error_handler_t::replace)
                                    : element.type_name();
      return TensorError(name,
                         absl::StrCat("'", key, "' holds ", shown, ", not a non-negative integer"));
    }
    out->push_back(element.get<uint64_t>());
  }
  return absl::OkStatus();
}

struct TensorEntry {
  uint64_t begin = 0;
  uint64_t end = 0;
  std::string name;
  Tensor tensor;  // bytes filled in after all entries are validated
};

absl::StatusOr<TensorEntry> ParseTensorEntry(const std::string& name, const json& entry,
                                             uint64_t buffer_bytes) {
  if (!entry.is_object()) return TensorError(name, "entry is not an object");
  const json* dtype = nullptr;
  const json* shape = nullptr;
  const json* offsets = nullptr;
  for (const auto& [key, value] : entry.items()) {
    if (key == "dtype") {
      dtype = &value;
    } else if (key == "shape") {
      shape = &value;
    } else if (key == "data_offsets") {
      offsets = &value;
    } else {
      return TensorError(name, absl::StrCat("unknown key ", JsonString(key)));
    }
  }
  if (dtype == nullptr || shape == nullptr || offsets == nullptr) {
    return TensorError(name, "entry needs 'dtype', 'shape' and 'data_offsets'");
  }

  TensorEntry out;
  out.name = name;
  if (!dtype->is_string()) return TensorError(name, "'dtype' is not a string");
  const std::string& dtype_name = dtype->get_ref<const std::string&>();
  const DType* known = std::find_if(std::begin(kAllDTypes), std::end(kAllDTypes),
                                    [&](DType d) { return DTypeName(d) == dtype_name; });
  if (known == std::end(kAllDTypes)) {
    return TensorError(name, absl::StrCat("unsupported dtype ", JsonString(dtype_name),
                                          " (expected F32, F64, I64, I32 or U8)"));
  }
  out.tensor.dtype = *known;

  std::vector<uint64_t> dims, range;
  GAN_RETURN_IF_ERROR(ParseUnsignedArray(name, "shape", *shape, &dims));
  GAN_RETURN_IF_ERROR(ParseUnsignedArray(name, "data_offsets", *offsets, &range));
  if (range.size() != 2) return TensorError(name, "'data_offsets' must hold [begin, end]");
  out.begin = range[0];
  out.end = range[1];
  const std::string range_text = absl::StrCat("data_offsets [", out.begin, ", ", out.end, "]");
  if (out.begin > out.end) return TensorError(name, absl::StrCat(range_text, " has begin > end"));
  if (out.end > buffer_bytes) {
    return TensorError(name,
                       absl::StrCat(range_text, " exceed the ", buffer_bytes, "-byte data buffer"));
  }
  uint64_t bytes = 0;
  if (!ByteSize(dims, DTypeSize(out.tensor.dtype), &bytes)) {
    return TensorError(name, "shape overflows 64 bits of bytes");
  }
  for (uint64_t d : dims) {
    if (d > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return TensorError(name, absl::StrCat("shape dimension ", d, " is too large"));
    }
    out.tensor.shape.push_back(static_cast<int64_t>(d));
  }
  if (bytes != out.end - out.begin) {
    return TensorError(
        name, absl::StrCat(dtype_name, " shape ", ShapeString(out.tensor.shape), " needs ", bytes,
                           " bytes but ", range_text, " span ", out.end - out.begin));
  }
  return out;
}

absl::Status ParseMetadata(const json& value, std::map<std::string, std::string>* metadata) {
  if (!value.is_object()) return absl::InvalidArgumentError("'__metadata__' is not an object");
  for (const auto& [key, item] : value.items()) {
    if (!item.is_string()) {
      return absl::InvalidArgumentError(
          absl::StrCat("'__metadata__' value for ", JsonString(key), " is not a string"));
    }
    (*metadata)[key] = item.get<std::string>();
  }
  return absl::OkStatus();
}

template <typename T>  // Tensor or TensorView
absl::Status CheckTensor(const std::string& name, const T& tensor) {
  std::vector<uint64_t> dims;
  for (int64_t d : tensor.shape) {
    if (d < 0) return TensorError(name, absl::StrCat("negative shape ", ShapeString(tensor.shape)));
    dims.push_back(static_cast<uint64_t>(d));
  }
  uint64_t bytes = 0;
  if (!ByteSize(dims, DTypeSize(tensor.dtype), &bytes) || bytes != tensor.bytes.size()) {
    return TensorError(name, absl::StrCat("holds ", tensor.bytes.size(), " bytes, not what ",
                                          DTypeName(tensor.dtype), " shape ",
                                          ShapeString(tensor.shape), " needs"));
  }
  return absl::OkStatus();
}

template <typename T>
Tensor MakeTensor(DType dtype, std::vector<int64_t> shape, absl::Span<const T> values) {
  Tensor t{dtype, std::move(shape), std::string(values.size() * sizeof(T), '\0')};
  if (!values.empty()) std::memcpy(t.bytes.data(), values.data(), t.bytes.size());
  return t;
}

template <typename T>
absl::StatusOr<std::vector<T>> GetValues(const SafeTensors& st, const std::string& name,
                                         DType dtype, const std::vector<int64_t>& expected_shape) {
  auto it = st.tensors.find(name);
  if (it == st.tensors.end()) return TensorError(name, "not found");
  const Tensor& t = it->second;
  if (t.dtype != dtype) {
    return TensorError(name,
                       absl::StrCat("is ", DTypeName(t.dtype), ", expected ", DTypeName(dtype)));
  }
  if (!expected_shape.empty() && t.shape != expected_shape) {
    return TensorError(name, absl::StrCat("has shape ", ShapeString(t.shape), ", expected ",
                                          ShapeString(expected_shape)));
  }
  std::vector<T> values(t.bytes.size() / sizeof(T));
  if (!values.empty()) std::memcpy(values.data(), t.bytes.data(), values.size() * sizeof(T));
  return values;
}

}  // namespace

absl::string_view DTypeName(DType dtype) {
  switch (dtype) {
    case DType::kF32:
      return "F32";
    case DType::kF64:
      return "F64";
    case DType::kI64:
      return "I64";
    case DType::kI32:
      return "I32";
    case DType::kU8:
      return "U8";
  }
  return "?";
}

size_t DTypeSize(DType dtype) {
  switch (dtype) {
    case DType::kF32:
      return 4;
    case DType::kF64:
      return 8;
    case DType::kI64:
      return 8;
    case DType::kI32:
      return 4;
    case DType::kU8:
      return 1;
  }
  return 1;
}

namespace {

// The 8-byte length and the header of a file holding `tensors` (Tensor or TensorView by name) in
// name order, back to back; the tensors' bytes follow it.
template <typename Map>
std::string FileHead(const Map& tensors, const std::map<std::string, std::string>& metadata) {
  std::string header = "{";
  if (!metadata.empty()) {
    header += "\"__metadata__\":";
    header += json(metadata).dump(-1, ' ', false, json::error_handler_t::replace);
  }
  uint64_t offset = 0;
  for (const auto& [name, tensor] : tensors) {
    if (header.size() > 1) header += ",";
    absl::StrAppend(&header, JsonString(name), ":{\"dtype\":\"", DTypeName(tensor.dtype),
                    "\",\"shape\":[", absl::StrJoin(tensor.shape, ","), "],\"data_offsets\":[",
                    offset, ",", offset + tensor.bytes.size(), "]}");
    offset += tensor.bytes.size();
  }
  header += "}";
  header.resize((header.size() + 7) / 8 * 8, ' ');
  const uint64_t n = header.size();
  return std::string(reinterpret_cast<const char*>(&n), sizeof(n)) + header;
}

}  // namespace

std::string SerializeSafeTensors(const SafeTensors& st) {
  std::string out = FileHead(st.tensors, st.metadata);
  size_t size = out.size();
  for (const auto& [name, tensor] : st.tensors) size += tensor.bytes.size();
  out.reserve(size);
  for (const auto& [name, tensor] : st.tensors) out += tensor.bytes;
  return out;
}

absl::StatusOr<SafeTensors> ParseSafeTensors(absl::string_view file_bytes,
                                             const SafeTensorsLimits& limits,
                                             const TensorFilter& keep) {
  if (file_bytes.size() < kLengthPrefixBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "file is ", file_bytes.size(), " bytes, shorter than the 8-byte header length"));
  }
  uint64_t header_bytes = 0;
  std::memcpy(&header_bytes, file_bytes.data(), sizeof(header_bytes));
  if (header_bytes > limits.max_header_bytes) {
    return absl::InvalidArgumentError(absl::StrCat("header length ", header_bytes,
                                                   " is over the limit of ",
                                                   limits.max_header_bytes, " bytes"));
  }
  if (header_bytes > file_bytes.size() - kLengthPrefixBytes) {
    return absl::InvalidArgumentError(absl::StrCat("header length ", header_bytes,
                                                   " runs past the end of the ", file_bytes.size(),
                                                   "-byte file"));
  }
  const absl::string_view header_text = file_bytes.substr(kLengthPrefixBytes, header_bytes);
  const absl::string_view buffer = file_bytes.substr(kLengthPrefixBytes + header_bytes);

  const json header = json::parse(header_text.begin(), header_text.end(), nullptr,
                                  /*allow_exceptions=*/false);
  if (header.is_discarded()) return absl::InvalidArgumentError("header is not valid JSON");
  if (!header.is_object()) return absl::InvalidArgumentError("header is not a JSON object");

  SafeTensors st;
  std::vector<TensorEntry> entries;
  for (const auto& [key, value] : header.items()) {
    if (key == "__metadata__") {
      GAN_RETURN_IF_ERROR(ParseMetadata(value, &st.metadata));
      continue;
    }
    GAN_ASSIGN_OR_RETURN(TensorEntry entry, ParseTensorEntry(key, value, buffer.size()));
    entries.push_back(std::move(entry));
  }

  // Each range lies inside the buffer, so after this check the copies below total at most its size.
  std::sort(entries.begin(), entries.end(), [](const TensorEntry& a, const TensorEntry& b) {
    return std::tie(a.begin, a.end) < std::tie(b.begin, b.end);
  });
  for (size_t i = 1; i < entries.size(); ++i) {
    const TensorEntry& prev = entries[i - 1];
    const TensorEntry& cur = entries[i];
    if (cur.begin < prev.end) {
      return TensorError(
          cur.name, absl::StrCat("data_offsets [", cur.begin, ", ", cur.end, "] overlap tensor '",
                                 prev.name, "' [", prev.begin, ", ", prev.end, "]"));
    }
  }
  for (TensorEntry& entry : entries) {
    if (keep && !keep(entry.name)) continue;
    entry.tensor.bytes = std::string(buffer.substr(entry.begin, entry.end - entry.begin));
    st.tensors.emplace(std::move(entry.name), std::move(entry.tensor));
  }
  return st;
}

absl::StatusOr<SafeTensors> ReadSafeTensorsFile(const std::string& path,
                                                const SafeTensorsLimits& limits,
                                                const TensorFilter& keep) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return absl::ErrnoToStatus(errno, absl::StrCat("open '", path, "'"));
  absl::Status status;
  std::string contents;
  struct stat info;
  if (::fstat(fd, &info) != 0) {
    status = absl::ErrnoToStatus(errno, absl::StrCat("stat '", path, "'"));
  } else if (!S_ISREG(info.st_mode)) {
    status = absl::InvalidArgumentError(absl::StrCat("'", path, "' is not a regular file"));
  } else if (static_cast<uint64_t>(info.st_size) > limits.max_file_bytes) {
    status = absl::InvalidArgumentError(absl::StrCat(
        "'", path, "' is ", info.st_size, " bytes, over the limit of ", limits.max_file_bytes));
  } else {
    contents.resize(static_cast<size_t>(info.st_size));
    size_t done = 0;
    while (done < contents.size()) {
      const ssize_t n = ::read(fd, contents.data() + done, contents.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        status = absl::ErrnoToStatus(errno, absl::StrCat("read '", path, "'"));
        break;
      }
      if (n == 0) break;  // the file shrank since fstat; parse what is there
      done += static_cast<size_t>(n);
    }
    contents.resize(done);
  }
  ::close(fd);
  if (!status.ok()) return status;

  absl::StatusOr<SafeTensors> st = ParseSafeTensors(contents, limits, keep);
  if (!st.ok()) {
    return absl::Status(st.status().code(), absl::StrCat(path, ": ", st.status().message()));
  }
  return st;
}

absl::Status WriteSafeTensorsFile(const std::string& path, const SafeTensors& st) {
  for (const auto& [name, tensor] : st.tensors) GAN_RETURN_IF_ERROR(CheckTensor(name, tensor));
  return WriteFileAtomically(path, SerializeSafeTensors(st));
}

absl::Status WriteSafeTensorsFile(const std::string& path,
                                  const std::map<std::string, TensorView>& tensors,
                                  const std::map<std::string, std::string>& metadata) {
  for (const auto& [name, tensor] : tensors) GAN_RETURN_IF_ERROR(CheckTensor(name, tensor));
  GAN_ASSIGN_OR_RETURN(AtomicFileWriter file, AtomicFileWriter::Create(path));
  GAN_RETURN_IF_ERROR(file.Append(FileHead(tensors, metadata)));
  for (const auto& [name, tensor] : tensors) GAN_RETURN_IF_ERROR(file.Append(tensor.bytes));
  return file.Commit();
}

Tensor MakeF32Tensor(std::vector<int64_t> shape, absl::Span<const float> values) {
  return MakeTensor(DType::kF32, std::move(shape), values);
}

Tensor MakeI64Tensor(std::vector<int64_t> shape, absl::Span<const int64_t> values) {
  return MakeTensor(DType::kI64, std::move(shape), values);
}

absl::StatusOr<std::vector<float>> GetF32(const SafeTensors& st, const std::string& name,
                                          const std::vector<int64_t>& expected_shape) {
  return GetValues<float>(st, name, DType::kF32, expected_shape);
}

absl::StatusOr<std::vector<int64_t>> GetI64(const SafeTensors& st, const std::string& name,
                                            const std::vector<int64_t>& expected_shape) {
  return GetValues<int64_t>(st, name, DType::kI64, expected_shape);
}

}  // namespace gan
