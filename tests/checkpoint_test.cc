// Checkpoints (core/checkpoint.h) on a small GAN with every kind of parameter:
// Dense, Conv2D, Conv2DTranspose, BatchNorm (running statistics and
// num_batches_tracked) and Adam moments. What a user relies on: the names and
// layouts PyTorch loads, a save/load round trip that continues training bit for
// bit, every kind of corrupt or mismatched file rejected with INVALID_ARGUMENT
// naming the problem while the trainer stays untouched, and an interrupted
// overwrite leaving the previous checkpoint intact.

#include "core/checkpoint.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/dataset.h"
#include "core/gan_trainer.h"
#include "core/init.h"
#include "core/safetensors.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "io/atomic_file.h"
#include "tests/small_gan_spec.h"
#include "tests/test_util.h"

namespace gan {
namespace {

using ::gan::testing::IsOk;
using ::gan::testing::MakeTempDir;
using ::gan::testing::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr auto kInvalid = absl::StatusCode::kInvalidArgument;
constexpr uint64_t kSeed = 11;

// 8x8x1 images, noise 8. Generator: (8) -> Dense 64 -> (4,4,4) -> x2 -> (4,8,8)
// -> ConvT -> (3,8,8)
// -> Conv -> (1,8,8). Discriminator: (1,8,8) -> Conv s2 -> (4,4,4) -> Flatten
// 64 -> Dense 1.
gan::v1::GanSpec SmallSpec() {
  return gan::testing::SmallConvGanSpec(gan::testing::SmallConvLayer5::kConv2DTranspose,
                                        gan::v1::NOISE_DISTRIBUTION_UNIFORM);
}

// A trainer with Glorot-initialised weights (seeded by init_seed), after
// `steps` iterations on synthetic images with SeededRandomness(kSeed, step).
std::unique_ptr<GanTrainer> MakeTrainer(const gan::v1::GanSpec& spec, uint64_t init_seed,
                                        int steps) {
  auto trainer = GanTrainer::Create(spec);
  EXPECT_THAT(trainer.status(), IsOk());
  if (!trainer.ok()) return nullptr;
  InitializeGlorotUniform(init_seed, &(*trainer)->generator());
  InitializeGlorotUniform(init_seed + 1, &(*trainer)->discriminator());
  for (int i = 0; i < steps; ++i) {
    std::vector<float> real((*trainer)->real_batch_size());
    const ImageDataset images = MakeSyntheticDataset(spec.batch_size(), 100 + i, 8, 8, 1);
    std::vector<int64_t> indices(spec.batch_size());
    for (int b = 0; b < spec.batch_size(); ++b) indices[b] = b;
    images.FillBatch(indices, real.data());
    SeededRandomness randomness(kSeed, (*trainer)->step(), spec.noise().distribution());
    (*trainer)->Step(real, randomness);
  }
  return std::move(trainer).value();
}

// Everything a checkpoint must carry, read through the trainer's own accessors
// (independent of MakeCheckpoint).
struct NetworkState {
  std::vector<float> trainable, state, exp_avg, exp_avg_sq;
  std::map<int, int64_t> batches_tracked;
  int64_t adam_steps = 0;
};
struct TrainerState {
  NetworkState generator, discriminator;
  int64_t step = 0;
};

NetworkState CaptureNetwork(ParameterStore& store, Adam& adam) {
  return {store.trainable(), store.state(),           adam.exp_avg(),
          adam.exp_avg_sq(), store.batches_tracked(), adam.steps()};
}

TrainerState Capture(GanTrainer& trainer) {
  return {CaptureNetwork(trainer.generator(), trainer.generator_optimizer()),
          CaptureNetwork(trainer.discriminator(), trainer.discriminator_optimizer()),
          trainer.step()};
}

bool SameBits(const float* a, const float* b, int64_t n) {
  return std::memcmp(a, b, n * sizeof(float)) == 0;
}

// Bitwise comparison tensor by tensor, so a failure names the tensor.
void ExpectSameNetwork(const ParameterStore& layout, const NetworkState& actual,
                       const NetworkState& expected) {
  ASSERT_EQ(actual.trainable.size(), expected.trainable.size());
  ASSERT_EQ(actual.state.size(), expected.state.size());
  ASSERT_EQ(actual.exp_avg.size(), expected.exp_avg.size());
  ASSERT_EQ(actual.exp_avg_sq.size(), expected.exp_avg_sq.size());
  for (const ParameterStore::Entry& e : layout.entries()) {
    const int64_t n = NumElements(e.dims);
    const auto& a = e.trainable ? actual.trainable : actual.state;
    const auto& b = e.trainable ? expected.trainable : expected.state;
    EXPECT_TRUE(SameBits(a.data() + e.offset, b.data() + e.offset, n)) << e.name;
    if (!e.trainable) continue;
    EXPECT_TRUE(SameBits(actual.exp_avg.data() + e.offset, expected.exp_avg.data() + e.offset, n))
        << "optimizer." << e.name << ".exp_avg";
    EXPECT_TRUE(
        SameBits(actual.exp_avg_sq.data() + e.offset, expected.exp_avg_sq.data() + e.offset, n))
        << "optimizer." << e.name << ".exp_avg_sq";
  }
  EXPECT_EQ(actual.batches_tracked, expected.batches_tracked) << layout.model_name();
  EXPECT_EQ(actual.adam_steps, expected.adam_steps) << layout.model_name();
}

void ExpectSameState(GanTrainer& layout, const TrainerState& actual, const TrainerState& expected) {
  ExpectSameNetwork(layout.generator(), actual.generator, expected.generator);
  ExpectSameNetwork(layout.discriminator(), actual.discriminator, expected.discriminator);
  EXPECT_EQ(actual.step, expected.step);
}

std::string ReadBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void WriteBytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
}

TEST(CheckpointTest, NamesLayoutsAndMetadataFollowTheConventions) {
  const gan::v1::GanSpec spec = SmallSpec();
  std::unique_ptr<GanTrainer> trainer = MakeTrainer(spec, 1, 2);
  ASSERT_NE(trainer, nullptr);
  const SafeTensors st = MakeCheckpoint(*trainer, {2, 1, kSeed});

  // name -> (dtype, shape) of every tensor, nothing else.
  std::map<std::string, std::pair<DType, std::vector<int64_t>>> expected;
  auto add = [&](const std::string& name, std::vector<int64_t> shape, bool trainable = true) {
    expected[name] = {DType::kF32, shape};
    if (!trainable) return;
    expected["optimizer." + name + ".exp_avg"] = {DType::kF32, shape};
    expected["optimizer." + name + ".exp_avg_sq"] = {DType::kF32, shape};
  };
  auto add_batch_norm = [&](const std::string& prefix, int64_t c) {
    add(prefix + ".weight", {c});
    add(prefix + ".bias", {c});
    add(prefix + ".running_mean", {c}, /*trainable=*/false);
    add(prefix + ".running_var", {c}, /*trainable=*/false);
    expected[prefix + ".num_batches_tracked"] = {DType::kI64, {}};
  };
  add("generator.0.weight", {64, 8});  // Dense [out, in]
  add("generator.0.bias", {64});
  add_batch_norm("generator.1", 64);
  add("generator.5.weight", {4, 3, 3, 3});  // Conv2DTranspose IOHW
  add("generator.5.bias", {3});
  add_batch_norm("generator.6", 3);
  add("generator.8.weight", {1, 3, 3, 3});  // Conv2D OIHW
  add("generator.8.bias", {1});
  add("discriminator.0.weight", {4, 1, 3, 3});
  add("discriminator.0.bias", {4});
  add("discriminator.4.weight", {1, 64});
  add("discriminator.4.bias", {1});

  std::vector<std::string> names, expected_names;
  for (const auto& [name, t] : st.tensors) names.push_back(name);
  for (const auto& [name, t] : expected) expected_names.push_back(name);
  EXPECT_EQ(names, expected_names);
  for (const auto& [name, dtype_shape] : expected) {
    auto it = st.tensors.find(name);
    if (it == st.tensors.end()) continue;
    EXPECT_EQ(it->second.dtype, dtype_shape.first) << name;
    EXPECT_EQ(it->second.shape, dtype_shape.second) << name;
    EXPECT_EQ(it->second.bytes.size(),
              NumElements(dtype_shape.second) * DTypeSize(dtype_shape.first))
        << name;
  }

  // Values: each weight is the store's tensor; G's BatchNorms ran in both
  // passes of 2 steps.
  for (ParameterStore* store : {&trainer->generator(), &trainer->discriminator()}) {
    for (const ParameterStore::Entry& e : store->entries()) {
      GAN_ASSERT_OK_AND_ASSIGN(std::vector<float> values, GetF32(st, e.name, e.dims));
      EXPECT_TRUE(SameBits(values.data(), store->Data(e), values.size())) << e.name;
    }
  }
  for (const char* name : {"generator.1.num_batches_tracked", "generator.6.num_batches_tracked"}) {
    GAN_ASSERT_OK_AND_ASSIGN(std::vector<int64_t> count, GetI64(st, name));
    EXPECT_EQ(count, std::vector<int64_t>{4}) << name;
  }
  const ParameterStore::Entry* g0 = trainer->generator().Find(0, "weight");
  ASSERT_NE(g0, nullptr);
  GAN_ASSERT_OK_AND_ASSIGN(std::vector<float> exp_avg,
                           GetF32(st, "optimizer.generator.0.weight.exp_avg", {64, 8}));
  EXPECT_TRUE(SameBits(exp_avg.data(), trainer->generator_optimizer().exp_avg().data() + g0->offset,
                       64 * 8));

  EXPECT_EQ(st.metadata.at("format"), kCheckpointFormat);
  EXPECT_EQ(st.metadata.at("step"), "2");
  EXPECT_EQ(st.metadata.at("epoch"), "1");
  EXPECT_EQ(st.metadata.at("seed"), absl::StrCat(kSeed));
  EXPECT_THAT(st.metadata.at("rng"), HasSubstr(absl::StrCat("seed=", kSeed)));
  EXPECT_EQ(st.metadata.at("optimizer.generator.steps"), "2");
  EXPECT_EQ(st.metadata.at("optimizer.discriminator.steps"), "2");
  GAN_ASSERT_OK_AND_ASSIGN(gan::v1::GanSpec stored_spec, CheckpointSpec(st));
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(stored_spec, spec))
      << stored_spec.DebugString();
  EXPECT_THAT(st.metadata.at("spec"), HasSubstr("\"batch_size\":4"))
      << "spec JSON uses the proto field names";

