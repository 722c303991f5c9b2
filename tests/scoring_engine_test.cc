// ScoringEngine (server/scoring_engine.h) on real checkpoints written by the trainer. What a user
// relies on: scores equal to running the discriminator directly (uint8 and float input, NHWC on
// the wire), the PyTorch-exported seed discriminator scoring as in PyTorch, every malformed
// request rejected with INVALID_ARGUMENT naming the field before anything is loaded or allocated,
// reproducible samples, a cache that reloads rewritten files, and identical answers under
// concurrency.

#include "server/scoring_engine.h"
#include "server/server.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/types/span.h"
#include "core/checkpoint.h"
#include "core/dataset.h"
#include "core/gan_trainer.h"
#include "core/init.h"
#include "core/presets.h"
#include "core/safetensors.h"
#include "core/sampler.h"
#include "core/scorer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/small_gan_spec.h"
#include "tests/test_util.h"

namespace gan::server {
namespace {

using ::gan::testing::ExpectAllClose;
using ::gan::testing::IsOk;
using ::gan::testing::MakeTempDir;
using ::gan::testing::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;

constexpr auto kInvalid = absl::StatusCode::kInvalidArgument;
constexpr int kHeight = 8, kWidth = 8, kChannels = 3;  // 3 channels so NHWC != NCHW
constexpr int64_t kImageBytes = kHeight * kWidth * kChannels;

// Generator (8) -> Dense 32 -> BN -> ReLU -> Dense 192 -> tanh -> (3, 8, 8);
// discriminator (3, 8, 8) -> Flatten 192 -> Dense 16 -> LeakyReLU -> Dense 1 -> sigmoid.
constexpr char kSmallSpec[] = R"pb(
  generator {
    layers { dense { units: 32 } }
    layers { batch_norm { epsilon: 0.001 momentum: 0.01 } }
    layers { activation { function: ACTIVATION_FUNCTION_RELU } }
    layers { dense { units: 192 } }
    layers { activation { function: ACTIVATION_FUNCTION_TANH } }
    layers { reshape { channels: 3 height: 8 width: 8 } }
  }
  discriminator {
    layers { flatten {} }
    layers { dense { units: 16 } }
    layers { activation { function: ACTIVATION_FUNCTION_LEAKY_RELU alpha: 0.2 } }
    layers { dense { units: 1 } }
    layers { activation { function: ACTIVATION_FUNCTION_SIGMOID } }
  }
  generator_optimizer { learning_rate: 0.01 beta1: 0.5 beta2: 0.999 epsilon: 1e-7 }
  discriminator_optimizer { learning_rate: 0.01 beta1: 0.5 beta2: 0.999 epsilon: 1e-7 }
  noise { distribution: NOISE_DISTRIBUTION_UNIFORM dim: 8 }
  image_shape { height: 8 width: 8 channels: 3 }
  batch_size: 4
)pb";

gan::v1::GanSpec SmallSpec() { return gan::testing::ParseGanSpec(kSmallSpec); }

// Runs `steps` more iterations on synthetic images.
void Train(GanTrainer& trainer, int steps) {
  const gan::v1::GanSpec& spec = trainer.spec();
  for (int i = 0; i < steps; ++i) {
    const ImageDataset images =
        MakeSyntheticDataset(spec.batch_size(), 100 + trainer.step(), kHeight, kWidth, kChannels);
    std::vector<int64_t> indices(spec.batch_size());
    for (int b = 0; b < spec.batch_size(); ++b) indices[b] = b;
    std::vector<float> real(trainer.real_batch_size());
    images.FillBatch(indices, real.data());
    SeededRandomness randomness(7, trainer.step(), spec.noise().distribution());
    trainer.Step(real, randomness);
  }
}

// A Glorot-initialised trainer after `steps` iterations.
std::unique_ptr<GanTrainer> MakeTrainer(uint64_t init_seed, int steps) {
  auto trainer = GanTrainer::Create(SmallSpec());
  EXPECT_THAT(trainer.status(), IsOk());
  if (!trainer.ok()) return nullptr;
  InitializeGlorotUniform(init_seed, &(*trainer)->generator());
  InitializeGlorotUniform(init_seed + 1, &(*trainer)->discriminator());
  Train(**trainer, steps);
  return *std::move(trainer);
}

void Save(const std::string& path, GanTrainer& trainer) {
  ASSERT_THAT(SaveCheckpoint(path, trainer, {trainer.step(), 0, 7}), IsOk());
}

std::vector<uint8_t> RandomBytes(int64_t n, uint64_t seed) {
  std::vector<uint8_t> bytes(n);
  uint64_t x = seed;
  for (uint8_t& b : bytes) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    b = static_cast<uint8_t>(x >> 56);
  }
  return bytes;
}

