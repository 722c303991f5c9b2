#include "server/inference_tensors.h"

#include <cmath>
#include <cstring>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "io/little_endian.h"

namespace gan::server {
namespace {

using ::inference::InferTensorContents;
using ::inference::ModelInferRequest;

template <typename... Parts>
absl::Status Invalid(absl::string_view field, const Parts&... parts) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", parts...));
}

enum class DataType { kUint8, kFp32 };

// Number of typed-contents fields that hold values (at most one may).
int FilledContentFields(const InferTensorContents& c) {
  return (c.bool_contents_size() > 0) + (c.int_contents_size() > 0) +
         (c.int64_contents_size() > 0) + (c.uint_contents_size() > 0) +
         (c.uint64_contents_size() > 0) + (c.fp32_contents_size() > 0) +
         (c.fp64_contents_size() > 0) + (c.bytes_contents_size() > 0);
}

// One input tensor, located and checked against its shape (not yet against the model).
struct Located {
  const ModelInferRequest::InferInputTensor* tensor = nullptr;
  const std::string* raw = nullptr;  // null: typed contents
  DataType type = DataType::kFp32;
  std::vector<int64_t> shape;
  int64_t elements = 0;
};

// Finds the request's one input, which must be `name` of rank `rank` and a datatype in
// `types`, with 1 <= N <= max_rows, and checks its payload's size against its shape.
absl::StatusOr<Located> Locate(const ModelInferRequest& request, const char* name, int rank,
                               const std::vector<DataType>& types, int64_t max_rows,
                               const char* limit_flag) {
  if (request.inputs_size() != 1) {
    return Invalid("inputs", "the model takes one input, '", name, "'; got ",
                   request.inputs_size());
  }
  const ModelInferRequest::InferInputTensor& input = request.inputs(0);
  if (input.name() != name) {
    return Invalid("inputs", "unknown input '", input.name(), "' (the model takes '", name, "')");
  }
  Located located;
  located.tensor = &input;
  // Datatype.
  bool supported = true;
  if (input.datatype() == "UINT8") {
    located.type = DataType::kUint8;
  } else if (input.datatype() == "FP32") {
    located.type = DataType::kFp32;
  } else {
    supported = false;
  }
  bool allowed = false;
  for (DataType t : types) allowed = allowed || (supported && t == located.type);
  if (!allowed) {
    std::vector<std::string> names;
    for (DataType t : types) names.push_back(t == DataType::kUint8 ? "UINT8" : "FP32");
    return Invalid(name, "datatype '", input.datatype(), "' is not supported (",
                   absl::StrJoin(names, " or "), ")");
  }
  // Shape.
  located.shape.assign(input.shape().begin(), input.shape().end());
  const std::string shape_text = ShapeText(located.shape);
  if (static_cast<int>(located.shape.size()) != rank) {
    return Invalid(name, "shape ", shape_text, " has ", located.shape.size(),
                   " dimensions; expected ", rank);
  }
  int64_t elements = 1;
  for (int64_t d : located.shape) {
    if (d <= 0) return Invalid(name, "shape ", shape_text, ": every dimension must be positive");
    if (__builtin_mul_overflow(elements, d, &elements)) {
      return Invalid(name, "shape ", shape_text, ": element count overflows");
    }
  }
  int64_t bytes;
  if (__builtin_mul_overflow(elements, int64_t{sizeof(float)}, &bytes)) {
    return Invalid(name, "shape ", shape_text, ": element count overflows");
  }
  if (located.shape[0] > max_rows) {
    return Invalid(name, "shape ", shape_text, ": N ", located.shape[0], " exceeds ", limit_flag,
                   " ", max_rows);
  }
  located.elements = elements;
  // Payload against the shape.
  const int64_t element_bytes = located.type == DataType::kUint8 ? 1 : 4;
  if (request.raw_input_contents_size() > 0) {
    if (request.raw_input_contents_size() != request.inputs_size()) {
      return Invalid("raw_input_contents", request.raw_input_contents_size(), " entries for ",
                     request.inputs_size(), " input(s)");
    }
    if (input.has_contents() && FilledContentFields(input.contents()) > 0) {
      return Invalid(name, "set raw_input_contents or contents, not both");
    }
    located.raw = &request.raw_input_contents(0);
    const int64_t size = static_cast<int64_t>(located.raw->size());
    if (size != elements * element_bytes) {
      return Invalid(name, size, " bytes in raw_input_contents for ", input.datatype(), " shape ",
                     shape_text, ", which needs ", elements * element_bytes);
    }
    return located;
  }
  const InferTensorContents& contents = input.contents();
  const bool uint8 = located.type == DataType::kUint8;
  const int64_t values = uint8 ? contents.uint_contents_size() : contents.fp32_contents_size();
  const int others = FilledContentFields(contents) - (values > 0 ? 1 : 0);
  if (others > 0) {
    return Invalid(name, "contents holds values of another datatype than ", input.datatype(),
                   " (use ", uint8 ? "uint_contents" : "fp32_contents", ")");
  }
  if (values != elements) {
    return Invalid(name, values, " values in contents.", uint8 ? "uint_contents" : "fp32_contents",
                   " for shape ", shape_text, ", which needs ", elements);
  }
  return located;
}

// Element i of a located FP32 tensor.
float Fp32At(const Located& t, int64_t i) {
  return t.raw != nullptr ? LoadFloatLittleEndian(t.raw->data() + i * 4)
                          : t.tensor->contents().fp32_contents(static_cast<int>(i));
}

class InferImageTensor : public ImageTensor {
 public:
  explicit InferImageTensor(Located t) : t_(std::move(t)) {}