  // The file holds exactly this, and saving is deterministic.
  const std::string dir = MakeTempDir("ckpt");
  ASSERT_THAT(SaveCheckpoint(dir + "/a.safetensors", *trainer, {2, 1, kSeed}), IsOk());
  ASSERT_THAT(SaveCheckpoint(dir + "/b.safetensors", *trainer, {2, 1, kSeed}), IsOk());
  EXPECT_EQ(ReadBytes(dir + "/a.safetensors"), ReadBytes(dir + "/b.safetensors"));
  EXPECT_EQ(ReadBytes(dir + "/a.safetensors"), SerializeSafeTensors(st));
}

TEST(CheckpointTest, RoundTripRestoresEverythingAndTrainingContinuesBitForBit) {
  const gan::v1::GanSpec spec = SmallSpec();
  std::unique_ptr<GanTrainer> original = MakeTrainer(spec, 1, 2);
  ASSERT_NE(original, nullptr);
  const std::string path = MakeTempDir("ckpt") + "/step-2.safetensors";
  ASSERT_THAT(SaveCheckpoint(path, *original, {2, 0, kSeed}), IsOk());

  // A fresh trainer with other weights, so every restored value is visible.
  std::unique_ptr<GanTrainer> restored = MakeTrainer(spec, 99, 0);
  ASSERT_NE(restored, nullptr);
  GAN_ASSERT_OK_AND_ASSIGN(CheckpointInfo info, LoadCheckpoint(path, restored.get()));
  EXPECT_EQ(info.step, 2);
  EXPECT_EQ(info.epoch, 0);
  EXPECT_EQ(info.seed, kSeed);
  EXPECT_EQ(restored->step(), 2);
  EXPECT_EQ(restored->generator().batches_tracked().at(1), 4);
  EXPECT_EQ(restored->generator().batches_tracked().at(6), 4);
  EXPECT_EQ(restored->generator_optimizer().steps(), 2);
  EXPECT_EQ(restored->discriminator_optimizer().steps(), 2);
  ExpectSameState(*original, Capture(*restored), Capture(*original));

  // The next step is identical: metrics, then every parameter, statistic and
  // moment.
  std::vector<float> real(original->real_batch_size());
  const ImageDataset images = MakeSyntheticDataset(spec.batch_size(), 7, 8, 8, 1);
  images.FillBatch(std::vector<int64_t>{0, 1, 2, 3}, real.data());
  SeededRandomness r1(kSeed, 2, spec.noise().distribution());
  SeededRandomness r2(kSeed, 2, spec.noise().distribution());
  const StepMetrics a = original->Step(real, r1);
  const StepMetrics b = restored->Step(real, r2);
  EXPECT_EQ(a.step, 2);
  ::gan::testing::ExpectBitwiseEqual(b, a);
  ExpectSameState(*original, Capture(*restored), Capture(*original));
}

