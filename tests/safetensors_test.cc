#include "core/safetensors.h"

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/test_util.h"

namespace gan {
namespace {

using ::gan::testing::IsOk;
using ::gan::testing::MakeTempDir;
using ::gan::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr auto kInvalid = absl::StatusCode::kInvalidArgument;

std::string U64Le(uint64_t v) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((v >> (8 * i)) & 0xff);
  return out;
}

// A file with `header` (unpadded) as its JSON header and `buffer` as its data.
std::string FileWith(const std::string& header, const std::string& buffer = "") {
  return U64Le(header.size()) + header + buffer;
}

absl::Status ParseHeader(const std::string& header, const std::string& buffer = "") {
  return ParseSafeTensors(FileWith(header, buffer)).status();
}

SafeTensors Sample() {
  SafeTensors st;
  st.tensors["generator.0.weight"] = MakeF32Tensor({2, 3}, {1.5f, -2.f, 0.f, 3.25f, 1e-8f, -0.f});
  st.tensors["discriminator.1.num_batches_tracked"] = MakeI64Tensor({}, {int64_t{1} << 40});
  st.tensors["pixels"] = Tensor{DType::kU8, {3}, std::string("\x00\x7f\xff", 3)};
  st.tensors["empty"] = MakeF32Tensor({0, 4}, {});
  st.metadata["step"] = "1200";
  st.metadata["spec"] = R"({"layers": [1, 2], "name": "dcgan \u00e9"})";
  return st;
}

TEST(SafeTensorsTest, RoundTripIsByteExact) {
  const std::string bytes = SerializeSafeTensors(Sample());
  GAN_ASSERT_OK_AND_ASSIGN(SafeTensors parsed, ParseSafeTensors(bytes));
  EXPECT_EQ(SerializeSafeTensors(parsed), bytes);
  EXPECT_EQ(parsed.metadata, Sample().metadata);

  GAN_ASSERT_OK_AND_ASSIGN(std::vector<float> w, GetF32(parsed, "generator.0.weight", {2, 3}));
  EXPECT_THAT(w, ElementsAre(1.5f, -2.f, 0.f, 3.25f, 1e-8f, -0.f));
  GAN_ASSERT_OK_AND_ASSIGN(std::vector<int64_t> n,
                           GetI64(parsed, "discriminator.1.num_batches_tracked"));
  EXPECT_THAT(n, ElementsAre(int64_t{1} << 40));
  EXPECT_TRUE(parsed.tensors["discriminator.1.num_batches_tracked"].shape.empty());
  EXPECT_EQ(parsed.tensors["pixels"].dtype, DType::kU8);
  EXPECT_EQ(parsed.tensors["pixels"].bytes, std::string("\x00\x7f\xff", 3));
  EXPECT_THAT(parsed.tensors["empty"].shape, ElementsAre(0, 4));
}

TEST(SafeTensorsTest, EmptyFileRoundTrips) {
  const std::string bytes = SerializeSafeTensors({});
  EXPECT_EQ(bytes, U64Le(8) + "{}      ");
  GAN_ASSERT_OK_AND_ASSIGN(SafeTensors parsed, ParseSafeTensors(bytes));
  EXPECT_TRUE(parsed.tensors.empty());
  EXPECT_TRUE(parsed.metadata.empty());
}

// The exact bytes Python's safetensors writes for
//   save_file({"w": np.array([1, 2], np.float32)}, path, metadata={"format": "pt"}).
TEST(SafeTensorsTest, SerializesInReferenceLayout) {
  const std::string header =
      R"({"__metadata__":{"format":"pt"},"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})"
      "   ";  // 85 bytes padded to 88
  const float values[] = {1.f, 2.f};
  const std::string expected =
      U64Le(88) + header + std::string(reinterpret_cast<const char*>(values), 8);

  SafeTensors st;
  st.tensors["w"] = MakeF32Tensor({2}, values);
  st.metadata["format"] = "pt";
  EXPECT_EQ(SerializeSafeTensors(st), expected);
}