std::string FloatBytes(const std::vector<float>& values) {
  std::string bytes(values.size() * sizeof(float), '\0');
  std::memcpy(bytes.data(), values.data(), bytes.size());  // x86-64: little-endian
  return bytes;
}

gan::v1::ScoreRequest Uint8Request(const std::vector<uint8_t>& nhwc, int64_t n) {
  gan::v1::ScoreRequest request;
  for (int64_t d : {n, int64_t{kHeight}, int64_t{kWidth}, int64_t{kChannels}}) {
    request.add_shape(d);
  }
  request.set_uint8_pixels(std::string(nhwc.begin(), nhwc.end()));
  return request;
}

gan::v1::ScoreRequest FloatRequest(const std::vector<float>& nhwc, int64_t n) {
  gan::v1::ScoreRequest request;
  for (int64_t d : {n, int64_t{kHeight}, int64_t{kWidth}, int64_t{kChannels}}) {
    request.add_shape(d);
  }
  request.set_float_pixels(FloatBytes(nhwc));
  return request;
}

// (n, H, W, C) -> (n, C, H, W), written out independently of the engine.
std::vector<float> NhwcToNchw(const std::vector<float>& nhwc, int64_t n) {
  std::vector<float> nchw(nhwc.size());
  for (int64_t i = 0; i < n; ++i)
    for (int y = 0; y < kHeight; ++y)
      for (int x = 0; x < kWidth; ++x)
        for (int c = 0; c < kChannels; ++c)
          nchw[((i * kChannels + c) * kHeight + y) * kWidth + x] =
              nhwc[((i * kHeight + y) * kWidth + x) * kChannels + c];
  return nchw;
}

struct Scores {
  std::vector<float> logits, probabilities;
};

// The trainer's discriminator run directly on NCHW images.
Scores ScoreDirectly(GanTrainer& trainer, const std::vector<float>& nchw, int64_t n) {
  Scorer scorer(trainer.shapes().discriminator, &trainer.discriminator());
  Scores s{std::vector<float>(n), std::vector<float>(n)};
  EXPECT_THAT(scorer.Score(nchw, n, absl::MakeSpan(s.logits), absl::MakeSpan(s.probabilities)),
              IsOk());
  return s;
}

// Within float rounding: oneDNN may split reductions differently when threads compete.
bool Close(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!(std::fabs(a[i] - b[i]) <= 1e-5f + 1e-5f * std::fabs(b[i]))) return false;
  }
  return true;
}

// Pixels equal up to one step (a value on a rounding boundary may land either side).
bool ClosePixels(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::abs(static_cast<uint8_t>(a[i]) - static_cast<uint8_t>(b[i])) > 1) return false;
  }
  return true;
}

std::vector<float> Logits(const gan::v1::ScoreResponse& r) {
  return {r.logits().begin(), r.logits().end()};
}
std::vector<float> Probabilities(const gan::v1::ScoreResponse& r) {
  return {r.probabilities().begin(), r.probabilities().end()};
}

class ScoringEngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir("checkpoints");
    path_ = dir_ + "/step-2.safetensors";
    trainer_ = MakeTrainer(3, 2);
    ASSERT_NE(trainer_, nullptr);
    Save(path_, *trainer_);
  }

  std::string dir_, path_;
  std::unique_ptr<GanTrainer> trainer_;
};

TEST_F(ScoringEngineTest, Uint8ScoresMatchTheDiscriminatorRunDirectly) {
  ScoringOptions options = ScoringOptionsFrom(Options{});
  options.chunk = 4;  // 11 images: two full chunks and a tail
  ScoringEngine engine(options);
  constexpr int64_t n = 11;
  const std::vector<uint8_t> pixels = RandomBytes(n * kImageBytes, 1);
  GAN_ASSERT_OK_AND_ASSIGN(gan::v1::ScoreResponse response,
                           engine.Score(path_, Uint8Request(pixels, n)));

  std::vector<float> nhwc(pixels.size());
  for (size_t i = 0; i < pixels.size(); ++i) nhwc[i] = pixels[i] / 127.5f - 1.0f;
  const Scores expected = ScoreDirectly(*trainer_, NhwcToNchw(nhwc, n), n);
  ExpectAllClose("logits", Logits(response), expected.logits, 1e-5, 1e-5);
  ExpectAllClose("probabilities", Probabilities(response), expected.probabilities, 1e-6, 1e-5);
  EXPECT_EQ(response.checkpoint_step(), 2);
  for (float p : response.probabilities()) {
    EXPECT_GT(p, 0.0f);
    EXPECT_LT(p, 1.0f);
  }
}