// A corrupt or mismatched checkpoint must fail to load and leave the target
// trainer as it was.
class CheckpointRejectionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    spec_ = SmallSpec();
    source_ = MakeTrainer(spec_, 1, 2);
    target_ = MakeTrainer(spec_, 5, 1);  // different weights, moments, statistics and step
    ASSERT_NE(source_, nullptr);
    ASSERT_NE(target_, nullptr);
    before_ = Capture(*target_);
    dir_ = MakeTempDir("ckpt");
    good_ = MakeCheckpoint(*source_, {2, 0, kSeed});
    good_bytes_ = SerializeSafeTensors(good_);
  }

  // Writes `bytes`, loads it into the target and checks the status and that
  // nothing changed.
  template <typename Matcher>
  void ExpectRejectedBytes(const std::string& bytes, absl::StatusCode code,
                           const Matcher& message) {
    const std::string path = dir_ + "/bad.safetensors";
    WriteBytes(path, bytes);
    EXPECT_THAT(LoadCheckpoint(path, target_.get()), StatusIs(code, message));
    ExpectSameState(*target_, Capture(*target_), before_);
  }

  template <typename Matcher>
  void ExpectRejected(const SafeTensors& st, const Matcher& message) {
    ExpectRejectedBytes(SerializeSafeTensors(st), kInvalid, message);
    // The in-memory entry point behaves the same.
    EXPECT_THAT(RestoreCheckpoint(st, target_.get()), StatusIs(kInvalid, message));
    ExpectSameState(*target_, Capture(*target_), before_);
  }

  uint64_t HeaderLength() const {
    uint64_t n = 0;
    std::memcpy(&n, good_bytes_.data(), sizeof(n));
    return n;
  }

  gan::v1::GanSpec spec_;
  std::unique_ptr<GanTrainer> source_, target_;
  TrainerState before_;
  std::string dir_;
  SafeTensors good_;
  std::string good_bytes_;
};

