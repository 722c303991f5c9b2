#ifndef GAN_IO_PNG_H_
#define GAN_IO_PNG_H_

// PNG files through libpng, the project's one PNG library: a grid of images written atomically,
// and one image read into 8-bit pixels.

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace gan {

// `pixels` holds n images (n, H, W, C) with C = 1 (grey), 3 (RGB) or 4 (RGBA). They are laid out
// `columns` per row with a 2-pixel black border; the file is written atomically.
absl::Status WritePngGrid(const std::string& path, absl::Span<const uint8_t> pixels, int64_t n,
                          int height, int width, int channels, int columns);

// One decoded image.
struct PngImage {
  int height = 0;
  int width = 0;
  int channels = 0;             // as requested from ReadPng: 1, 2, 3 or 4
  std::vector<uint8_t> pixels;  // height x width x channels bytes, row-major (HWC)
};

// Bounds on what ReadPng accepts, checked against the PNG header before any pixel buffer exists.
struct PngLimits {
  uint32_t max_width = 1u << 15;
  uint32_t max_height = 1u << 15;
  uint64_t max_pixels = uint64_t{1} << 25;  // width x height
};

// Reads the PNG file `path` into 8-bit pixels with `channels` channels: 1 grey, 2 grey + alpha,
// 3 RGB, 4 RGBA. Every colour type, bit depth and interlacing is accepted and normalised with
// libpng's transforms: a palette is expanded, 1/2/4-bit grey scaled to 8 bits (1 -> 255),
// 16-bit samples keep their high byte, a tRNS chunk becomes alpha, grey is replicated to RGB,
// alpha is dropped when not asked for (not composited) and set to 255 when the file has none.
// Colour becomes grey as stb_image computes it, (77 R + 150 G + 29 B) >> 8 (on 16-bit samples
// before their high byte is taken), so pixels equal stbi_load(path, ..., channels)'s. Gamma and
// colour-profile chunks do not change the values.
//
// Memory: the header is validated against `limits` first. A non-interlaced image's buffer grows
// with the rows actually decoded, so a small file claiming large dimensions fails early; an
// interlaced one is allocated whole, at most max_pixels x 8 bytes.
//
// Errors (every message starts with `path`):
//   INVALID_ARGUMENT  `channels` outside 1..4; not a PNG (no PNG signature); truncated or corrupt
//                     data (libpng's reason); width or height 0 or above the limits.
//   NOT_FOUND / PERMISSION_DENIED / other errno codes  the file cannot be opened or read.
absl::StatusOr<PngImage> ReadPng(const std::string& path, int channels,
                                 const PngLimits& limits = {});

}  // namespace gan

#endif  // GAN_IO_PNG_H_
