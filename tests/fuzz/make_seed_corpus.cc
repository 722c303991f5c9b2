// Writes the generated seed files of every fuzz corpus: gan_fuzz_seed_corpus DIR writes
// DIR/<target>/seed-*; run it with DIR = tests/fuzz/corpus after changing it (files the fuzzers
// found, named by their SHA-1, are kept beside them). Deterministic: equal runs write equal bytes.
//
//   cmake --build build-fuzzreplay --target gan_fuzz_seed_corpus
//   build-fuzzreplay/bin/gan_fuzz_seed_corpus tests/fuzz/corpus

#include <png.h>
#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "core/checkpoint.h"
#include "core/gan_trainer.h"
#include "core/safetensors.h"
#include "gan/v1/service.pb.h"
#include "google/protobuf/text_format.h"
#include "inference/grpc_service.pb.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

namespace fs = std::filesystem;

fs::path g_root;

void Write(const std::string& target, const std::string& name, const std::string& bytes) {
  const fs::path dir = g_root / target;
  fs::create_directories(dir);
  std::ofstream out(dir / ("seed-" + name), std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) {
    std::fprintf(stderr, "cannot write %s/%s\n", dir.c_str(), name.c_str());
    std::exit(1);
  }
}

std::string Gzip(const std::string& raw) {
  z_stream z{};
  if (deflateInit2(&z, 9, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) std::exit(1);
  std::string out(deflateBound(&z, raw.size()) + 32, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(raw.data()));
  z.avail_in = static_cast<uInt>(raw.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  if (deflate(&z, Z_FINISH) != Z_STREAM_END) std::exit(1);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

// ---------------------------------------------------------------------------------------------
// safetensors

void SafeTensorsSeeds() {
  auto trainer = gan::GanTrainer::Create(gan::fuzz::TinyGanSpec());
  if (!trainer.ok()) {
    std::fprintf(stderr, "%s\n", trainer.status().ToString().c_str());
    std::exit(1);
  }
  const gan::SafeTensors checkpoint =
      gan::MakeCheckpoint(**trainer, gan::CheckpointInfo{3, 1, 42});
  const std::string bytes = gan::SerializeSafeTensors(checkpoint);
  Write("safetensors", "tiny-checkpoint", bytes);
  Write("safetensors", "tiny-checkpoint-truncated", bytes.substr(0, bytes.size() - 5));

  gan::SafeTensors weights;  // generator and discriminator weights only, no metadata
  for (const auto& [name, tensor] : checkpoint.tensors) {
    if (name.rfind("optimizer.", 0) != 0) weights.tensors[name] = tensor;
  }
  Write("safetensors", "weights-only", gan::SerializeSafeTensors(weights));

  gan::SafeTensors mixed;
  mixed.tensors["f32"] = gan::MakeF32Tensor({2, 2}, {1.f, -2.f, 0.5f, 3.f});
  mixed.tensors["i64"] = gan::MakeI64Tensor({}, {7});
  gan::Tensor u8{gan::DType::kU8, {3}, "abc"};
  mixed.tensors["u8"] = u8;
  gan::Tensor empty{gan::DType::kF64, {0, 4}, ""};
  mixed.tensors["empty"] = empty;
  mixed.metadata["format"] = "pt";
  Write("safetensors", "mixed-dtypes", gan::SerializeSafeTensors(mixed));

  auto header_only = [](const std::string& json, const std::string& data) {
    std::string out(8, '\0');
    uint64_t n = json.size();
    for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
    return out + json + data;
  };
  Write("safetensors", "empty-header", header_only("{}", ""));
  Write("safetensors", "bad-dtype",
        header_only(R"({"a":{"dtype":"Q8","shape":[1],"data_offsets":[0,1]}})", "x"));
  Write("safetensors", "overlap",
        header_only(R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},)"
                    R"("b":{"dtype":"U8","shape":[2],"data_offsets":[1,3]}})",
                    "xyz"));
  Write("safetensors", "offsets-outside",
        header_only(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", "1234"));
  Write("safetensors", "huge-shape",
        header_only(R"({"a":{"dtype":"F32","shape":[4611686018427387904,4],)"
                    R"("data_offsets":[0,0]}})",
                    ""));
  Write("safetensors", "metadata-not-string",
        header_only(R"({"__metadata__":{"step":3}})", ""));
  Write("safetensors", "header-length-huge", std::string("\xff\xff\xff\xff\xff\xff\xff\x7f{}", 10));

  // The checkpoint with a spec that does not validate.
  gan::SafeTensors bad_spec = checkpoint;
  bad_spec.metadata["spec"] = R"({"generator":{"layers":[{"dense":{"units":-1}}]}})";
  Write("safetensors", "checkpoint-bad-spec", gan::SerializeSafeTensors(bad_spec));
  gan::SafeTensors bad_step = checkpoint;
  bad_step.metadata["step"] = "-3";
  Write("safetensors", "checkpoint-bad-step", gan::SerializeSafeTensors(bad_step));
}

// ---------------------------------------------------------------------------------------------
// IDX

std::string Idx(std::vector<uint32_t> dims, uint8_t type = 0x08) {
  std::string out = {0, 0, static_cast<char>(type), static_cast<char>(dims.size())};
  uint64_t n = 1;
  for (uint32_t d : dims) {
    for (int s = 24; s >= 0; s -= 8) out.push_back(static_cast<char>((d >> s) & 0xff));
    n *= d;
  }
  for (uint64_t i = 0; i < n; ++i) out.push_back(static_cast<char>(i * 37 % 256));
  return out;
}

void IdxSeeds() {
  const std::string labels = Idx({10});
  const std::string images = Idx({3, 4, 5});
  const std::string matrix = Idx({2, 6});
  Write("idx", "labels-raw", labels);
  Write("idx", "images-raw", images);
  Write("idx", "matrix-raw", matrix);
  Write("idx", "labels-gz", Gzip(labels));
  Write("idx", "images-gz", Gzip(images));
  Write("idx", "truncated-raw", images.substr(0, images.size() - 7));
  Write("idx", "trailing-raw", images + "xx");
  Write("idx", "bad-magic", "\x01\x00\x08\x01\x00\x00\x00\x01z");
  Write("idx", "float-type", Idx({2}, 0x0d));
  Write("idx", "rank-4", std::string("\x00\x00\x08\x04", 4) + std::string(16, '\x01'));
  Write("idx", "zero-dim", std::string("\x00\x00\x08\x01\x00\x00\x00\x00", 8));
  Write("idx", "claims-gigabytes", std::string("\x00\x00\x08\x02\x00\x01\x00\x00\x00\x01\x00\x00", 12) + "abc");
  const std::string gz = Gzip(images);
  std::string bad_crc = gz;
  bad_crc[bad_crc.size() - 6] ^= 0x5a;
  Write("idx", "gz-bad-crc", bad_crc);
  Write("idx", "gz-cut-short", gz.substr(0, gz.size() / 2));
  Write("idx", "gz-truncated-payload", Gzip(images.substr(0, images.size() - 3)));
  Write("idx", "empty", "");
}

// ---------------------------------------------------------------------------------------------
// PNG

struct PngOut {
  std::string bytes;
};

void PngWrite(png_structp png, png_bytep data, png_size_t n) {
  static_cast<PngOut*>(png_get_io_ptr(png))->bytes.append(reinterpret_cast<char*>(data), n);
}
void PngFlush(png_structp) {}

// A w x h image of `color_type` and `bit_depth` with a deterministic pattern.
std::string Png(int w, int h, int color_type, int bit_depth, bool interlace, bool trns = false,
                bool gamma = false) {
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png_create_info_struct(png);
  PngOut out;
  if (setjmp(png_jmpbuf(png))) std::exit(1);
  png_set_write_fn(png, &out, PngWrite, PngFlush);
  png_set_IHDR(png, info, w, h, bit_depth, color_type,
               interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
               PNG_FILTER_TYPE_DEFAULT);
  if (color_type == PNG_COLOR_TYPE_PALETTE) {
    png_color palette[16];
    for (int i = 0; i < 16; ++i) {
      palette[i] = {static_cast<png_byte>(i * 16), static_cast<png_byte>(255 - i * 16),
                    static_cast<png_byte>(i * 5)};
    }
    const int entries = std::min(16, 1 << bit_depth);
    png_set_PLTE(png, info, palette, entries);
    if (trns) {
      png_byte alpha[2] = {0, 128};
      png_set_tRNS(png, info, alpha, 2, nullptr);
    }
  } else if (trns) {
    png_color_16 colour{};
    colour.gray = 1;
    colour.red = 1;
    png_set_tRNS(png, info, nullptr, 0, &colour);
  }
  if (gamma) png_set_gAMA(png, info, 0.45455);
  png_write_info(png, info);
  if (bit_depth == 16) png_set_swap(png);  // rows below are little-endian uint16
  const int channels = png_get_channels(png, info);
  const size_t row_bytes = png_get_rowbytes(png, info);
  std::vector<std::vector<png_byte>> rows(h, std::vector<png_byte>(row_bytes));
  for (int y = 0; y < h; ++y) {
    for (size_t i = 0; i < row_bytes; ++i) {
      uint8_t v = static_cast<uint8_t>((y * 31 + i * 17 + channels) & 0xff);
      if (color_type == PNG_COLOR_TYPE_PALETTE && bit_depth == 8) v &= 0x0f;
      rows[y][i] = v;
    }
  }
  std::vector<png_bytep> pointers;
  for (auto& row : rows) pointers.push_back(row.data());
  png_write_image(png, pointers.data());
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  return out.bytes;
}

void PngSeeds() {
  Write("png", "grey8", Png(5, 4, PNG_COLOR_TYPE_GRAY, 8, false));
  Write("png", "grey1", Png(9, 3, PNG_COLOR_TYPE_GRAY, 1, false));
  Write("png", "grey2-trns", Png(4, 4, PNG_COLOR_TYPE_GRAY, 2, false, true));
  Write("png", "grey4-interlaced", Png(7, 6, PNG_COLOR_TYPE_GRAY, 4, true));
  Write("png", "grey16", Png(3, 3, PNG_COLOR_TYPE_GRAY, 16, false));
  Write("png", "grey-alpha8", Png(4, 3, PNG_COLOR_TYPE_GRAY_ALPHA, 8, false));
  Write("png", "rgb8", Png(6, 5, PNG_COLOR_TYPE_RGB, 8, false, false, true));
  Write("png", "rgb8-interlaced", Png(9, 9, PNG_COLOR_TYPE_RGB, 8, true));
  Write("png", "rgb16-trns", Png(3, 2, PNG_COLOR_TYPE_RGB, 16, false, true));
  Write("png", "rgba8", Png(4, 4, PNG_COLOR_TYPE_RGBA, 8, false));
  Write("png", "rgba16-interlaced", Png(5, 5, PNG_COLOR_TYPE_RGBA, 16, true));
  Write("png", "palette8", Png(4, 4, PNG_COLOR_TYPE_PALETTE, 8, false));
  Write("png", "palette4-trns", Png(6, 3, PNG_COLOR_TYPE_PALETTE, 4, false, true));
  Write("png", "palette1", Png(10, 2, PNG_COLOR_TYPE_PALETTE, 1, false));
  const std::string rgb = Png(8, 8, PNG_COLOR_TYPE_RGB, 8, false);
  Write("png", "rgb8-truncated", rgb.substr(0, rgb.size() - 20));
  std::string bad_crc = rgb;
  bad_crc[40] ^= 0x33;
  Write("png", "rgb8-corrupt", bad_crc);
  // IHDR claiming 30000 x 30000 (over the fuzzer's limits) with nothing after it.
  std::string huge = Png(1, 1, PNG_COLOR_TYPE_GRAY, 8, false);
  huge[16] = 0, huge[17] = 0, huge[18] = 0x75, huge[19] = 0x30;
  huge[20] = 0, huge[21] = 0, huge[22] = 0x75, huge[23] = 0x30;
  Write("png", "huge-ihdr", huge);
  Write("png", "not-png", "GIF89a not a png");
}

// ---------------------------------------------------------------------------------------------
// JobSpec

template <typename Message>
std::string FromText(const char* text) {
  Message m;
  if (!google::protobuf::TextFormat::ParseFromString(text, &m)) {
    std::fprintf(stderr, "bad text proto: %s\n", text);
    std::exit(1);
  }
  return m.SerializeAsString();
}

void JobSpecSeeds() {
  auto job = [](const char* name, const char* text) {
    Write("job_spec", name, FromText<gan::v1::JobSpec>(text));
  };
  job("preset-seed", R"pb(preset: "seed" steps: 10 dataset: "synthetic")pb");
  job("preset-dcgan-overrides", R"pb(
    preset: "seed-dcgan" epochs: 1 batch_size: 16 seed: 7 checkpoint_every: 5
    keep_checkpoints: 2 metrics_every: 3
    discriminator_hidden_activation { function: ACTIVATION_FUNCTION_TANH }
    generator_optimizer { learning_rate: 0.001 beta1: 0.5 beta2: 0.999 epsilon: 1e-7 })pb");
  job("preset-tf-dcgan", R"pb(preset: "tf-dcgan" steps: 1)pb");
  // Small explicit GANs for 28x28x1 (the synthetic dataset): GanTrainer::Create runs on them.
  job("explicit-dense", R"pb(
    gan {
      generator {
        layers { dense { units: 784 } }
        layers { reshape { channels: 1 height: 28 width: 28 } }
        layers { activation { function: ACTIVATION_FUNCTION_TANH } }
      }
      discriminator {
        layers { flatten {} }
        layers { dense { units: 8 } }
        layers { activation { function: ACTIVATION_FUNCTION_LEAKY_RELU alpha: 0.2 } }
        layers { dropout { rate: 0.5 } }
        layers { dense { units: 1 } }
        layers { activation { function: ACTIVATION_FUNCTION_SIGMOID } }
      }
      generator_optimizer { learning_rate: 0.001 beta1: 0.5 beta2: 0.999 epsilon: 1e-7 }
      discriminator_optimizer { learning_rate: 0.001 beta1: 0.5 beta2: 0.999 epsilon: 1e-7 }
      noise { distribution: NOISE_DISTRIBUTION_UNIFORM dim: 4 }
      image_shape { height: 28 width: 28 channels: 1 }
      batch_size: 2
    }
    steps: 3 dataset: "synthetic")pb");
  job("explicit-conv", R"pb(
    gan {
      generator {
        layers { dense { units: 49 } }
        layers { batch_norm {} }
        layers { activation { function: ACTIVATION_FUNCTION_RELU } }
        layers { reshape { channels: 1 height: 7 width: 7 } }
        layers { up_sampling2d { size: 2 } }
        layers { conv2d_transpose { filters: 2 kernel_size: 3 stride: 2 padding: PADDING_SAME } }
        layers { conv2d { filters: 1 kernel_size: 3 padding: PADDING_SAME } }
        layers { activation { function: ACTIVATION_FUNCTION_TANH } }
      }
      discriminator {
        layers { conv2d { filters: 2 kernel_size: 5 stride: 2 padding: PADDING_SAME } }
        layers { activation { function: ACTIVATION_FUNCTION_LEAKY_RELU alpha: 0.2 } }
        layers { conv2d { filters: 2 kernel_size: 5 stride: 2 padding: PADDING_VALID } }
        layers { flatten {} }
        layers { dense { units: 1 } }
      }
      generator_optimizer { learning_rate: 0.0002 beta1: 0.5 beta2: 0.999 epsilon: 1e-7 }
      discriminator_optimizer { learning_rate: 0.0002 beta1: 0.5 beta2: 0.999 epsilon: 1e-7 }
      noise { distribution: NOISE_DISTRIBUTION_NORMAL dim: 8 }
      image_shape { height: 28 width: 28 channels: 1 }
      batch_size: 4
    }
    epochs: 1)pb");
  job("no-preset", R"pb(steps: 10)pb");
  job("unknown-preset", R"pb(preset: "nope" steps: 10)pb");
  job("steps-and-epochs", R"pb(preset: "seed" steps: 10 epochs: 1)pb");
  job("negative-batch", R"pb(preset: "seed" steps: 10 batch_size: -4)pb");
  job("batch-over-limit", R"pb(preset: "seed" steps: 10 batch_size: 1000000)pb");
  job("too-many-epochs", R"pb(preset: "seed" epochs: 9000000000000000000)pb");
  job("dataset-traversal", R"pb(preset: "seed" steps: 1 dataset: "../../etc")pb");
  job("dataset-unknown", R"pb(preset: "seed" steps: 1 dataset: "my-data")pb");
  job("dataset-fashion", R"pb(preset: "seed" steps: 1 dataset: "fashion-mnist")pb");
  job("keep-checkpoints-over", R"pb(preset: "seed" steps: 1 keep_checkpoints: 5000)pb");
  job("bad-optimizer", R"pb(preset: "seed" steps: 1
    discriminator_optimizer { learning_rate: -1 beta1: 2 })pb");
  job("explicit-mismatched-image", R"pb(
    gan {
      generator { layers { dense { units: 16 } } layers { reshape { channels: 1 height: 4 width: 4 } } }
      discriminator { layers { flatten {} } layers { dense { units: 1 } } }
      noise { dim: 4 }
      image_shape { height: 4 width: 4 channels: 1 }
      batch_size: 2
    }
    steps: 1)pb");
  job("explicit-huge-dense", R"pb(
    gan {
      generator { layers { dense { units: 16777216 } } }
      discriminator { layers { flatten {} } layers { dense { units: 1 } } }
      noise { dim: 65536 }
      image_shape { height: 28 width: 28 channels: 1 }
      batch_size: 4096
    }
    steps: 1)pb");
  Write("job_spec", "not-a-proto", "\xff\xff\xff\xff");
}

// ---------------------------------------------------------------------------------------------
// Score and inference tensors

std::string Floats(std::vector<float> values) {
  std::string out(values.size() * 4, '\0');
  std::memcpy(out.data(), values.data(), out.size());
  return out;
}

void ScoreTensorSeeds() {
  auto score = [](const char* name, gan::v1::ScoreRequest request) {
    Write("score_tensors", name, request.SerializeAsString());
  };
  gan::v1::ScoreRequest r;
  r.set_job_id("job-1");
  for (int64_t d : {2, 28, 28, 1}) r.add_shape(d);
  r.set_uint8_pixels(std::string(2 * 28 * 28, '\x80'));
  score("score-uint8-28x28", r);
  r.clear_shape();
  for (int64_t d : {1, 2, 2, 3}) r.add_shape(d);
  r.set_float_pixels(Floats({-1, -0.5f, 0, 0.25f, 0.5f, 1, 1, 0, -1, 0.1f, 0.2f, 0.3f}));
  score("score-float-2x2x3", r);
  r.set_float_pixels(Floats({std::nanf(""), 2.0f, -1, 0, 0, 0, 0, 0, 0, 0, 0, 0}));
  score("score-float-nan", r);
  r.set_uint8_pixels("short");
  score("score-uint8-wrong-length", r);
  r.clear_shape();
  for (int64_t d : {-1, 28, 28, 1}) r.add_shape(d);
  score("score-negative-shape", r);
  r.clear_shape();
  for (int64_t d : {int64_t{1} << 40, int64_t{1} << 40, int64_t{28}, int64_t{1}}) r.add_shape(d);
  score("score-overflow-shape", r);
  r.clear_shape();
  r.clear_pixels();
  for (int64_t d : {1, 28, 28, 1}) r.add_shape(d);
  score("score-no-pixels", r);

  auto infer = [](const char* name, const char* text) {
    Write("score_tensors", name, FromText<inference::ModelInferRequest>(text));
  };
  inference::ModelInferRequest raw;
  raw.set_model_name("job-1");
  auto* input = raw.add_inputs();
  input->set_name("images");
  input->set_datatype("UINT8");
  for (int64_t d : {1, 3, 3, 1}) input->add_shape(d);
  raw.add_raw_input_contents(std::string(9, '\x10'));
  raw.add_outputs()->set_name("probability");
  Write("score_tensors", "infer-uint8-raw", raw.SerializeAsString());
  input->set_datatype("FP32");
  raw.set_raw_input_contents(0, Floats({0, 0.5f, -0.5f, 1, -1, 0, 0, 0, 0.75f}));
  raw.clear_outputs();
  Write("score_tensors", "infer-fp32-raw", raw.SerializeAsString());
  infer("infer-fp32-contents", R"pb(
    model_name: "job-1"
    inputs { name: "images" datatype: "FP32" shape: [ 1, 2, 1, 1 ]
             contents { fp32_contents: [ 0.5, -0.25 ] } }
    outputs { name: "logit" } outputs { name: "probability" })pb");
  infer("infer-uint8-contents", R"pb(
    inputs { name: "images" datatype: "UINT8" shape: [ 1, 1, 2, 2 ]
             contents { uint_contents: [ 0, 255, 17, 300 ] } })pb");
  infer("infer-noise", R"pb(
    model_name: "job-1-generator"
    inputs { name: "noise" datatype: "FP32" shape: [ 2, 3 ]
             contents { fp32_contents: [ 0.1, -2, 3, 0, 1, -1 ] } }
    outputs { name: "images" })pb");
  infer("infer-noise-nan", R"pb(
    inputs { name: "noise" datatype: "FP32" shape: [ 1, 2 ]
             contents { fp32_contents: [ nan, inf ] } })pb");
  infer("infer-wrong-datatype", R"pb(
    inputs { name: "images" datatype: "INT64" shape: [ 1, 1, 1, 1 ]
             contents { int64_contents: [ 1 ] } })pb");
  infer("infer-two-inputs", R"pb(
    inputs { name: "images" datatype: "UINT8" shape: [ 1, 1, 1, 1 ] }
    inputs { name: "noise" datatype: "FP32" shape: [ 1, 1 ] }
    raw_input_contents: "a")pb");
  infer("infer-duplicate-output", R"pb(
    inputs { name: "images" datatype: "UINT8" shape: [ 1, 1, 1, 1 ] contents { uint_contents: 3 } }
    outputs { name: "logit" } outputs { name: "logit" } outputs { name: "other" })pb");
  infer("infer-both-payloads", R"pb(
    inputs { name: "images" datatype: "UINT8" shape: [ 1, 1, 1, 1 ] contents { uint_contents: 3 } }
    raw_input_contents: "b")pb");
}

// ---------------------------------------------------------------------------------------------
// Token files

void TokenFileSeeds() {
  const std::string hash_a(64, 'a');
  const std::string hash_b = "0123456789abcdef0123456789ABCDEF0123456789abcdef0123456789abcdef";
  Write("token_file", "valid",
        "# role principal sha256\n\nadmin ops " + hash_a + "\n  trainer alice@example.com " +
            hash_b + "  # alice\nviewer bob.smith_1-x " + std::string(64, 'f') + "\n");
  Write("token_file", "empty", "");
  Write("token_file", "comments-only", "# nothing\n   \n\t# more\n");
  Write("token_file", "crlf", "admin ops " + hash_a + "\r\n");
  Write("token_file", "duplicate-hash", "admin a " + hash_a + "\nviewer b " + hash_a + "\n");
  Write("token_file", "unknown-role", "root x " + hash_a + "\n");
  Write("token_file", "short-hash", "admin x abc123\n");
  Write("token_file", "non-hex-hash", "admin x " + std::string(63, 'a') + "g\n");
  Write("token_file", "bad-principal", "admin a/b " + hash_a + "\n");
  Write("token_file", "long-principal", "admin " + std::string(129, 'p') + " " + hash_a + "\n");
  Write("token_file", "four-fields", "admin x " + hash_a + " extra\n");
  Write("token_file", "nul-byte", std::string("admin x\0 ", 9) + hash_a + "\n");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
    return 2;
  }
  g_root = argv[1];
  SafeTensorsSeeds();
  IdxSeeds();
  PngSeeds();
  JobSpecSeeds();
  ScoreTensorSeeds();
  TokenFileSeeds();
  return 0;
}