TEST_F(CheckpointRejectionTest, GoodFileLoadsIntoTarget) {
  // The baseline of every case below: the unmodified bytes load.
  const std::string path = dir_ + "/good.safetensors";
  WriteBytes(path, good_bytes_);
  EXPECT_THAT(LoadCheckpoint(path, target_.get()), IsOk());
  ExpectSameState(*target_, Capture(*target_), Capture(*source_));
}

TEST_F(CheckpointRejectionTest, TruncatedFile) {
  const uint64_t header_end = 8 + HeaderLength();
  const uint64_t size = good_bytes_.size();
  for (uint64_t cut : {uint64_t{0}, uint64_t{5}, uint64_t{8}, header_end / 2, header_end - 1,
                       header_end, header_end + 3, (header_end + size) / 2, size - 1}) {
    SCOPED_TRACE(absl::StrCat("cut at ", cut, " of ", size, " bytes"));
    ExpectRejectedBytes(good_bytes_.substr(0, cut), kInvalid, HasSubstr("bad.safetensors"));
  }
}

TEST_F(CheckpointRejectionTest, HeaderLengthBeyondTheFile) {
  for (uint64_t n : {uint64_t{good_bytes_.size()}, uint64_t{1} << 40, ~uint64_t{0}}) {
    SCOPED_TRACE(n);
    std::string bytes = good_bytes_;
    std::memcpy(bytes.data(), &n, sizeof(n));
    ExpectRejectedBytes(bytes, kInvalid, HasSubstr("header length"));
  }
}