  int64_t images() const override { return t_.shape[0]; }

  absl::Status Check(int height, int width, int channels) const override {
    if (t_.shape[1] != height || t_.shape[2] != width || t_.shape[3] != channels) {
      return Invalid(kImagesTensor, "shape ", ShapeText(t_.shape),
                     " does not match the model's [-1, ", height, ", ", width, ", ", channels,
                     "] (NHWC)");
    }
    return absl::OkStatus();
  }

  absl::Status Decode(absl::Span<float> nchw) const override {
    if (static_cast<int64_t>(nchw.size()) != t_.elements) {
      return absl::InternalError("images: output size does not match the shape");
    }
    const int64_t n = t_.shape[0], plane = t_.shape[1] * t_.shape[2], c = t_.shape[3];
    const bool uint8 = t_.type == DataType::kUint8;
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t p = 0; p < plane; ++p) {
        for (int64_t ch = 0; ch < c; ++ch) {
          const int64_t src = (i * plane + p) * c + ch;
          float v;
          if (uint8) {
            uint32_t pixel = t_.raw != nullptr
                                 ? static_cast<unsigned char>((*t_.raw)[src])
                                 : t_.tensor->contents().uint_contents(static_cast<int>(src));
            if (pixel > 255) {
              return Invalid(kImagesTensor, "value ", pixel, " at index ", src,
                             " is outside 0..255 (UINT8)");
            }
            v = static_cast<float>(pixel) / 127.5f - 1.0f;
          } else {
            v = Fp32At(t_, src);
            if (!std::isfinite(v)) {
              return Invalid(kImagesTensor, "value ", v, " at index ", src,
                             " is not a finite number");
            }
            if (v < -1.0f || v > 1.0f) {
              return Invalid(kImagesTensor, "value ", v, " at index ", src, " is outside [-1, 1]");
            }
          }
          nchw[(i * c + ch) * plane + p] = v;
        }
      }
    }
    return absl::OkStatus();
  }

 private:
  const Located t_;
};

class InferNoiseTensor : public NoiseTensor {
 public:
  explicit InferNoiseTensor(Located t) : t_(std::move(t)) {}

  int64_t rows() const override { return t_.shape[0]; }

  absl::Status Check(int64_t noise_dim) const override {
    if (t_.shape[1] != noise_dim) {
      return Invalid(kNoiseTensor, "shape ", ShapeText(t_.shape),
                     " does not match the model's [-1, ", noise_dim, "]");
    }
    return absl::OkStatus();
  }

  absl::Status Decode(absl::Span<float> out) const override {
    if (static_cast<int64_t>(out.size()) != t_.elements) {
      return absl::InternalError("noise: output size does not match the shape");
    }
    for (int64_t i = 0; i < t_.elements; ++i) {
      const float v = Fp32At(t_, i);
      if (!std::isfinite(v)) {
        return Invalid(kNoiseTensor, "value ", v, " at index ", i, " is not a finite number");
      }
      out[i] = v;
    }
    return absl::OkStatus();
  }

 private:
  const Located t_;
};

}  // namespace

std::string ShapeText(absl::Span<const int64_t> shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

absl::StatusOr<std::unique_ptr<ImageTensor>> InferImages(const ModelInferRequest& request,
                                                         int64_t max_images,
                                                         const char* limit_flag) {
  absl::StatusOr<Located> located = Locate(
      request, kImagesTensor, 4, {DataType::kUint8, DataType::kFp32}, max_images, limit_flag);
  if (!located.ok()) return located.status();
  return std::make_unique<InferImageTensor>(*std::move(located));
}

absl::StatusOr<std::unique_ptr<NoiseTensor>> InferNoise(const ModelInferRequest& request,
                                                        int64_t max_rows, const char* limit_flag) {
  absl::StatusOr<Located> located =
      Locate(request, kNoiseTensor, 2, {DataType::kFp32}, max_rows, limit_flag);
  if (!located.ok()) return located.status();
  return std::make_unique<InferNoiseTensor>(*std::move(located));
}

absl::StatusOr<std::vector<std::string>> RequestedOutputs(
    const ModelInferRequest& request, const std::vector<std::string>& available) {
  if (request.outputs_size() == 0) return available;
  std::vector<std::string> names;
  std::set<std::string> seen;
  for (const auto& output : request.outputs()) {
    bool known = false;
    for (const std::string& name : available) known = known || name == output.name();
    if (!known) {
      return Invalid("outputs", "unknown output '", output.name(), "' (the model has '",
                     absl::StrJoin(available, "', '"), "')");
    }
    if (!seen.insert(output.name()).second) {
      return Invalid("outputs", "output '", output.name(), "' is requested twice");
    }
    names.push_back(output.name());
  }
  return names;
}

void AddFp32Output(const std::string& name, const std::vector<int64_t>& shape,
                   absl::Span<const float> values, inference::ModelInferResponse* response) {
  auto* output = response->add_outputs();
  output->set_name(name);
  output->set_datatype("FP32");
  for (int64_t d : shape) output->add_shape(d);
  std::string* raw = response->add_raw_output_contents();
  raw->resize(values.size() * 4);
  for (size_t i = 0; i < values.size(); ++i) StoreFloatLittleEndian(values[i], raw->data() + i * 4);
}

}  // namespace gan::server