TEST_F(ScoringEngineTest, FloatScoresMatchTheDiscriminatorRunDirectly) {
  ScoringEngine engine(ScoringOptionsFrom(Options{}));
  constexpr int64_t n = 5;
  const std::vector<uint8_t> noise = RandomBytes(n * kImageBytes, 2);
  std::vector<float> nhwc(noise.size());
  for (size_t i = 0; i < noise.size(); ++i) nhwc[i] = noise[i] / 255.0f * 2.0f - 1.0f;
  nhwc[0] = -1.0f;  // both ends of the range are accepted
  nhwc[1] = 1.0f;
  GAN_ASSERT_OK_AND_ASSIGN(gan::v1::ScoreResponse response,
                           engine.Score(path_, FloatRequest(nhwc, n)));
  const Scores expected = ScoreDirectly(*trainer_, NhwcToNchw(nhwc, n), n);
  ExpectAllClose("logits", Logits(response), expected.logits, 1e-5, 1e-5);
  ExpectAllClose("probabilities", Probabilities(response), expected.probabilities, 1e-6, 1e-5);
  EXPECT_EQ(response.checkpoint_step(), 2);
}

// The seed discriminator exported from PyTorch (weights only), put into a checkpoint of the seed
// preset, scores the reference images as PyTorch did.
TEST(ScoringEngineSeedTest, PyTorchSeedDiscriminatorScoresAsInPyTorch) {
  GAN_ASSERT_OK_AND_ASSIGN(SafeTensors weights,
                           ReadSafeTensorsFile(::gan::testing::TestDataPath(
                               "reference/interchange/seed_discriminator.safetensors")));
  GAN_ASSERT_OK_AND_ASSIGN(SafeTensors outputs,
                           ReadSafeTensorsFile(::gan::testing::TestDataPath(
                               "reference/interchange/seed_discriminator_outputs.safetensors")));
  GAN_ASSERT_OK_AND_ASSIGN(gan::v1::GanSpec spec, PresetSpec("seed"));
  GAN_ASSERT_OK_AND_ASSIGN(std::unique_ptr<GanTrainer> trainer, GanTrainer::Create(spec));
  SafeTensors checkpoint = MakeCheckpoint(*trainer, {41, 0, 1});
  for (const auto& [name, tensor] : weights.tensors) checkpoint.tensors[name] = tensor;
  const std::string path = MakeTempDir("seed") + "/seed.safetensors";
  ASSERT_THAT(WriteSafeTensorsFile(path, checkpoint), IsOk());

  ASSERT_EQ(outputs.tensors["images"].shape.size(), 4u);
  const int64_t n = outputs.tensors["images"].shape[0];
  GAN_ASSERT_OK_AND_ASSIGN(std::vector<float> images, GetF32(outputs, "images", {n, 1, 28, 28}));
  GAN_ASSERT_OK_AND_ASSIGN(std::vector<float> expected_logits, GetF32(outputs, "logits", {n, 1}));
  GAN_ASSERT_OK_AND_ASSIGN(std::vector<float> expected_probabilities,
                           GetF32(outputs, "probabilities", {n, 1}));

  ScoringEngine engine(ScoringOptionsFrom(Options{}));
  gan::v1::ScoreRequest request;
  for (int64_t d : {n, int64_t{28}, int64_t{28}, int64_t{1}}) request.add_shape(d);
  request.set_float_pixels(FloatBytes(images));  // one channel: NCHW and NHWC coincide
  GAN_ASSERT_OK_AND_ASSIGN(gan::v1::ScoreResponse response, engine.Score(path, request));
  ExpectAllClose("logits", Logits(response), expected_logits, 1e-4, 0);
  ExpectAllClose("probabilities", Probabilities(response), expected_probabilities, 1e-4, 0);
  EXPECT_EQ(response.checkpoint_step(), 41);

  // The weights-only file itself carries no spec.
  EXPECT_THAT(
      engine.Score(
          ::gan::testing::TestDataPath("reference/interchange/seed_discriminator.safetensors"),
          request),
      StatusIs(kInvalid,
               AllOf(HasSubstr("seed_discriminator.safetensors"), HasSubstr("metadata 'spec'"))));
}