TEST_F(CheckpointRejectionTest, GarbageJsonHeader) {
  std::string bytes = good_bytes_;
  const std::string garbage = "{\"generator.0.weight\": {\"dtype\": \"F32\", oops";
  bytes.replace(8, garbage.size(), garbage);
  ExpectRejectedBytes(bytes, kInvalid, HasSubstr("JSON"));
  // Random bytes in place of the header.
  bytes = good_bytes_;
  for (uint64_t i = 0; i < HeaderLength(); ++i) bytes[8 + i] = static_cast<char>(i * 131 + 7);
  ExpectRejectedBytes(bytes, kInvalid, HasSubstr("JSON"));
}

TEST_F(CheckpointRejectionTest, MissingTensor) {
  for (const char* name :
       {"generator.0.weight", "generator.1.running_var", "generator.6.num_batches_tracked",
        "discriminator.4.bias", "optimizer.generator.5.weight.exp_avg",
        "optimizer.discriminator.4.bias.exp_avg_sq"}) {
    SCOPED_TRACE(name);
    SafeTensors st = good_;
    ASSERT_EQ(st.tensors.erase(name), 1u);
    ExpectRejected(st, AllOf(HasSubstr(name), HasSubstr("missing")));
  }
}

TEST_F(CheckpointRejectionTest, WrongShape) {
  struct Case {
    const char* name;
    std::vector<int64_t> shape;
  };
  // Same element count in another shape, a transposed layout, a 1-element
  // tensor as 0-d and the 0-d counter as [1]; the last optimizer tensor is
  // validated last of all.
  for (const Case& c : std::vector<Case>{{"generator.0.weight", {8, 64}},
                                         {"generator.5.weight", {3, 4, 3, 3}},
                                         {"discriminator.4.bias", {}},
                                         {"generator.1.num_batches_tracked", {1}},
                                         {"optimizer.discriminator.4.bias.exp_avg_sq", {1, 1}}}) {
    SCOPED_TRACE(c.name);
    SafeTensors st = good_;
    st.tensors.at(c.name).shape = c.shape;
    ExpectRejected(st, AllOf(HasSubstr(c.name), HasSubstr("shape")));
  }
}

