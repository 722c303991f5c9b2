// Tests of io/png.h: WritePngGrid's output read back by ReadPng; ReadPng on every PNG colour
// type and bit depth (written here with libpng) against stb_image, whose pixels ganctl scored
// before ReadPng replaced it; and the refusals: not a PNG, truncated, corrupt, hostile headers.

#include "io/png.h"

#include <png.h>
#include <zlib.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <new>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/test_util.h"

// stb_image, only as the reference for the pixels ganctl got before it read PNGs with libpng.
#define STB_IMAGE_IMPLEMENTATION
#define STBI_ONLY_PNG
#include "stb/stb_image.h"

// Records the largest single allocation so a test can prove that ReadPng never sizes a buffer
// from an unverified header. Replaces the global operator new for this test binary only.
static std::atomic<size_t> g_largest_allocation{0};

// GCC cannot see that this new and delete pair up (it reports malloc/free as mismatched).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

void* operator new(size_t size) {
  size_t largest = g_largest_allocation.load();
  while (size > largest && !g_largest_allocation.compare_exchange_weak(largest, size)) {
  }
  void* p = std::malloc(size == 0 ? 1 : size);
  if (p == nullptr) std::abort();
  return p;
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }
#pragma GCC diagnostic pop

namespace gan {
namespace {

using ::gan::testing::IsOk;
using ::gan::testing::MakeTempDir;
using ::gan::testing::StatusIs;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::StartsWith;

// A PNG to encode with libpng: rows are packed as libpng takes them (16-bit samples big-endian).
struct PngSpec {
  int width = 0;
  int height = 0;
  int bit_depth = 8;
  int color_type = PNG_COLOR_TYPE_GRAY;
  bool interlaced = false;
  std::vector<png_color> palette;
  std::vector<uint8_t> palette_alpha;       // tRNS of a palette image
  std::optional<png_color_16> transparent;  // tRNS of a grey or RGB image
  std::vector<uint8_t> rows;
};

int SamplesPerPixel(int color_type) {
  switch (color_type) {
    case PNG_COLOR_TYPE_GRAY:
    case PNG_COLOR_TYPE_PALETTE:
      return 1;
    case PNG_COLOR_TYPE_GRAY_ALPHA:
      return 2;
    case PNG_COLOR_TYPE_RGB:
      return 3;
    default:
      return 4;
  }
}

size_t RowBytes(const PngSpec& spec) {
  return (static_cast<size_t>(spec.width) * SamplesPerPixel(spec.color_type) * spec.bit_depth + 7) /
         8;
}

void AppendBytes(png_structp png, png_bytep data, png_size_t length) {
  static_cast<std::string*>(png_get_io_ptr(png))->append(reinterpret_cast<char*>(data), length);
}

// Encodes `spec` with libpng; empty on failure.
std::string Encode(const PngSpec& spec) {
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png_create_info_struct(png);
  std::string out;
  std::vector<png_bytep> rows(spec.height);
  for (int y = 0; y < spec.height; ++y) {
    rows[y] = const_cast<png_bytep>(spec.rows.data()) + y * RowBytes(spec);
  }
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    return "";
  }
  png_set_write_fn(png, &out, AppendBytes, nullptr);
  png_set_IHDR(png, info, spec.width, spec.height, spec.bit_depth, spec.color_type,
               spec.interlaced ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  if (!spec.palette.empty()) {
    png_set_PLTE(png, info, spec.palette.data(), static_cast<int>(spec.palette.size()));
  }
  if (!spec.palette_alpha.empty()) {
    png_set_tRNS(png, info, spec.palette_alpha.data(), static_cast<int>(spec.palette_alpha.size()),
                 nullptr);
  }
  if (spec.transparent.has_value()) {
    png_color_16 colour = *spec.transparent;
    png_set_tRNS(png, info, nullptr, 0, &colour);
  }
  png_write_info(png, info);
  png_write_image(png, rows.data());
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  return out;
}

// A spec with deterministic pseudo-random rows (every sample value in range for the bit depth).
PngSpec RandomSpec(int width, int height, int bit_depth, int color_type, uint32_t seed) {
  PngSpec spec;
  spec.width = width;
  spec.height = height;
  spec.bit_depth = bit_depth;
  spec.color_type = color_type;
  spec.rows.resize(RowBytes(spec) * height);
  uint32_t state = seed;
  for (uint8_t& byte : spec.rows) {
    state = state * 1664525u + 1013904223u;
    byte = static_cast<uint8_t>(state >> 24);
  }
  if (color_type == PNG_COLOR_TYPE_PALETTE) {
    // Every index the bit depth can hold must exist in the palette.
    for (int i = 0; i < (1 << bit_depth); ++i) {
      spec.palette.push_back({static_cast<png_byte>(i * 37), static_cast<png_byte>(255 - i * 11),
                              static_cast<png_byte>(i * 101)});
    }
  }
  return spec;
}

std::string WriteTemp(const std::string& name, const std::string& bytes) {
  static const std::string dir = MakeTempDir("png_test");
  const std::string path = absl::StrCat(dir, "/", name);
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  return path;
}

// What stb_image decodes from `bytes` as `channels` channels.
std::vector<uint8_t> StbPixels(const std::string& bytes, int channels, int* width, int* height) {
  int file_channels = 0;
  stbi_uc* data = stbi_load_from_memory(reinterpret_cast<const stbi_uc*>(bytes.data()),
                                        static_cast<int>(bytes.size()), width, height,
                                        &file_channels, channels);
  if (data == nullptr) return {};
  std::vector<uint8_t> pixels(data, data + static_cast<size_t>(*width) * *height * channels);
  stbi_image_free(data);
  return pixels;
}

// --- WritePngGrid read back ---------------------------------------------------------------

TEST(PngTest, GridOfGreyImagesReadsBack) {
  constexpr int kN = 3, kH = 4, kW = 5, kColumns = 2;
  std::vector<uint8_t> pixels(kN * kH * kW);
  for (size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<uint8_t>(10 + i);
  const std::string path = WriteTemp("grid.png", "");
  ASSERT_THAT(WritePngGrid(path, pixels, kN, kH, kW, 1, kColumns), IsOk());

  GAN_ASSERT_OK_AND_ASSIGN(const PngImage image, ReadPng(path, 1));
  // 2 columns, 2 rows of 5x4 images, with 2-pixel borders.
  EXPECT_EQ(image.width, 2 * (kW + 2) + 2);
  EXPECT_EQ(image.height, 2 * (kH + 2) + 2);
  EXPECT_EQ(image.channels, 1);
  ASSERT_EQ(image.pixels.size(), static_cast<size_t>(image.width * image.height));
  for (int i = 0; i < kN; ++i) {
    const int x0 = 2 + (i % kColumns) * (kW + 2);
    const int y0 = 2 + (i / kColumns) * (kH + 2);
    for (int y = 0; y < kH; ++y) {
      for (int x = 0; x < kW; ++x) {
        EXPECT_EQ(image.pixels[(y0 + y) * image.width + x0 + x], pixels[(i * kH + y) * kW + x])
            << "image " << i << " at " << x << "," << y;
      }
    }
  }
  EXPECT_EQ(image.pixels[0], 0);  // border
  // The fourth cell is empty: black.
  EXPECT_EQ(image.pixels[(2 + kH + 2) * image.width + 2 + kW + 2], 0);
}

TEST(PngTest, GridOfRgbAndRgbaImagesReadsBack) {
  for (int channels : {3, 4}) {
    SCOPED_TRACE(channels);
    std::vector<uint8_t> pixels(2 * 3 * channels);
    for (size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<uint8_t>(200 - 7 * i);
    const std::string path = WriteTemp(absl::StrCat("grid", channels, ".png"), "");
    ASSERT_THAT(WritePngGrid(path, pixels, 1, 2, 3, channels, 1), IsOk());
    GAN_ASSERT_OK_AND_ASSIGN(const PngImage image, ReadPng(path, channels));
    ASSERT_EQ(image.width, 3 + 4);
    ASSERT_EQ(image.height, 2 + 4);
    for (int y = 0; y < 2; ++y) {
      for (int x = 0; x < 3; ++x) {
        for (int c = 0; c < channels; ++c) {
          EXPECT_EQ(image.pixels[((2 + y) * image.width + 2 + x) * channels + c],
                    pixels[(y * 3 + x) * channels + c]);
        }
      }
    }
  }
}

// --- every PNG format, normalised ----------------------------------------------------------

TEST(PngTest, PaletteExpandsToItsColoursAndTrnsToAlpha) {
  PngSpec spec = RandomSpec(2, 1, 8, PNG_COLOR_TYPE_PALETTE, 1);
  spec.palette = {{10, 20, 30}, {200, 100, 50}};
  spec.palette_alpha = {128};  // entry 0 half transparent, entry 1 opaque
  spec.rows = {1, 0};
  const std::string path = WriteTemp("palette.png", Encode(spec));

  GAN_ASSERT_OK_AND_ASSIGN(const PngImage rgb, ReadPng(path, 3));
  EXPECT_THAT(rgb.pixels, ElementsAre(200, 100, 50, 10, 20, 30));
  GAN_ASSERT_OK_AND_ASSIGN(const PngImage rgba, ReadPng(path, 4));
  EXPECT_THAT(rgba.pixels, ElementsAre(200, 100, 50, 255, 10, 20, 30, 128));
  GAN_ASSERT_OK_AND_ASSIGN(const PngImage grey, ReadPng(path, 1));
  EXPECT_THAT(grey.pixels, ElementsAre((77 * 200 + 150 * 100 + 29 * 50) >> 8,
                                       (77 * 10 + 150 * 20 + 29 * 30) >> 8));
}

TEST(PngTest, SixteenBitKeepsTheHighByte) {
  PngSpec spec = RandomSpec(2, 1, 16, PNG_COLOR_TYPE_GRAY, 1);
  spec.rows = {0x12, 0xff, 0xab, 0x01};
  GAN_ASSERT_OK_AND_ASSIGN(const PngImage grey, ReadPng(WriteTemp("g16.png", Encode(spec)), 1));
  EXPECT_THAT(grey.pixels, ElementsAre(0x12, 0xab));
}

TEST(PngTest, RgbaDropsAlphaOrKeepsIt) {
  PngSpec spec = RandomSpec(1, 1, 8, PNG_COLOR_TYPE_RGB_ALPHA, 1);
  spec.rows = {255, 0, 0, 7};
  const std::string path = WriteTemp("rgba.png", Encode(spec));
  GAN_ASSERT_OK_AND_ASSIGN(const PngImage rgb, ReadPng(path, 3));
  EXPECT_THAT(rgb.pixels, ElementsAre(255, 0, 0));  // not composited over a background
  GAN_ASSERT_OK_AND_ASSIGN(const PngImage rgba, ReadPng(path, 4));
  EXPECT_THAT(rgba.pixels, ElementsAre(255, 0, 0, 7));
  GAN_ASSERT_OK_AND_ASSIGN(const PngImage grey, ReadPng(path, 1));
  EXPECT_THAT(grey.pixels, ElementsAre((77 * 255) >> 8));
  GAN_ASSERT_OK_AND_ASSIGN(const PngImage grey_alpha, ReadPng(path, 2));
  EXPECT_THAT(grey_alpha.pixels, ElementsAre((77 * 255) >> 8, 7));
}

TEST(PngTest, GreyAlphaBecomesGreyRgbOrRgba) {
  PngSpec spec = RandomSpec(1, 1, 8, PNG_COLOR_TYPE_GRAY_ALPHA, 1);
  spec.rows = {90, 33};
  const std::string path = WriteTemp("ga.png", Encode(spec));
  GAN_ASSERT_OK_AND_ASSIGN(const PngImage grey, ReadPng(path, 1));
  EXPECT_THAT(grey.pixels, ElementsAre(90));
  GAN_ASSERT_OK_AND_ASSIGN(const PngImage rgb, ReadPng(path, 3));
  EXPECT_THAT(rgb.pixels, ElementsAre(90, 90, 90));
  GAN_ASSERT_OK_AND_ASSIGN(const PngImage rgba, ReadPng(path, 4));
  EXPECT_THAT(rgba.pixels, ElementsAre(90, 90, 90, 33));
}

TEST(PngTest, LowBitDepthGreyScalesToEightBitsAndGetsOpaqueAlpha) {
  PngSpec spec = RandomSpec(8, 1, 1, PNG_COLOR_TYPE_GRAY, 1);
  spec.rows = {0b10100000};
  const std::string path = WriteTemp("g1.png", Encode(spec));
  GAN_ASSERT_OK_AND_ASSIGN(const PngImage grey, ReadPng(path, 1));
  EXPECT_THAT(grey.pixels, ElementsAre(255, 0, 255, 0, 0, 0, 0, 0));
  GAN_ASSERT_OK_AND_ASSIGN(const PngImage grey_alpha, ReadPng(path, 2));
  EXPECT_EQ(grey_alpha.pixels.size(), 16u);
  EXPECT_EQ(grey_alpha.pixels[0], 255);
  EXPECT_EQ(grey_alpha.pixels[1], 255);
}

// Every colour type and bit depth, plain, interlaced and with tRNS, as 1 to 4 channels: the same
// pixels as stb_image, which ganctl used before, so scores do not change.
TEST(PngTest, EveryFormatMatchesStbImage) {
  struct Format {
    int color_type;
    int bit_depth;
  };
  const Format formats[] = {
      {PNG_COLOR_TYPE_GRAY, 1},        {PNG_COLOR_TYPE_GRAY, 2},
      {PNG_COLOR_TYPE_GRAY, 4},        {PNG_COLOR_TYPE_GRAY, 8},
      {PNG_COLOR_TYPE_GRAY, 16},       {PNG_COLOR_TYPE_GRAY_ALPHA, 8},
      {PNG_COLOR_TYPE_GRAY_ALPHA, 16}, {PNG_COLOR_TYPE_RGB, 8},
      {PNG_COLOR_TYPE_RGB, 16},        {PNG_COLOR_TYPE_RGB_ALPHA, 8},
      {PNG_COLOR_TYPE_RGB_ALPHA, 16},  {PNG_COLOR_TYPE_PALETTE, 1},
      {PNG_COLOR_TYPE_PALETTE, 2},     {PNG_COLOR_TYPE_PALETTE, 4},
      {PNG_COLOR_TYPE_PALETTE, 8},
  };
  int compared = 0;
  for (const Format& format : formats) {
    for (bool interlaced : {false, true}) {
      for (bool trns : {false, true}) {
        if (trns && (format.color_type & PNG_COLOR_MASK_ALPHA) != 0) continue;
        PngSpec spec =
            RandomSpec(13, 7, format.bit_depth, format.color_type,
                       static_cast<uint32_t>(format.color_type * 100 + format.bit_depth));
        spec.interlaced = interlaced;
        if (trns && format.color_type == PNG_COLOR_TYPE_PALETTE) {
          for (size_t i = 0; i < std::min<size_t>(spec.palette.size(), 5); ++i) {
            spec.palette_alpha.push_back(static_cast<uint8_t>(i * 60));
          }
        } else if (trns) {
          png_color_16 colour{};
          const int max = (1 << format.bit_depth) - 1;
          // The first pixel's colour, so that at least one pixel is transparent.
          if (format.color_type == PNG_COLOR_TYPE_GRAY) {
            colour.gray = static_cast<png_uint_16>(
                format.bit_depth == 16 ? (spec.rows[0] << 8 | spec.rows[1])
                                       : (spec.rows[0] >> (8 - format.bit_depth)) & max);
          } else if (format.bit_depth == 8) {
            colour.red = spec.rows[0];
            colour.green = spec.rows[1];
            colour.blue = spec.rows[2];
          } else {
            colour.red = static_cast<png_uint_16>(spec.rows[0] << 8 | spec.rows[1]);
            colour.green = static_cast<png_uint_16>(spec.rows[2] << 8 | spec.rows[3]);
            colour.blue = static_cast<png_uint_16>(spec.rows[4] << 8 | spec.rows[5]);
          }
          spec.transparent = colour;
        }
        const std::string bytes = Encode(spec);
        ASSERT_FALSE(bytes.empty());
        const std::string name = absl::StrCat("type", format.color_type, "_depth", format.bit_depth,
                                              interlaced ? "_interlaced" : "", trns ? "_trns" : "");
        const std::string path = WriteTemp(name + ".png", bytes);
        for (int channels = 1; channels <= 4; ++channels) {
          SCOPED_TRACE(absl::StrCat(name, " as ", channels, " channels"));
          int width = 0, height = 0;
          const std::vector<uint8_t> expected = StbPixels(bytes, channels, &width, &height);
          ASSERT_FALSE(expected.empty()) << stbi_failure_reason();
          GAN_ASSERT_OK_AND_ASSIGN(const PngImage image, ReadPng(path, channels));
          EXPECT_EQ(image.width, width);
          EXPECT_EQ(image.height, height);
          EXPECT_EQ(image.channels, channels);
          EXPECT_EQ(image.pixels, expected);
          ++compared;
        }
      }
    }
  }
  EXPECT_GT(compared, 150);
}

// --- refusals ------------------------------------------------------------------------------

TEST(PngTest, ANonPngIsRefusedWithItsName) {
  const std::string text = WriteTemp("text.png", "this is not a PNG\n");
  EXPECT_THAT(ReadPng(text, 1),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(StartsWith(text + ": "), HasSubstr("not a PNG file"))));
  const std::string empty = WriteTemp("empty.png", "");
  EXPECT_THAT(ReadPng(empty, 1),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not a PNG file")));
}

TEST(PngTest, AMissingFileIsNotFound) {
  const std::string path = WriteTemp("x", "") + "-missing.png";
  EXPECT_THAT(ReadPng(path, 1),
              StatusIs(absl::StatusCode::kNotFound,
                       AllOf(StartsWith(path + ": "), HasSubstr("No such file"))));
}

TEST(PngTest, ChannelsOutsideOneToFourAreRefused) {
  const std::string path =
      WriteTemp("one.png", Encode(RandomSpec(1, 1, 8, PNG_COLOR_TYPE_GRAY, 1)));
  for (int channels : {0, 5, -1}) {
    EXPECT_THAT(ReadPng(path, channels),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("channels")));
  }
}

TEST(PngTest, ATruncatedFileIsRefused) {
  const std::string bytes = Encode(RandomSpec(64, 64, 8, PNG_COLOR_TYPE_RGB, 3));
  for (size_t keep : {size_t{8}, size_t{20}, size_t{40}, bytes.size() / 2, bytes.size() - 1}) {
    SCOPED_TRACE(keep);
    const std::string path = WriteTemp("cut.png", bytes.substr(0, keep));
    EXPECT_THAT(ReadPng(path, 3),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         AllOf(StartsWith(path + ": not a valid PNG: "), HasSubstr("truncated"))));
  }
}

TEST(PngTest, CorruptImageDataIsRefused) {
  std::string bytes = Encode(RandomSpec(32, 32, 8, PNG_COLOR_TYPE_GRAY, 5));
  const size_t idat = bytes.find("IDAT");
  ASSERT_NE(idat, std::string::npos);
  bytes[idat + 10] = static_cast<char>(bytes[idat + 10] ^ 0x55);  // breaks the CRC
  const std::string path = WriteTemp("corrupt.png", bytes);
  EXPECT_THAT(ReadPng(path, 1),
              StatusIs(absl::StatusCode::kInvalidArgument, StartsWith(path + ": not a valid PNG")));
}

// A PNG signature, an IHDR chunk claiming width x height, an empty IDAT and IEND (valid CRCs):
// libpng reads everything before the image data without complaint.
std::string HeaderOnly(uint32_t width, uint32_t height) {
  auto be32 = [](uint32_t v) {
    return std::string{static_cast<char>(v >> 24), static_cast<char>(v >> 16),
                       static_cast<char>(v >> 8), static_cast<char>(v)};
  };
  auto chunk = [&](const std::string& type, const std::string& data) {
    const std::string body = type + data;
    const auto crc = static_cast<uint32_t>(
        crc32(0, reinterpret_cast<const Bytef*>(body.data()), static_cast<uInt>(body.size())));
    return be32(static_cast<uint32_t>(data.size())) + body + be32(crc);
  };
  // 8-bit RGB, deflate, adaptive filtering, not interlaced.
  const std::string ihdr = be32(width) + be32(height) + std::string{8, 2, 0, 0, 0};
  return std::string("\x89PNG\r\n\x1a\n", 8) + chunk("IHDR", ihdr) + chunk("IDAT", "") +
         chunk("IEND", "");
}

TEST(PngTest, HugeClaimedDimensionsAreRefusedBeforeAllocating) {
  struct Case {
    uint32_t width, height;
  };
  // Above the width limit; above the height limit; each within its limit but too many pixels;
  // the largest dimensions a PNG can state.
  for (const Case& c :
       {Case{100000, 10}, Case{10, 100000}, Case{30000, 30000}, Case{0x7fffffff, 0x7fffffff}}) {
    SCOPED_TRACE(absl::StrCat(c.width, "x", c.height));
    const std::string path = WriteTemp("huge.png", HeaderOnly(c.width, c.height));
    g_largest_allocation = 0;
    EXPECT_THAT(ReadPng(path, 3),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         AllOf(StartsWith(path + ": not a valid PNG: "), HasSubstr("limit"))));
    EXPECT_LT(g_largest_allocation.load(), size_t{1} << 20);
  }
}

TEST(PngTest, LimitsAreTheCallers) {
  const std::string path =
      WriteTemp("small.png", Encode(RandomSpec(20, 10, 8, PNG_COLOR_TYPE_GRAY, 1)));
  PngLimits limits;
  limits.max_pixels = 199;
  EXPECT_THAT(ReadPng(path, 1, limits),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("20x10 pixels exceed")));
  limits.max_pixels = 200;
  EXPECT_THAT(ReadPng(path, 1, limits), IsOk());
  limits.max_width = 19;
  EXPECT_THAT(ReadPng(path, 1, limits),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("limit")));
}

// A file whose header is within the limits but whose data stops early: the pixel buffer grows
// with the rows decoded, never to the 75 MB the header claims.
TEST(PngTest, ATruncatedLargeImageFailsWithoutAllocatingItsClaim) {
  PngSpec spec;
  spec.width = 5000;
  spec.height = 5000;
  spec.color_type = PNG_COLOR_TYPE_RGB;
  spec.rows.assign(RowBytes(spec) * spec.height, 0);
  for (size_t i = 0; i < spec.rows.size(); i += 4099) spec.rows[i] = static_cast<uint8_t>(i);
  const std::string bytes = Encode(spec);
  spec.rows.clear();
  spec.rows.shrink_to_fit();
  ASSERT_GT(bytes.size(), 20000u);
  const std::string path = WriteTemp("big-cut.png", bytes.substr(0, 20000));
  g_largest_allocation = 0;
  EXPECT_THAT(ReadPng(path, 3),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("truncated")));
  EXPECT_LT(g_largest_allocation.load(), size_t{16} << 20);
}

}  // namespace
}  // namespace gan
