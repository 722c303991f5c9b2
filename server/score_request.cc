#include "server/score_request.h"

#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "io/little_endian.h"
#include "io/status_macros.h"

namespace gan::server {
namespace {

template <typename... Parts>
absl::Status InvalidArgument(absl::string_view field, const Parts&... parts) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", parts...));
}

// "(2, 32, 32, 1)".
std::string ShapeString(absl::Span<const int64_t> shape) {
  return absl::StrCat("(", absl::StrJoin(shape, ", "), ")");
}

}  // namespace

absl::StatusOr<int64_t> CheckImageShape(absl::Span<const int64_t> shape, int64_t max_images) {
  if (shape.size() != 4) {
    return InvalidArgument("shape", "expected 4 dimensions (N, H, W, C), got ", shape.size());
  }
  for (int64_t d : shape) {
    if (d <= 0) {
      return InvalidArgument("shape", "every dimension must be positive, got ", ShapeString(shape));
    }
  }
  int64_t elements = 1;
  for (int64_t d : shape) {
    if (__builtin_mul_overflow(elements, d, &elements)) {
      return InvalidArgument("shape", "element count overflows");
    }
  }
  int64_t float_bytes;
  if (__builtin_mul_overflow(elements, int64_t{sizeof(float)}, &float_bytes)) {
    return InvalidArgument("shape", "element count overflows");
  }
  if (shape[0] > max_images) {
    return InvalidArgument("shape", "N ", shape[0], " exceeds --max_score_batch ", max_images);
  }
  return elements;
}

namespace {

// gan.v1.ScoreRequest's pixels: uint8_pixels or float_pixels, NHWC.
class ScoreRequestTensor : public ImageTensor {
 public:
  ScoreRequestTensor(const gan::v1::ScoreRequest& request, int64_t elements)
      : request_(request),
        shape_(request.shape().data(), request.shape().size()),
        elements_(elements) {}

  int64_t images() const override { return shape_[0]; }

  absl::Status Check(int height, int width, int channels) const override {
    if (shape_[1] != height || shape_[2] != width || shape_[3] != channels) {
      return InvalidArgument("shape", "expected (N, ", height, ", ", width, ", ", channels,
                             "), got ", ShapeString(shape_));
    }
    // CheckImageShape made sure elements * 4 fits.
    if (uint8()) {
      const int64_t bytes = static_cast<int64_t>(request_.uint8_pixels().size());
      if (bytes != elements_) {
        return InvalidArgument("uint8_pixels", bytes, " bytes for shape ", ShapeString(shape_),
                               " which needs ", elements_);
      }
    } else {
      const int64_t bytes = static_cast<int64_t>(request_.float_pixels().size());
      if (bytes != elements_ * 4) {
        return InvalidArgument("float_pixels", bytes, " bytes for shape ", ShapeString(shape_),
                               " which needs ", elements_ * 4, " (4 per float32 value)");
      }
    }
    return absl::OkStatus();
  }

  absl::Status Decode(absl::Span<float> nchw) const override {
    if (static_cast<int64_t>(nchw.size()) != elements_) {
      return absl::InternalError("DecodeScoreImages: output size does not match the shape");
    }
    const bool is_uint8 = uint8();
    const char* data = is_uint8 ? request_.uint8_pixels().data() : request_.float_pixels().data();
    if (!is_uint8) {
      for (int64_t i = 0; i < elements_; ++i) {
        const float v = LoadFloatLittleEndian(data + i * 4);
        if (!std::isfinite(v)) {
          return InvalidArgument("float_pixels", "value ", v, " at index ", i,
                                 " is not a finite number");
        }
        if (v < -1.0f || v > 1.0f) {
          return InvalidArgument("float_pixels", "value ", v, " at index ", i,
                                 " is outside [-1, 1]");
        }
      }
    }
    // NHWC payload -> NCHW floats.
    const int64_t n = shape_[0], h = shape_[1], w = shape_[2], c = shape_[3];
    const int64_t plane = h * w;
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t p = 0; p < plane; ++p) {
        for (int64_t ch = 0; ch < c; ++ch) {
          const int64_t src = (i * plane + p) * c + ch;
          nchw[(i * c + ch) * plane + p] =
              is_uint8 ? static_cast<unsigned char>(data[src]) / 127.5f - 1.0f
                       : LoadFloatLittleEndian(data + src * 4);
        }
      }
    }
    return absl::OkStatus();
  }

 private:
  bool uint8() const { return request_.pixels_case() == gan::v1::ScoreRequest::kUint8Pixels; }

  const gan::v1::ScoreRequest& request_;
  const absl::Span<const int64_t> shape_;
  const int64_t elements_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<ImageTensor>> ScoreRequestImages(
    const gan::v1::ScoreRequest& request, int64_t max_images) {
  const absl::Span<const int64_t> shape(request.shape().data(), request.shape().size());
  GAN_ASSIGN_OR_RETURN(const int64_t elements, CheckImageShape(shape, max_images));
  if (request.pixels_case() == gan::v1::ScoreRequest::PIXELS_NOT_SET) {
    return InvalidArgument("pixels", "set uint8_pixels or float_pixels");
  }
  return std::make_unique<ScoreRequestTensor>(request, elements);
}

absl::StatusOr<std::vector<float>> DecodeScoreImages(const gan::v1::ScoreRequest& request,
                                                     int64_t max_images, int height, int width,
                                                     int channels) {
  GAN_ASSIGN_OR_RETURN(std::unique_ptr<ImageTensor> tensor,
                       ScoreRequestImages(request, max_images));
  GAN_RETURN_IF_ERROR(tensor->Check(height, width, channels));
  std::vector<float> images(static_cast<size_t>(tensor->images()) * height * width * channels);
  GAN_RETURN_IF_ERROR(tensor->Decode(absl::MakeSpan(images)));
  return images;
}

}  // namespace gan::server