TEST_F(CheckpointRejectionTest, WrongDtype) {
  {
    SafeTensors st = good_;
    Tensor& t = st.tensors.at("generator.0.weight");
    t.dtype = DType::kF64;
    t.bytes += t.bytes;  // F64 needs twice the bytes
    ExpectRejected(st, AllOf(HasSubstr("generator.0.weight"), HasSubstr("F64")));
  }
  {
    SafeTensors st = good_;
    Tensor& t = st.tensors.at("generator.6.num_batches_tracked");
    t = MakeF32Tensor({}, std::vector<float>{4.0f});  // PyTorch stores it as int64
    ExpectRejected(st, AllOf(HasSubstr("generator.6.num_batches_tracked"), HasSubstr("F32")));
  }
  {
    SafeTensors st = good_;
    Tensor& t = st.tensors.at("optimizer.discriminator.0.weight.exp_avg");
    t.dtype = DType::kI32;  // same byte size
    ExpectRejected(st,
                   AllOf(HasSubstr("optimizer.discriminator.0.weight.exp_avg"), HasSubstr("I32")));
  }
}

TEST_F(CheckpointRejectionTest, UnexpectedExtraTensor) {
  for (const char* name : {"generator.99.weight", "discriminator.2.weight", "generator.1.extra"}) {
    SCOPED_TRACE(name);
    SafeTensors st = good_;
    st.tensors[name] = MakeF32Tensor({2}, std::vector<float>{1, 2});
    ExpectRejected(st, AllOf(HasSubstr(name), HasSubstr("unexpected")));
  }
  // A BatchNorm counter on a layer without BatchNorm (Dense entry 0).
  SafeTensors st = good_;
  st.tensors["generator.0.num_batches_tracked"] = MakeI64Tensor({}, std::vector<int64_t>{1});
  ExpectRejected(st, HasSubstr("generator."));
}

TEST_F(CheckpointRejectionTest, CheckpointOfAnotherSpec) {
  // Same layer list, other sizes: 8 discriminator filters and a 32-unit
  // generator Dense.
  gan::v1::GanSpec other = spec_;
  other.mutable_discriminator()->mutable_layers(0)->mutable_conv2d()->set_filters(8);
  other.mutable_generator()->mutable_layers(0)->mutable_dense()->set_units(32);
  other.mutable_generator()->mutable_layers(3)->mutable_reshape()->set_channels(2);
  std::unique_ptr<GanTrainer> other_trainer = MakeTrainer(other, 3, 1);
  ASSERT_NE(other_trainer, nullptr);
  const SafeTensors st = MakeCheckpoint(*other_trainer, {1, 0, kSeed});
  ExpectRejected(st, AllOf(HasSubstr("generator.0.weight"), HasSubstr("shape")));

  // Only the discriminator differs (5x5 kernels): found after the whole
  // generator matched.
  gan::v1::GanSpec wider = spec_;
  wider.mutable_discriminator()->mutable_layers(0)->mutable_conv2d()->set_kernel_size(5);
  std::unique_ptr<GanTrainer> wider_trainer = MakeTrainer(wider, 3, 0);
  ASSERT_NE(wider_trainer, nullptr);
  ExpectRejected(MakeCheckpoint(*wider_trainer, {0, 0, kSeed}),
                 AllOf(HasSubstr("discriminator.0.weight"), HasSubstr("shape")));
}

TEST_F(CheckpointRejectionTest, BadMetadata) {
  struct Case {
    std::string key;
    std::optional<std::string> value;  // nullopt: remove the key
    std::string expected_in_message;
  };
  for (const Case& c : std::vector<Case>{
           {"step", std::nullopt, "step"},
           {"step", "two", "step"},
           {"step", "", "step"},
           {"step", "-1", "step"},
           {"step", "2.5", "step"},
           {"epoch", std::nullopt, "epoch"},
           {"seed", "0x11", "seed"},
           {"optimizer.generator.steps", std::nullopt, "optimizer.generator.steps"},
           {"optimizer.discriminator.steps", "many", "optimizer.discriminator.steps"},
           {"format", "gan-checkpoint-v0", "format"},
           {"format", std::nullopt, "format"},
       }) {
    SCOPED_TRACE(absl::StrCat(c.key, " = ", c.value.value_or("<absent>")));
    SafeTensors st = good_;
    if (c.value.has_value()) {
      st.metadata[c.key] = *c.value;
    } else {
      ASSERT_EQ(st.metadata.erase(c.key), 1u);
    }
    ExpectRejected(st, HasSubstr(c.expected_in_message));
  }
  // No metadata at all (a bare PyTorch state_dict): not a training checkpoint.
  SafeTensors st = good_;
  st.metadata.clear();
  ExpectRejected(st, HasSubstr("format"));
}