// Python's writer orders tensors by descending dtype alignment, so I64 "b" precedes F32 "a".
TEST(SafeTensorsTest, ParsesReferenceFileWrittenByHand) {
  std::string file("\x90\0\0\0\0\0\0\0", 8);  // 141-byte header + 3 spaces = 144
  file += R"({"__metadata__":{"format":"pt"},)"
          R"("b":{"dtype":"I64","shape":[1],"data_offsets":[0,8]},)"
          R"("a":{"dtype":"F32","shape":[2,2],"data_offsets":[8,24]}}   )";
  file += std::string("\x07\0\0\0\0\0\0\0", 8);        // b = [7]
  file += std::string("\0\0\x80\x3f\0\0\0\x40", 8);    // 1.0f, 2.0f
  file += std::string("\0\0\x40\x40\0\0\x80\x40", 8);  // 3.0f, 4.0f
  ASSERT_EQ(file.size(), 8u + 144u + 24u);

  GAN_ASSERT_OK_AND_ASSIGN(SafeTensors st, ParseSafeTensors(file));
  EXPECT_THAT(st.metadata, ElementsAre(std::pair<const std::string, std::string>("format", "pt")));
  GAN_ASSERT_OK_AND_ASSIGN(std::vector<int64_t> b, GetI64(st, "b", {1}));
  EXPECT_THAT(b, ElementsAre(7));
  GAN_ASSERT_OK_AND_ASSIGN(std::vector<float> a, GetF32(st, "a", {2, 2}));
  EXPECT_THAT(a, ElementsAre(1.f, 2.f, 3.f, 4.f));
}

TEST(SafeTensorsTest, RejectsFileShorterThanLengthPrefix) {
  EXPECT_THAT(ParseSafeTensors(""), StatusIs(kInvalid, HasSubstr("0 bytes")));
  EXPECT_THAT(ParseSafeTensors(std::string("\x02\0\0\0\0\0\0", 7)),
              StatusIs(kInvalid, HasSubstr("shorter than the 8-byte header length")));
}

TEST(SafeTensorsTest, RejectsHeaderLengthBeyondFile) {
  EXPECT_THAT(ParseSafeTensors(U64Le(100) + "{}"),
              StatusIs(kInvalid, HasSubstr("runs past the end of the 10-byte file")));
  EXPECT_THAT(ParseSafeTensors(U64Le(UINT64_MAX) + "{}"), StatusIs(kInvalid, HasSubstr("limit")));
}

TEST(SafeTensorsTest, RejectsHeaderOverLimit) {
  const std::string file = SerializeSafeTensors(Sample());
  SafeTensorsLimits limits;
  limits.max_header_bytes = 64;
  EXPECT_THAT(ParseSafeTensors(file, limits),
              StatusIs(kInvalid, HasSubstr("over the limit of 64 bytes")));
}

TEST(SafeTensorsTest, RejectsDataCutShort) {
  const std::string file = SerializeSafeTensors(Sample());
  EXPECT_THAT(ParseSafeTensors(file.substr(0, file.size() - 1)),
              StatusIs(kInvalid, HasSubstr("exceed the")));
}

TEST(SafeTensorsTest, RejectsMalformedJson) {
  EXPECT_THAT(ParseHeader(R"({"a": {"dtype": "F32",)"), StatusIs(kInvalid, HasSubstr("JSON")));
  EXPECT_THAT(ParseHeader("{\"\xff\": 1}"), StatusIs(kInvalid, HasSubstr("not valid JSON")));
  EXPECT_THAT(ParseHeader("[1, 2]"), StatusIs(kInvalid, HasSubstr("not a JSON object")));
  EXPECT_THAT(ParseHeader(R"({"a": 5})"), StatusIs(kInvalid, HasSubstr("'a': entry is not")));
}

