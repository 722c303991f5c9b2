#include "io/png_grid.h"

#include <png.h>

#include <algorithm>
#include <vector>

#include "absl/strings/str_cat.h"
#include "io/atomic_file.h"

namespace gan {
namespace {

void AppendToString(png_structp png, png_bytep data, png_size_t length) {
  static_cast<std::string*>(png_get_io_ptr(png))->append(reinterpret_cast<char*>(data), length);
}

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
  const int color = channels == 1 ? PNG_COLOR_TYPE_GRAY
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

}  // namespace gan