TEST_F(CheckpointRejectionTest, ChangedBytesThatStillParseFailTheChecksum) {
  EXPECT_EQ(good_.metadata.at(kChecksumKey), CheckpointChecksum(good_));
  EXPECT_THAT(VerifyCheckpointChecksum(good_), IsOk());

  // One bit of a tensor's data: the file parses and every shape matches, only the checksum can
  // tell.
  const uint64_t header_end = 8 + HeaderLength();
  for (uint64_t at : {header_end, (header_end + good_bytes_.size()) / 2, good_bytes_.size() - 1}) {
    SCOPED_TRACE(absl::StrCat("bit flipped at byte ", at, " of ", good_bytes_.size()));
    std::string bytes = good_bytes_;
    bytes[at] = static_cast<char>(bytes[at] ^ 0x10);
    ExpectRejectedBytes(bytes, kInvalid, AllOf(HasSubstr("crc32"), HasSubstr("does not match")));
  }
  // A metadata value that is still valid, and a tensor value changed in memory.
  SafeTensors st = good_;
  st.metadata["epoch"] = "1";
  ExpectRejected(st, HasSubstr("crc32"));
  st = good_;
  st.tensors.at("discriminator.0.bias").bytes[0] ^= 1;
  ExpectRejected(st, HasSubstr("crc32"));
  // Only the checksum itself changed.
  st = good_;
  st.metadata[kChecksumKey] = "00000000";
  ExpectRejected(st, HasSubstr("crc32 00000000"));

  // A file without a checksum (older checkpoints, other tools) loads unchecked.
  st = good_;
  st.metadata.erase(kChecksumKey);
  EXPECT_THAT(VerifyCheckpointChecksum(st), IsOk());
  EXPECT_THAT(RestoreCheckpoint(st, target_.get()), IsOk());
  ExpectSameState(*target_, Capture(*target_), Capture(*source_));
}

TEST(CheckpointTest, EveryUint64SeedRoundTrips) {
  // CheckpointInfo::seed is a uint64 (gan-train's --seed too); seeds >= 2^63
  // must load back.
  const gan::v1::GanSpec spec = SmallSpec();
  std::unique_ptr<GanTrainer> trainer = MakeTrainer(spec, 1, 1);
  ASSERT_NE(trainer, nullptr);
  for (uint64_t seed : {uint64_t{0}, (uint64_t{1} << 63) - 1, uint64_t{1} << 63, ~uint64_t{0}}) {
    SCOPED_TRACE(seed);
    const SafeTensors st = MakeCheckpoint(*trainer, {1, 0, seed});
    EXPECT_EQ(st.metadata.at("seed"), absl::StrCat(seed));
    absl::StatusOr<CheckpointInfo> info = RestoreCheckpoint(st, trainer.get());
    ASSERT_THAT(info.status(), IsOk());
    EXPECT_EQ(info->seed, seed);
  }
}

TEST(CheckpointSpecTest, ReadsAndRejectsTheSpecMetadata) {
  SafeTensors st;
  EXPECT_THAT(CheckpointSpec(st), StatusIs(kInvalid, HasSubstr("spec")));
  st.metadata["spec"] = "{not json";
  EXPECT_THAT(CheckpointSpec(st), StatusIs(kInvalid, HasSubstr("spec")));
  st.metadata["spec"] = R"({"batch_size": 4, "no_such_field": 1})";
  EXPECT_THAT(CheckpointSpec(st), StatusIs(kInvalid, HasSubstr("spec")));
}