TEST(SafeTensorsTest, RejectsBadTensorEntries) {
  const std::string buffer(16, '\0');
  struct Case {
    const char* entry;
    const char* message;
  };
  const Case cases[] = {
      {R"({"dtype":"F16","shape":[2],"data_offsets":[0,4]})", "unsupported dtype \"F16\""},
      {R"({"dtype":"F32","shape":[3],"data_offsets":[0,8]})", "needs 12 bytes"},
      {R"({"dtype":"F32","shape":[-2],"data_offsets":[0,8]})", "'shape' holds -2"},
      {R"({"dtype":"F32","shape":[1.5],"data_offsets":[0,8]})", "not a non-negative integer"},
      {R"({"dtype":"F32","shape":"2","data_offsets":[0,8]})", "'shape' is not an array"},
      {R"({"dtype":"F32","shape":[2],"data_offsets":[0,8,16]})", "[begin, end]"},
      {R"({"dtype":"F32","shape":[2],"data_offsets":[8,0]})", "begin > end"},
      {R"({"dtype":"F32","shape":[6],"data_offsets":[0,24]})", "exceed the 16-byte data buffer"},
      {R"({"dtype":"F32","shape":[2],"data_offsets":[0,8],"extra":1})", "unknown key \"extra\""},
      {R"({"dtype":"F32","shape":[2]})", "needs 'dtype', 'shape' and 'data_offsets'"},
      {R"({"dtype":"U8","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,0]})",
       "overflows"},
      {R"({"dtype":"U8","shape":[9223372036854775808,0],"data_offsets":[0,0]})", "too large"},
  };
  for (const Case& c : cases) {
    EXPECT_THAT(
        ParseHeader(absl::StrCat(R"({"t.0.w":)", c.entry, "}"), buffer),
        StatusIs(kInvalid, ::testing::AllOf(HasSubstr("tensor 't.0.w'"), HasSubstr(c.message))))
        << c.entry;
  }
}

TEST(SafeTensorsTest, OutOfRangeMessageNamesTensorAndBuffer) {
  EXPECT_THAT(ParseHeader(R"({"discriminator.0.weight":{"dtype":"F32","shape":[10,10],)"
                          R"("data_offsets":[0,400]}})",
                          std::string(320, '\0')),
              StatusIs(kInvalid,
                       "tensor 'discriminator.0.weight': data_offsets [0, 400] exceed the "
                       "320-byte data buffer"));
}

TEST(SafeTensorsTest, RejectsOverlappingTensors) {
  EXPECT_THAT(ParseHeader(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                          R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                          std::string(12, '\0')),
              StatusIs(kInvalid, HasSubstr("tensor 'b': data_offsets [4, 12] overlap tensor 'a'")));
  // Zero-sized tensors at a shared boundary do not overlap.
  EXPECT_THAT(ParseHeader(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                          R"("b":{"dtype":"F32","shape":[0],"data_offsets":[8,8]}})",
                          std::string(8, '\0')),
              IsOk());
}

TEST(SafeTensorsTest, RejectsBadMetadata) {
  EXPECT_THAT(ParseHeader(R"({"__metadata__":{"step":12}})"),
              StatusIs(kInvalid, HasSubstr("value for \"step\" is not a string")));
  EXPECT_THAT(ParseHeader(R"({"__metadata__":["step"]})"),
              StatusIs(kInvalid, HasSubstr("'__metadata__' is not an object")));
}

TEST(SafeTensorsTest, GetReportsMissingWrongDtypeAndShape) {
  const SafeTensors st = Sample();
  EXPECT_THAT(GetF32(st, "nope"), StatusIs(kInvalid, "tensor 'nope': not found"));
  EXPECT_THAT(GetF32(st, "pixels"), StatusIs(kInvalid, "tensor 'pixels': is U8, expected F32"));
  EXPECT_THAT(GetI64(st, "generator.0.weight"),
              StatusIs(kInvalid, HasSubstr("is F32, expected I64")));
  EXPECT_THAT(GetF32(st, "generator.0.weight", {3, 2}),
              StatusIs(kInvalid, "tensor 'generator.0.weight': has shape [2, 3], expected [3, 2]"));
  EXPECT_THAT(GetF32(st, "generator.0.weight"), IsOk());
}