TEST_F(ScoringEngineTest, MalformedRequestsAreInvalidArgumentNamingTheField) {
  ScoringEngine engine(ScoringOptionsFrom(Options{}));
  const gan::v1::ScoreRequest valid = Uint8Request(RandomBytes(2 * kImageBytes, 3), 2);
  ASSERT_THAT(engine.Score(path_, valid).status(), IsOk());

  struct Case {
    std::string name;
    std::function<void(gan::v1::ScoreRequest*)> mutate;
    std::string message;
  };
  auto set_shape = [](std::vector<int64_t> shape) {
    return [shape](gan::v1::ScoreRequest* r) {
      r->clear_shape();
      for (int64_t d : shape) r->add_shape(d);
    };
  };
  auto set_floats = [](std::vector<float> values) {
    return [values](gan::v1::ScoreRequest* r) { r->set_float_pixels(FloatBytes(values)); };
  };
  std::vector<float> with_1_5(2 * kImageBytes, 0.0f);
  with_1_5[3] = 1.5f;
  std::vector<float> with_nan(2 * kImageBytes, 0.0f);
  with_nan[7] = std::numeric_limits<float>::quiet_NaN();
  std::vector<float> with_inf(2 * kImageBytes, 0.0f);
  with_inf[0] = -std::numeric_limits<float>::infinity();
  std::vector<float> below(2 * kImageBytes, 0.0f);
  below.back() = -1.0001f;

  const std::vector<Case> cases = {
      {"no shape", set_shape({}), "shape: expected 4 dimensions (N, H, W, C), got 0"},
      {"3 dims", set_shape({2, 8, 24}), "shape: expected 4 dimensions (N, H, W, C), got 3"},
      {"5 dims", set_shape({2, 8, 8, 3, 1}), "shape: expected 4 dimensions"},
      {"zero N", set_shape({0, 8, 8, 3}), "shape: every dimension must be positive"},
      {"negative", set_shape({2, 8, -8, 3}), "shape: every dimension must be positive"},
      {"wrong size", set_shape({2, 32, 32, 3}), "shape: expected (N, 8, 8, 3), got (2, 32, 32, 3)"},
      {"wrong channels", set_shape({2, 8, 8, 1}), "shape: expected (N, 8, 8, 3), got (2, 8, 8, 1)"},
      {"NCHW by mistake", set_shape({2, 3, 8, 8}),
       "shape: expected (N, 8, 8, 3), got (2, 3, 8, 8)"},
      {"no pixels", [](gan::v1::ScoreRequest* r) { r->clear_pixels(); },
       "pixels: set uint8_pixels or float_pixels"},
      {"short uint8", [](gan::v1::ScoreRequest* r) { r->set_uint8_pixels(std::string(100, 'x')); },
       "uint8_pixels: 100 bytes for shape (2, 8, 8, 3) which needs 384"},
      {"empty uint8", [](gan::v1::ScoreRequest* r) { r->set_uint8_pixels(""); },
       "uint8_pixels: 0 bytes for shape (2, 8, 8, 3) which needs 384"},
      {"long uint8", [](gan::v1::ScoreRequest* r) { r->set_uint8_pixels(std::string(385, 'x')); },
       "uint8_pixels: 385 bytes"},
      {"uint8 count as float",
       [](gan::v1::ScoreRequest* r) { r->set_float_pixels(std::string(384, '\0')); },
       "float_pixels: 384 bytes for shape (2, 8, 8, 3) which needs 1536"},
      {"float 1.5", set_floats(with_1_5), "float_pixels: value 1.5 at index 3 is outside [-1, 1]"},
      {"float below", set_floats(below), "float_pixels: value -1.0001 at index 383 is outside"},
      {"float nan", set_floats(with_nan), "float_pixels: value nan at index 7 is not a finite"},
      {"float inf", set_floats(with_inf), "float_pixels: value -inf at index 0 is not a finite"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    gan::v1::ScoreRequest request = valid;
    c.mutate(&request);
    EXPECT_THAT(engine.Score(path_, request), StatusIs(kInvalid, HasSubstr(c.message)));
  }
}

TEST_F(ScoringEngineTest, ShapeLimitsAreCheckedBeforeLoadingOrAllocating) {
  ScoringOptions options = ScoringOptionsFrom(Options{});
  options.max_score_batch = 16;
  ScoringEngine engine(options);
  // A path that does not exist: these must fail on the request alone.
  const std::string missing = dir_ + "/missing.safetensors";

  gan::v1::ScoreRequest over = Uint8Request(RandomBytes(17 * kImageBytes, 4), 17);
  EXPECT_THAT(engine.Score(missing, over),
              StatusIs(kInvalid, HasSubstr("shape: N 17 exceeds --max_score_batch 16")));
  EXPECT_THAT(engine.Score(path_, over), StatusIs(kInvalid, HasSubstr("--max_score_batch 16")));
  // Over the limit, the payload is not even looked at.
  over.set_uint8_pixels("");
  EXPECT_THAT(engine.Score(path_, over), StatusIs(kInvalid, HasSubstr("--max_score_batch 16")));

  const std::vector<std::vector<int64_t>> overflowing = {
      {int64_t{1} << 40, int64_t{1} << 40, 1, 1},
      {1, int64_t{1} << 31, int64_t{1} << 31, int64_t{1} << 31},
      {1, std::numeric_limits<int64_t>::max(), 2, 1},
      {1, int64_t{1} << 31, int64_t{1} << 31, 1},  // fits in int64, but not as float32 bytes
  };
  for (const std::vector<int64_t>& shape : overflowing) {
    gan::v1::ScoreRequest request;
    for (int64_t d : shape) request.add_shape(d);
    request.set_uint8_pixels("abc");
    EXPECT_THAT(engine.Score(missing, request),
                StatusIs(kInvalid, HasSubstr("shape: element count overflows")));
    EXPECT_THAT(engine.Score(path_, request),
                StatusIs(kInvalid, HasSubstr("shape: element count overflows")));
  }

  gan::v1::ScoreRequest no_pixels = Uint8Request({}, 2);
  no_pixels.clear_pixels();
  EXPECT_THAT(engine.Score(missing, no_pixels), StatusIs(kInvalid, HasSubstr("pixels: set")));

  // N at the limit is fine.
  const gan::v1::ScoreRequest at_limit = Uint8Request(RandomBytes(16 * kImageBytes, 5), 16);
  GAN_ASSERT_OK_AND_ASSIGN(gan::v1::ScoreResponse response, engine.Score(path_, at_limit));
  EXPECT_EQ(response.logits_size(), 16);
  EXPECT_EQ(engine.models_loaded(), 1);
}

TEST_F(ScoringEngineTest, MissingOrCorruptCheckpointsGiveTheLoadersStatusWithThePath) {
  ScoringEngine engine(ScoringOptionsFrom(Options{}));
  const gan::v1::ScoreRequest request = Uint8Request(RandomBytes(kImageBytes, 6), 1);

  const std::string missing = dir_ + "/missing.safetensors";
  EXPECT_THAT(engine.Score(missing, request),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr(missing)));
  EXPECT_THAT(engine.Sample(missing, 1, 0),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr(missing)));

  const std::string garbage = dir_ + "/garbage.safetensors";
  std::ofstream(garbage) << "not a safetensors file at all";
  EXPECT_THAT(engine.Score(garbage, request), StatusIs(kInvalid, HasSubstr(garbage)));

  // Truncated: a real checkpoint cut in half.
  std::string bytes;
  {
    std::ifstream in(path_, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  const std::string truncated = dir_ + "/truncated.safetensors";
  std::ofstream(truncated, std::ios::binary) << bytes.substr(0, bytes.size() / 2);
  EXPECT_THAT(engine.Score(truncated, request), StatusIs(kInvalid, HasSubstr(truncated)));

  // Weights that do not match the spec in the metadata.
  GAN_ASSERT_OK_AND_ASSIGN(SafeTensors checkpoint, ReadSafeTensorsFile(path_));
  checkpoint.tensors.erase("discriminator.1.weight");
  const std::string incomplete = dir_ + "/incomplete.safetensors";
  ASSERT_THAT(WriteSafeTensorsFile(incomplete, checkpoint), IsOk());
  EXPECT_THAT(
      engine.Score(incomplete, request),
      StatusIs(kInvalid, AllOf(HasSubstr(incomplete), HasSubstr("discriminator.1.weight"))));

  EXPECT_THAT(engine.Score(dir_, request), StatusIs(kInvalid, HasSubstr(dir_)));

  // Failures are not cached; a good file still loads.
  EXPECT_EQ(engine.cached_models(), 0);
  EXPECT_EQ(engine.models_loaded(), 0);
  EXPECT_THAT(engine.Score(path_, request).status(), IsOk());
  EXPECT_EQ(engine.cached_models(), 1);
}

TEST_F(ScoringEngineTest, SamplesAreReproducibleAndMatchTheGeneratorRunDirectly) {
  ScoringOptions options = ScoringOptionsFrom(Options{});
  options.chunk = 4;
  options.max_sample_count = 10;
  ScoringEngine engine(options);

  GAN_ASSERT_OK_AND_ASSIGN(gan::v1::SampleImagesResponse a, engine.Sample(path_, 10, 42));
  EXPECT_EQ(a.count(), 10);
  EXPECT_EQ(a.height(), kHeight);
  EXPECT_EQ(a.width(), kWidth);
  EXPECT_EQ(a.channels(), kChannels);
  EXPECT_EQ(a.checkpoint_step(), 2);
  ASSERT_EQ(static_cast<int64_t>(a.pixels().size()), 10 * kImageBytes);

  GAN_ASSERT_OK_AND_ASSIGN(gan::v1::SampleImagesResponse again, engine.Sample(path_, 10, 42));
  EXPECT_EQ(again.pixels(), a.pixels());
  GAN_ASSERT_OK_AND_ASSIGN(gan::v1::SampleImagesResponse other, engine.Sample(path_, 10, 43));
  EXPECT_NE(other.pixels(), a.pixels());
  // Fewer images are a prefix of more (image i depends only on the seed and i).
  GAN_ASSERT_OK_AND_ASSIGN(gan::v1::SampleImagesResponse three, engine.Sample(path_, 3, 42));
  EXPECT_EQ(three.pixels(), a.pixels().substr(0, 3 * kImageBytes));
  // A fresh engine (fresh load) gives the same bytes.
  ScoringEngine fresh(options);
  GAN_ASSERT_OK_AND_ASSIGN(gan::v1::SampleImagesResponse reloaded, fresh.Sample(path_, 10, 42));
  EXPECT_EQ(reloaded.pixels(), a.pixels());

  // The trainer's own generator, sampled directly, NHWC.
  GAN_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Sampler> sampler,
                           Sampler::Create(trainer_->shapes().generator, &trainer_->generator(),
                                           trainer_->spec().noise(), 4));
  std::vector<float> images(10 * sampler->image_floats());
  ASSERT_THAT(sampler->Generate(10, 42, absl::MakeSpan(images)), IsOk());
  const std::vector<uint8_t> expected = ToPixelsNhwc(images, 10, kChannels, kHeight, kWidth);
  EXPECT_EQ(a.pixels(), std::string(expected.begin(), expected.end()));

  for (int32_t count : {0, -1, 11, std::numeric_limits<int32_t>::min()}) {
    EXPECT_THAT(engine.Sample(path_, count, 42),
                StatusIs(kInvalid, AllOf(HasSubstr("count"), HasSubstr("[1, 10]"))))
        << count;
  }
}