TEST(CheckpointAtomicTest, FailedOverwriteKeepsThePreviousCheckpoint) {
  const gan::v1::GanSpec spec = SmallSpec();
  for (AtomicWriteStage stage : {AtomicWriteStage::kAfterWrite, AtomicWriteStage::kAfterFsync}) {
    SCOPED_TRACE(static_cast<int>(stage));
    std::unique_ptr<GanTrainer> trainer = MakeTrainer(spec, 1, 2);
    ASSERT_NE(trainer, nullptr);
    const std::string dir = MakeTempDir("ckpt");
    const std::string path = dir + "/latest.safetensors";
    ASSERT_THAT(SaveCheckpoint(path, *trainer, {2, 0, kSeed}), IsOk());
    const std::string old_bytes = ReadBytes(path);
    const TrainerState at_step_2 = Capture(*trainer);

    // Train on, then fail the overwrite.
    std::unique_ptr<GanTrainer> later = MakeTrainer(spec, 1, 3);
    ASSERT_NE(later, nullptr);
    SetAtomicWriteFaultForTesting(stage);
    EXPECT_THAT(SaveCheckpoint(path, *later, {3, 0, kSeed}), Not(IsOk()));
    SetAtomicWriteFaultForTesting(AtomicWriteStage::kNone);

    EXPECT_EQ(ReadBytes(path), old_bytes);
    EXPECT_EQ(::gan::testing::DirectoryNames(dir), std::vector<std::string>{"latest.safetensors"})
        << "no temp file lingers";
    std::unique_ptr<GanTrainer> fresh = MakeTrainer(spec, 42, 0);
    ASSERT_NE(fresh, nullptr);
    GAN_ASSERT_OK_AND_ASSIGN(CheckpointInfo info, LoadCheckpoint(path, fresh.get()));
    EXPECT_EQ(info.step, 2);
    ExpectSameState(*fresh, Capture(*fresh), at_step_2);

    // The next (unfaulted) write succeeds and replaces it.
    ASSERT_THAT(SaveCheckpoint(path, *later, {3, 0, kSeed}), IsOk());
    GAN_ASSERT_OK_AND_ASSIGN(info, LoadCheckpoint(path, fresh.get()));
    EXPECT_EQ(info.step, 3);
    ExpectSameState(*fresh, Capture(*fresh), Capture(*later));
  }
}

TEST(CheckpointAtomicTest, FailureAfterRenameIsReportedButTheNewCheckpointIsComplete) {
  const gan::v1::GanSpec spec = SmallSpec();
  std::unique_ptr<GanTrainer> trainer = MakeTrainer(spec, 1, 1);
  std::unique_ptr<GanTrainer> later = MakeTrainer(spec, 1, 2);
  ASSERT_NE(trainer, nullptr);
  ASSERT_NE(later, nullptr);
  const std::string dir = MakeTempDir("ckpt");
  const std::string path = dir + "/latest.safetensors";
  ASSERT_THAT(SaveCheckpoint(path, *trainer, {1, 0, kSeed}), IsOk());
  SetAtomicWriteFaultForTesting(AtomicWriteStage::kAfterRename);
  EXPECT_THAT(SaveCheckpoint(path, *later, {2, 0, kSeed}), Not(IsOk()));
  SetAtomicWriteFaultForTesting(AtomicWriteStage::kNone);
  EXPECT_EQ(::gan::testing::DirectoryNames(dir), std::vector<std::string>{"latest.safetensors"});
  std::unique_ptr<GanTrainer> fresh = MakeTrainer(spec, 42, 0);
  ASSERT_NE(fresh, nullptr);
  GAN_ASSERT_OK_AND_ASSIGN(CheckpointInfo info, LoadCheckpoint(path, fresh.get()));
  EXPECT_EQ(info.step, 2);
  ExpectSameState(*fresh, Capture(*fresh), Capture(*later));
}

}  // namespace
}  // namespace gan
