#ifndef GAN_CLIENT_IMAGE_FILES_H_
#define GAN_CLIENT_IMAGE_FILES_H_

// The image files `ganctl score` sends: PNG, IDX and raw NHWC bytes.

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace gan::ganctl {

// Images in command-line order, ready for a ScoreRequest.
struct LoadedImages {
  // One per image: the file name for a PNG, "<file>[<i>]" for image i of an IDX or raw file.
  std::vector<std::string> names;
  std::vector<uint8_t> pixels;     // names.size() x height x width x channels bytes (NHWC)
  std::vector<size_t> file_index;  // one per image: which of the files it came from
};

// Loads `files` as images of height x width x channels uint8 pixels. By file name:
//   *.png, *.PNG  one image of any size and PNG format, read with io/png.h as `channels` channels
//                 (colour to grey by luminance) and resized to width x height with
//                 stb_image_resize's default filter;
//   *.raw         N x height x width x channels bytes, N from the file size;
//   anything else an IDX image file (raw or gzip) that must be N x height x width, one channel.
// With max_per_file > 0, only the first max_per_file images of each IDX or raw file are kept.
// Requires height, width and channels >= 1 (checked by the caller). Errors name the file:
// INVALID_ARGUMENT when a file's size or shape does not fit, otherwise ReadPng's or
// ReadIdxFile's status.
absl::StatusOr<LoadedImages> LoadImages(const std::vector<std::string>& files, int height,
                                        int width, int channels, int64_t max_per_file = 0);

}  // namespace gan::ganctl

#endif  // GAN_CLIENT_IMAGE_FILES_H_