TEST_F(ScoringEngineTest, CacheReusesLoadedModelsAndReloadsRewrittenFiles) {
  ScoringOptions options = ScoringOptionsFrom(Options{});
  options.max_cached_models = 2;
  ScoringEngine engine(options);
  const gan::v1::ScoreRequest request = Uint8Request(RandomBytes(3 * kImageBytes, 7), 3);

  GAN_ASSERT_OK_AND_ASSIGN(gan::v1::ScoreResponse first, engine.Score(path_, request));
  GAN_ASSERT_OK_AND_ASSIGN(gan::v1::ScoreResponse second, engine.Score(path_, request));
  ASSERT_THAT(engine.Sample(path_, 2, 1).status(), IsOk());
  EXPECT_EQ(engine.models_loaded(), 1);
  EXPECT_EQ(engine.cached_models(), 1);
  EXPECT_EQ(Logits(first), Logits(second));

  // The trainer goes on and overwrites the file: the engine sees the new weights and step.
  Train(*trainer_, 1);
  Save(path_, *trainer_);
  GAN_ASSERT_OK_AND_ASSIGN(gan::v1::ScoreResponse rewritten, engine.Score(path_, request));
  EXPECT_EQ(rewritten.checkpoint_step(), 3);
  EXPECT_NE(Logits(rewritten), Logits(first));
  EXPECT_EQ(engine.models_loaded(), 2);
  EXPECT_EQ(engine.cached_models(), 1);

  // LRU over three files with room for two.
  const std::string b = dir_ + "/b.safetensors", c = dir_ + "/c.safetensors";
  Save(b, *MakeTrainer(10, 1));
  Save(c, *MakeTrainer(20, 1));
  ASSERT_THAT(engine.Score(b, request).status(), IsOk());  // cache: b, path_
  EXPECT_EQ(engine.models_loaded(), 3);
  ASSERT_THAT(engine.Score(path_, request).status(), IsOk());  // path_, b
  EXPECT_EQ(engine.models_loaded(), 3);
  ASSERT_THAT(engine.Score(c, request).status(), IsOk());  // c, path_ (b evicted)
  EXPECT_EQ(engine.models_loaded(), 4);
  EXPECT_EQ(engine.cached_models(), 2);
  ASSERT_THAT(engine.Score(path_, request).status(), IsOk());  // still cached
  EXPECT_EQ(engine.models_loaded(), 4);
  ASSERT_THAT(engine.Score(b, request).status(), IsOk());  // loaded again
  EXPECT_EQ(engine.models_loaded(), 5);
  EXPECT_EQ(engine.cached_models(), 2);
}

