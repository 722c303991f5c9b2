#include "io/png.h"

#include <png.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "io/atomic_file.h"

namespace gan {
namespace {

void AppendToString(png_structp png, png_bytep data, png_size_t length) {
  static_cast<std::string*>(png_get_io_ptr(png))->append(reinterpret_cast<char*>(data), length);
}

constexpr size_t kSignatureBytes = 8;

// What ReadPng shares with libpng's callbacks. Trivially destructible, like every object that a
// libpng error can jump over: libpng reports errors by longjmp, which must skip no destructor.
struct ReadState {
  std::FILE* file = nullptr;
  int read_errno = 0;                             // a failed fread's errno; 0 otherwise
  absl::StatusCode code = absl::StatusCode::kOk;  // set together with `message`
  char message[256] = {};                         // why decoding failed
};

void SetError(ReadState* state, absl::StatusCode code, const char* message) {
  state->code = code;
  std::snprintf(state->message, sizeof(state->message), "%s", message);
}

// libpng's error callback: records the reason and jumps back to Decode's setjmp.
[[noreturn]] void OnPngError(png_structp png, png_const_charp message) {
  auto* state = static_cast<ReadState*>(png_get_error_ptr(png));
  if (state->code == absl::StatusCode::kOk) {
    SetError(state, absl::StatusCode::kInvalidArgument, message);
  }
  png_longjmp(png, 1);
}

// Warnings are about ancillary data that libpng skipped; the pixels are still right.
void OnPngWarning(png_structp, png_const_charp) {}

void ReadFromFile(png_structp png, png_bytep data, size_t length) {
  auto* state = static_cast<ReadState*>(png_get_io_ptr(png));
  if (std::fread(data, 1, length, state->file) == length) return;
  if (std::ferror(state->file)) {
    state->read_errno = errno;
    png_error(png, "read failed");
  }
  png_error(png, "file is truncated");
}

// The shape of the samples libpng delivers once ReadPng's transforms are set.
struct Decoded {
  uint32_t width = 0;
  uint32_t height = 0;
  int png_channels = 0;         // samples per pixel in the decoded rows
  int bytes_per_sample = 1;     // 2 only when colour is kept at 16 bits to become grey
  bool colour_to_grey = false;  // rows are RGB(A), still to be converted to grey (+ alpha)
};

// Runs every libpng call of ReadPng: sets the transforms that turn any PNG into `channels` 8-bit
// samples (16-bit RGB(A) when colour must still become grey) and decodes into `raw`, row-major.
// Returns false with state->code and state->message set when libpng or `limits` refuse the file.
// `raw` and `rows` belong to the caller because a longjmp out of libpng lands here and must not
// skip their destructors.
bool Decode(png_structp png, png_infop info, ReadState* state, int channels,
            const PngLimits& limits, Decoded* decoded, std::vector<uint8_t>* raw,
            std::vector<png_bytep>* rows) {
  if (setjmp(png_jmpbuf(png))) return false;
  png_set_read_fn(png, state, ReadFromFile);
  png_set_sig_bytes(png, static_cast<int>(kSignatureBytes));
  // libpng's own default caps width and height at 10^6; ReadPng applies `limits` itself below,
  // after png_read_info (which reads the chunks before the image data and allocates nothing
  // that depends on the dimensions) and before any row buffer exists.
  png_set_user_limits(png, PNG_UINT_31_MAX, PNG_UINT_31_MAX);
  // libpng buffers some ancillary chunks whole at the length their header claims (up to
  // 2^31 - 1 bytes, whatever the file holds; png_set_chunk_malloc_max does not stop it for these).
  // The pixels never depend on them, so they are skipped unread.
  static constexpr png_byte kSkipped[] = "tEXt\0zTXt\0iTXt\0sPLT\0eXIf\0pCAL\0sCAL\0";
  png_set_keep_unknown_chunks(png, PNG_HANDLE_CHUNK_NEVER, kSkipped, 7);
  png_set_chunk_malloc_max(png, 8u << 20);
  png_set_chunk_cache_max(png, 1000);
  png_read_info(png, info);

  png_uint_32 width = 0, height = 0;
  int bit_depth = 0, color_type = 0, interlace = 0;
  png_get_IHDR(png, info, &width, &height, &bit_depth, &color_type, &interlace, nullptr, nullptr);
  if (width > limits.max_width || height > limits.max_height ||
      uint64_t{width} * height > limits.max_pixels) {
    char message[sizeof(state->message)];
    std::snprintf(message, sizeof(message),
                  "%ux%u pixels exceed the limits (width at most %u, height at most %u, at most "
                  "%llu pixels)",
                  static_cast<unsigned>(width), static_cast<unsigned>(height),
                  static_cast<unsigned>(limits.max_width), static_cast<unsigned>(limits.max_height),
                  static_cast<unsigned long long>(limits.max_pixels));
    SetError(state, absl::StatusCode::kInvalidArgument, message);
    return false;
  }

  const bool colour = (color_type & PNG_COLOR_MASK_COLOR) != 0;  // RGB, RGBA or palette
  const bool want_colour = channels >= 3;
  const bool want_alpha = channels == 2 || channels == 4;
  const bool has_trns = png_get_valid(png, info, PNG_INFO_tRNS) != 0;
  decoded->colour_to_grey = colour && !want_colour;
  if (color_type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
  if (color_type == PNG_COLOR_TYPE_GRAY && bit_depth < 8) png_set_expand_gray_1_2_4_to_8(png);
  if (want_alpha && has_trns) png_set_tRNS_to_alpha(png);
  // stb_image computes grey from 16-bit colour before dropping the low byte; so does ReadPng.
  if (bit_depth == 16 && !decoded->colour_to_grey) png_set_strip_16(png);
  if (!want_alpha) {
    png_set_strip_alpha(png);
  } else if ((color_type & PNG_COLOR_MASK_ALPHA) == 0 && !has_trns) {
    png_set_add_alpha(png, 0xffff, PNG_FILLER_AFTER);  // opaque; the low byte at 8 bits
  }
  if (want_colour && !colour) png_set_gray_to_rgb(png);
  const int passes = png_set_interlace_handling(png);
  png_read_update_info(png, info);

  decoded->width = width;
  decoded->height = height;
  decoded->png_channels = decoded->colour_to_grey ? (want_alpha ? 4 : 3) : channels;
  decoded->bytes_per_sample = decoded->colour_to_grey && bit_depth == 16 ? 2 : 1;
  const size_t row_bytes = png_get_rowbytes(png, info);
  if (png_get_channels(png, info) != decoded->png_channels ||
      png_get_bit_depth(png, info) != 8 * decoded->bytes_per_sample ||
      row_bytes != size_t{width} * decoded->png_channels * decoded->bytes_per_sample) {
    SetError(state, absl::StatusCode::kInternal,
             "libpng's transforms did not give the expected sample layout");
    return false;
  }

  if (passes == 1) {
    // Grow with the rows actually decoded: a truncated file never gets its claimed size.
    for (uint32_t y = 0; y < height; ++y) {
      raw->resize((size_t{y} + 1) * row_bytes);
      png_read_row(png, raw->data() + size_t{y} * row_bytes, nullptr);
    }
  } else {
    // Interlaced passes revisit every row: the whole image (bounded by `limits`) up front.
    raw->resize(size_t{height} * row_bytes);
    rows->resize(height);
    for (uint32_t y = 0; y < height; ++y) (*rows)[y] = raw->data() + size_t{y} * row_bytes;
    png_read_image(png, rows->data());
  }
  png_read_end(png, nullptr);  // reads to IEND, checking the remaining chunks' CRCs
  return true;
}

// Converts RGB(A) samples in place to grey (+ alpha) as stb_image does:
// y = (77 r + 150 g + 29 b) >> 8, at the samples' own bit depth, then the high byte is kept.
void ColourToGrey(const Decoded& decoded, bool alpha, std::vector<uint8_t>* pixels) {
  const size_t n = size_t{decoded.width} * decoded.height;
  const int in = decoded.png_channels;
  const int out = alpha ? 2 : 1;
  uint8_t* p = pixels->data();
  if (decoded.bytes_per_sample == 1) {
    for (size_t i = 0; i < n; ++i) {
      const uint8_t* s = p + i * in;
      const uint8_t y = static_cast<uint8_t>((77 * s[0] + 150 * s[1] + 29 * s[2]) >> 8);
      const uint8_t a = alpha ? s[3] : 0;
      p[i * out] = y;
      if (alpha) p[i * out + 1] = a;
    }
  } else {
    // 16-bit big-endian samples.
    for (size_t i = 0; i < n; ++i) {
      const uint8_t* s = p + i * in * 2;
      const uint32_t r = (uint32_t{s[0]} << 8) | s[1];
      const uint32_t g = (uint32_t{s[2]} << 8) | s[3];
      const uint32_t b = (uint32_t{s[4]} << 8) | s[5];
      const uint32_t y = (77 * r + 150 * g + 29 * b) >> 8;
      const uint8_t a = alpha ? s[6] : 0;
      p[i * out] = static_cast<uint8_t>(y >> 8);
      if (alpha) p[i * out + 1] = a;
    }
  }
  pixels->resize(n * out);
}

struct FileCloser {
  void operator()(std::FILE* file) const { std::fclose(file); }
};

// Owns libpng's read structs.
struct PngReadStructs {
  png_structp png = nullptr;
  png_infop info = nullptr;
  ~PngReadStructs() { png_destroy_read_struct(&png, &info, nullptr); }
};

}  // namespace

absl::Status WritePngGrid(const std::string& path, absl::Span<const uint8_t> pixels, int64_t n,
                          int height, int width, int channels, int columns) {
  if (n < 1 || columns < 1 || height < 1 || width < 1 ||
      (channels != 1 && channels != 3 && channels != 4) ||
      static_cast<int64_t>(pixels.size()) != n * height * width * channels) {
    return absl::InvalidArgumentError("WritePngGrid: pixels do not match n x H x W x C");
  }
  constexpr int kBorder = 2;
  const int64_t cols = std::min<int64_t>(columns, n);
  const int64_t rows = (n + cols - 1) / cols;
  const int64_t grid_w = cols * (width + kBorder) + kBorder;
  const int64_t grid_h = rows * (height + kBorder) + kBorder;
  std::vector<uint8_t> grid(grid_w * grid_h * channels, 0);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t x0 = kBorder + (i % cols) * (width + kBorder);
    const int64_t y0 = kBorder + (i / cols) * (height + kBorder);
    for (int y = 0; y < height; ++y) {
      std::copy_n(pixels.data() + ((i * height + y) * width) * channels, width * channels,
                  grid.data() + ((y0 + y) * grid_w + x0) * channels);
    }
  }

  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png != nullptr ? png_create_info_struct(png) : nullptr;
  if (info == nullptr) {
    png_destroy_write_struct(&png, nullptr);
    return absl::InternalError("libpng could not be initialized");
  }
  std::string encoded;
  std::vector<png_bytep> rows_ptrs(grid_h);
  for (int64_t y = 0; y < grid_h; ++y) rows_ptrs[y] = grid.data() + y * grid_w * channels;
  if (setjmp(png_jmpbuf(png))) {  // libpng reports errors by longjmp
    png_destroy_write_struct(&png, &info);
    return absl::InternalError(absl::StrCat("libpng failed to encode ", path));
  }
  png_set_write_fn(png, &encoded, AppendToString, nullptr);
  const int color = channels == 1   ? PNG_COLOR_TYPE_GRAY
                    : channels == 3 ? PNG_COLOR_TYPE_RGB
                                    : PNG_COLOR_TYPE_RGBA;
  png_set_IHDR(png, info, static_cast<png_uint_32>(grid_w), static_cast<png_uint_32>(grid_h), 8,
               color, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  png_write_image(png, rows_ptrs.data());
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  return WriteFileAtomically(path, encoded);
}

absl::StatusOr<PngImage> ReadPng(const std::string& path, int channels, const PngLimits& limits) {
  if (channels < 1 || channels > 4) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": cannot read a PNG as ", channels, " channels (1 to 4)"));
  }
  errno = 0;
  std::unique_ptr<std::FILE, FileCloser> file(std::fopen(path.c_str(), "rb"));
  if (file == nullptr) return absl::ErrnoToStatus(errno, absl::StrCat(path, ": cannot open"));

  png_byte signature[kSignatureBytes];
  const size_t got = std::fread(signature, 1, kSignatureBytes, file.get());
  if (got < kSignatureBytes && std::ferror(file.get())) {
    return absl::ErrnoToStatus(errno, absl::StrCat(path, ": cannot read"));
  }
  if (got < kSignatureBytes || png_sig_cmp(signature, 0, kSignatureBytes) != 0) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": not a PNG file (no PNG signature)"));
  }

  ReadState state;
  state.file = file.get();
  PngReadStructs structs;
  structs.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &state, OnPngError, OnPngWarning);
  if (structs.png != nullptr) structs.info = png_create_info_struct(structs.png);
  if (structs.info == nullptr) {
    return absl::InternalError(absl::StrCat(path, ": libpng could not be initialized"));
  }

  Decoded decoded;
  std::vector<uint8_t> pixels;
  std::vector<png_bytep> rows;
  if (!Decode(structs.png, structs.info, &state, channels, limits, &decoded, &pixels, &rows)) {
    if (state.read_errno != 0) {
      return absl::ErrnoToStatus(state.read_errno, absl::StrCat(path, ": cannot read"));
    }
    if (state.code == absl::StatusCode::kInternal) {
      return absl::InternalError(absl::StrCat(path, ": ", state.message));
    }
    return absl::InvalidArgumentError(absl::StrCat(path, ": not a valid PNG: ", state.message));
  }
  if (decoded.colour_to_grey) ColourToGrey(decoded, channels == 2, &pixels);

  PngImage image;
  image.height = static_cast<int>(decoded.height);
  image.width = static_cast<int>(decoded.width);
  image.channels = channels;
  image.pixels = std::move(pixels);
  return image;
}

}  // namespace gan