TEST(SafeTensorsTest, FileRoundTrip) {
  const std::string path = MakeTempDir("st") + "/ckpt.safetensors";
  ASSERT_THAT(WriteSafeTensorsFile(path, Sample()), IsOk());
  GAN_ASSERT_OK_AND_ASSIGN(SafeTensors read, ReadSafeTensorsFile(path));
  EXPECT_EQ(SerializeSafeTensors(read), SerializeSafeTensors(Sample()));
}

TEST(SafeTensorsTest, ReadChecksFileSizeAndPrefixesPath) {
  const std::string dir = MakeTempDir("st");
  const std::string path = dir + "/ckpt.safetensors";
  ASSERT_THAT(WriteSafeTensorsFile(path, Sample()), IsOk());
  SafeTensorsLimits limits;
  limits.max_file_bytes = 100;
  EXPECT_THAT(ReadSafeTensorsFile(path, limits),
              StatusIs(kInvalid, HasSubstr("over the limit of 100")));
  EXPECT_THAT(ReadSafeTensorsFile(dir + "/missing"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("missing")));

  std::ofstream(path, std::ios::binary | std::ios::trunc) << "short";
  EXPECT_THAT(ReadSafeTensorsFile(path), StatusIs(kInvalid, HasSubstr(path + ": file is 5")));
}

TEST(SafeTensorsTest, WriteRejectsInconsistentTensor) {
  const std::string path = MakeTempDir("st") + "/ckpt.safetensors";
  SafeTensors st;
  st.tensors["w"] = MakeF32Tensor({2, 2}, {1.f, 2.f, 3.f});
  EXPECT_THAT(WriteSafeTensorsFile(path, st),
              StatusIs(kInvalid, HasSubstr("tensor 'w': holds 12")));
  EXPECT_FALSE(std::filesystem::exists(path));
}

// Views of Sample()'s tensors (valid while `st` lives).
std::map<std::string, TensorView> ViewsOf(const SafeTensors& st) {
  std::map<std::string, TensorView> views;
  for (const auto& [name, tensor] : st.tensors) {
    views[name] = TensorView{tensor.dtype, tensor.shape, tensor.bytes};
  }
  return views;
}

TEST(SafeTensorsTest, StreamedWriteIsByteForByteTheSerializedFile) {
  const std::string path = MakeTempDir("st") + "/ckpt.safetensors";
  const SafeTensors st = Sample();
  ASSERT_THAT(WriteSafeTensorsFile(path, ViewsOf(st), st.metadata), IsOk());
  std::ifstream in(path, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(bytes, SerializeSafeTensors(st));
}

TEST(SafeTensorsTest, StreamedWriteRejectsInconsistentTensor) {
  const std::string path = MakeTempDir("st") + "/ckpt.safetensors";
  const std::string three_floats(12, '\0');
  std::map<std::string, TensorView> views;
  views["w"] = TensorView{DType::kF32, {2, 2}, three_floats};
  EXPECT_THAT(WriteSafeTensorsFile(path, views, {}),
              StatusIs(kInvalid, HasSubstr("tensor 'w': holds 12")));
  EXPECT_FALSE(std::filesystem::exists(path));
}

TEST(SafeTensorsTest, ParseCanKeepOnlySomeTensorsAndStillChecksTheOthers) {
  const std::string bytes = SerializeSafeTensors(Sample());
  GAN_ASSERT_OK_AND_ASSIGN(SafeTensors kept,
                           ParseSafeTensors(bytes, {}, [](absl::string_view name) {
                             return absl::StartsWith(name, "generator.");
                           }));
  EXPECT_EQ(kept.tensors.size(), 1u);
  EXPECT_EQ(kept.tensors.count("generator.0.weight"), 1u);
  EXPECT_EQ(kept.metadata, Sample().metadata);
  // A tensor that is not kept is validated all the same: one running past the data is refused.
  EXPECT_THAT(ParseSafeTensors(
                  FileWith(R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", "1234"), {},
                  [](absl::string_view) { return false; })
                  .status(),
              StatusIs(kInvalid, HasSubstr("tensor 'x'")));
}

}  // namespace
}  // namespace gan