TEST_F(ScoringEngineTest, ConcurrentRequestsGiveTheSameAnswers) {
  const std::string other = dir_ + "/other.safetensors";
  Save(other, *MakeTrainer(30, 2));
  ScoringOptions options = ScoringOptionsFrom(Options{});
  options.chunk = 4;
  ScoringEngine engine(options);
  const std::vector<std::string> paths = {path_, other};

  // Single-threaded answers, from a separate engine so the threads also race on the first load.
  constexpr int kRequests = 4;
  std::vector<gan::v1::ScoreRequest> requests;
  std::vector<std::vector<float>> expected_logits;
  std::vector<std::string> expected_samples;
  {
    ScoringEngine reference(options);
    for (int r = 0; r < kRequests; ++r) {
      const int64_t n = 1 + 3 * r;  // 1, 4, 7, 10: one tail, one chunk, chunk + tail
      requests.push_back(Uint8Request(RandomBytes(n * kImageBytes, 100 + r), n));
      for (const std::string& path : paths) {
        GAN_ASSERT_OK_AND_ASSIGN(gan::v1::ScoreResponse response,
                                 reference.Score(path, requests.back()));
        expected_logits.push_back(Logits(response));
      }
    }
    for (const std::string& path : paths) {
      GAN_ASSERT_OK_AND_ASSIGN(gan::v1::SampleImagesResponse s, reference.Sample(path, 6, 9));
      expected_samples.push_back(s.pixels());
    }
  }

  constexpr int kThreads = 8;
  std::vector<int> mismatches(kThreads, 0), failures(kThreads, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < 5; ++round) {
        for (int r = 0; r < kRequests; ++r) {
          const int p = (t + r + round) % 2;
          absl::StatusOr<gan::v1::ScoreResponse> response = engine.Score(paths[p], requests[r]);
          if (!response.ok()) {
            ++failures[t];
            continue;
          }
          if (!Close(Logits(*response), expected_logits[r * 2 + p])) ++mismatches[t];
        }
        const int p = (t + round) % 2;
        absl::StatusOr<gan::v1::SampleImagesResponse> sample = engine.Sample(paths[p], 6, 9);
        if (!sample.ok()) {
          ++failures[t];
        } else if (!ClosePixels(sample->pixels(), expected_samples[p])) {
          ++mismatches[t];
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_EQ(failures[t], 0) << "thread " << t;
    EXPECT_EQ(mismatches[t], 0) << "thread " << t;
  }
  // Each file was loaded once despite the concurrent first requests.
  EXPECT_EQ(engine.models_loaded(), 2);
  EXPECT_EQ(engine.cached_models(), 2);
}

}  // namespace
}  // namespace gan::server
