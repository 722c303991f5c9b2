// PNG decoding as ganctl uses it (ReadPng on an in-memory file), for every requested channel count
// 1..4, with limits lowered to 1024x1024 (1 Mi pixels) so that one input stays fast.

#include <cstddef>
#include <cstdint>

#include "io/png.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  gan::fuzz::MemoryFile file(data, size);
  gan::PngLimits limits;
  limits.max_width = 1024;
  limits.max_height = 1024;
  limits.max_pixels = 1u << 20;
  for (int channels = 1; channels <= 4; ++channels) {
    absl::StatusOr<gan::PngImage> image = gan::ReadPng(file.path(), channels, limits);
    if (!image.ok()) return 0;  // the file is the same for every channel count
    if (image->channels != channels || image->height <= 0 || image->width <= 0 ||
        image->pixels.size() != static_cast<size_t>(image->height) * image->width * channels) {
      __builtin_trap();
    }
  }
  return 0;
}
