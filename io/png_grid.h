#ifndef GAN_IO_PNG_GRID_H_
#define GAN_IO_PNG_GRID_H_

// Writes images as one PNG grid through libpng.

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/types/span.h"

namespace gan {

// `pixels` holds n images (n, H, W, C) with C = 1 (grey), 3 (RGB) or 4 (RGBA). They are laid out
// `columns` per row with a 2-pixel black border; the file is written atomically.
absl::Status WritePngGrid(const std::string& path, absl::Span<const uint8_t> pixels, int64_t n,
                          int height, int width, int channels, int columns);

}  // namespace gan

#endif  // GAN_IO_PNG_GRID_H_
