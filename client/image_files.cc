#include "client/image_files.h"

#include <cerrno>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "io/idx_reader.h"
#include "io/png.h"
#include "io/status_macros.h"
#include "stb/stb_image_resize.h"

namespace gan::ganctl {
namespace {

// Appends one PNG, converted and resized to height x width x channels.
absl::Status AppendPng(const std::string& file, int height, int width, int channels,
                       LoadedImages* out) {
  GAN_ASSIGN_OR_RETURN(const PngImage png, ReadPng(file, channels));
  std::vector<uint8_t> resized(static_cast<size_t>(height) * width * channels);
  if (stbir_resize_uint8(png.pixels.data(), png.width, png.height, 0, resized.data(), width, height,
                         0, channels) == 0) {
    return absl::InternalError(
        absl::StrCat(file, ": could not be resized to ", width, "x", height));
  }
  out->names.push_back(file);
  out->pixels.insert(out->pixels.end(), resized.begin(), resized.end());
  return absl::OkStatus();
}

// How many of a file's `available` images to keep: all when max_images is 0.
size_t Kept(size_t available, int64_t max_images) {
  return max_images > 0 && static_cast<size_t>(max_images) < available
             ? static_cast<size_t>(max_images)
             : available;
}

struct FileCloser {
  void operator()(std::FILE* file) const { std::fclose(file); }
};

// Appends every image of a raw file: whole height x width x channels uint8 images, NHWC.
absl::Status AppendRaw(const std::string& file, int height, int width, int channels,
                       int64_t max_images, LoadedImages* out) {
  std::unique_ptr<std::FILE, FileCloser> f(std::fopen(file.c_str(), "rb"));
  if (f == nullptr) {
    return absl::Status(absl::ErrnoToStatusCode(errno), absl::StrCat(file, ": cannot be read"));
  }
  std::string bytes;
  char buffer[65536];
  for (size_t n; (n = std::fread(buffer, 1, sizeof(buffer), f.get())) > 0;) {
    bytes.append(buffer, n);
  }
  if (std::ferror(f.get())) {
    return absl::Status(absl::ErrnoToStatusCode(errno), absl::StrCat(file, ": cannot be read"));
  }
  const size_t image = static_cast<size_t>(height) * width * channels;
  if (bytes.empty() || bytes.size() % image != 0) {
    return absl::InvalidArgumentError(absl::StrCat(file, ": ", bytes.size(),
                                                   " bytes is not a whole number of ", height, "x",
                                                   width, "x", channels, " uint8 images"));
  }
  const size_t count = Kept(bytes.size() / image, max_images);
  for (size_t i = 0; i < count; ++i) {
    out->names.push_back(absl::StrCat(file, "[", i, "]"));
  }
  out->pixels.insert(out->pixels.end(), bytes.begin(), bytes.begin() + count * image);
  return absl::OkStatus();
}

// Appends every image of an IDX file, which must already be N x height x width, one channel.
absl::Status AppendIdx(const std::string& file, int height, int width, int channels,
                       int64_t max_images, LoadedImages* out) {
  GAN_ASSIGN_OR_RETURN(const IdxArray idx, ReadIdxFile(file));
  if (idx.dims.size() != 3 || idx.dims[1] != height || idx.dims[2] != width || channels != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(file, ": IDX images must be N x ", height, " x ", width, " (one channel)"));
  }
  const size_t count = Kept(static_cast<size_t>(idx.dims[0]), max_images);
  for (size_t i = 0; i < count; ++i) {
    out->names.push_back(absl::StrCat(file, "[", i, "]"));
  }
  const size_t image = static_cast<size_t>(height) * width;
  out->pixels.insert(out->pixels.end(), idx.data.begin(), idx.data.begin() + count * image);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<LoadedImages> LoadImages(const std::vector<std::string>& files, int height,
                                        int width, int channels, int64_t max_per_file) {
  LoadedImages images;
  for (size_t f = 0; f < files.size(); ++f) {
    const std::string& file = files[f];
    if (absl::EndsWith(file, ".png") || absl::EndsWith(file, ".PNG")) {
      GAN_RETURN_IF_ERROR(AppendPng(file, height, width, channels, &images));
    } else if (absl::EndsWith(file, ".raw")) {
      GAN_RETURN_IF_ERROR(AppendRaw(file, height, width, channels, max_per_file, &images));
    } else {
      GAN_RETURN_IF_ERROR(AppendIdx(file, height, width, channels, max_per_file, &images));
    }
    images.file_index.resize(images.names.size(), f);
  }
  return images;
}

}  // namespace gan::ganctl
