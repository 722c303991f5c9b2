// Three full GAN iterations of each preset against PyTorch (tests/data/reference/gan, written by
// scripts/make_reference_data.py): the same test-init weights, real batch, noise and dropout
// masks; compared are the losses, D(x), D(G(z)), accuracy and per-layer gradient norms of every
// iteration, and after the last one the parameter *changes* (Adam) and BatchNorm statistics.

#include <cmath>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/gan_trainer.h"
#include "core/init.h"
#include "core/presets.h"
#include "core/safetensors.h"
#include "gtest/gtest.h"
#include "tests/test_util.h"

namespace gan {
namespace {

using ::gan::testing::ExpectAllClose;

float Scalar(const SafeTensors& ref, const std::string& name) {
  auto values = GetF32(ref, name);
  EXPECT_TRUE(values.ok() && values->size() == 1) << name << ": " << values.status();
  return values.ok() && !values->empty() ? values->front() : NAN;
}

// Noise and dropout masks recorded by PyTorch for one iteration.
class RecordedRandomness : public StepRandomness {
 public:
  RecordedRandomness(const SafeTensors& ref, int iteration)
      : ref_(ref), prefix_(absl::StrCat("iter", iteration, ".")) {}

  void Noise(Phase phase, absl::Span<float> z) override {
    const std::string name = prefix_ + (phase == Phase::kDiscriminatorStep ? "z_d" : "z_g");
    auto values = GetF32(ref_, name);
    ASSERT_TRUE(values.ok()) << values.status();
    ASSERT_EQ(values->size(), z.size()) << name;
    std::copy(values->begin(), values->end(), z.begin());
  }

  void DropoutMask(Phase phase, Role role, int layer, float rate, absl::Span<float> mask) override {
    ASSERT_EQ(role, Role::kDiscriminator) << "the presets' generators have no dropout";
    const std::string name =
        absl::StrCat(prefix_, phase == Phase::kDiscriminatorStep ? "d_pass1" : "d_pass2",
                     ".mask.", layer);
    auto it = ref_.tensors.find(name);
    ASSERT_NE(it, ref_.tensors.end()) << name;
    ASSERT_EQ(it->second.dtype, DType::kU8) << name;
    ASSERT_EQ(it->second.bytes.size(), mask.size()) << name;
    for (size_t i = 0; i < mask.size(); ++i) mask[i] = it->second.bytes[i] ? 1.0f : 0.0f;
  }

 private:
  const SafeTensors& ref_;
  std::string prefix_;
};

class GanReferenceTest : public ::testing::TestWithParam<std::string> {};

TEST_P(GanReferenceTest, ThreeIterationsMatchPyTorch) {
  GAN_ASSERT_OK_AND_ASSIGN(
      SafeTensors ref, ReadSafeTensorsFile(::gan::testing::TestDataPath(
                           "reference/gan/" + GetParam() + ".safetensors")));
  GAN_ASSERT_OK_AND_ASSIGN(gan::v1::GanSpec spec, PresetSpec(GetParam()));
  spec.set_batch_size(std::stoi(ref.metadata.at("batch")));
  GAN_ASSERT_OK_AND_ASSIGN(std::unique_ptr<GanTrainer> trainer, GanTrainer::Create(spec));
  const uint64_t seed = std::stoull(ref.metadata.at("init_seed"));
  InitializeForReference(seed, 0, &trainer->generator());
  InitializeForReference(seed, 500, &trainer->discriminator());

  // The test init is the same function on both sides.
  for (ParameterStore* store : {&trainer->generator(), &trainer->discriminator()}) {
    for (const ParameterStore::Entry& e : store->entries()) {
      if (e.param != "weight" && e.param != "bias") continue;
      GAN_ASSERT_OK_AND_ASSIGN(std::vector<float> head, GetF32(ref, "init.check." + e.name));
      ExpectAllClose("init " + e.name, store->Data(e), head.data(), head.size(), 0, 1e-6);
    }
  }
  const std::vector<float> g_initial_trainable = trainer->generator().trainable();
  const std::vector<float> g_initial_state = trainer->generator().state();
  const std::vector<float> d_initial = trainer->discriminator().trainable();

  GAN_ASSERT_OK_AND_ASSIGN(std::vector<float> real, GetF32(ref, "real"));
  const int iterations = std::stoi(ref.metadata.at("iterations"));
  for (int t = 0; t < iterations; ++t) {
    SCOPED_TRACE(absl::StrCat("iteration ", t));
    RecordedRandomness randomness(ref, t);
    const StepMetrics m = trainer->Step(real, randomness);
    const std::string p = absl::StrCat("iter", t, ".");
    std::vector<float> actual = {m.d_loss, m.g_loss, m.d_real, m.d_fake, m.d_accuracy};
    std::vector<float> expected = {Scalar(ref, p + "d_loss"), Scalar(ref, p + "g_loss"),
                                   Scalar(ref, p + "d_real"), Scalar(ref, p + "d_fake"),
                                   Scalar(ref, p + "d_accuracy")};
    ExpectAllClose("d_loss, g_loss, d_real, d_fake, d_accuracy", actual, expected);
    for (const LayerGradNorm& norm : m.grad_norms) {
      const float want = Scalar(ref, p + "grad_norm." + norm.layer);
      ExpectAllClose("grad norm " + norm.layer, {static_cast<float>(norm.norm)}, {want}, 1e-5,
                     1e-3);
    }
  }

  // Parameter changes after the iterations: sampled elements, sum and L2 norm of the change.
  // Adam's steps are ~lr in size, so the tolerance scales with the change, not the value.
  auto check_changes = [&](ParameterStore& store, const std::vector<float>& trainable_initial,
                           const std::vector<float>& state_initial) {
    const std::vector<LayerShape>& layers = &store == &trainer->generator()
                                                ? trainer->shapes().generator
                                                : trainer->shapes().discriminator;
    for (const ParameterStore::Entry& e : store.entries()) {
      // A bias right before a BatchNorm has an exactly zero true gradient (the normalization
      // subtracts it again); both frameworks' gradients are rounding noise of ~1e-10, which
      // Adam scales up to steps of ~lr with a random sign. Only finiteness is comparable.
      if (e.param == "bias" && static_cast<size_t>(e.layer + 1) < layers.size() &&
          layers[e.layer + 1].spec.has_batch_norm()) {
        for (int64_t i = 0; i < NumElements(e.dims); ++i) {
          ASSERT_TRUE(std::isfinite(store.Data(e)[i])) << e.name;
        }
        continue;
      }
      const float* now = store.Data(e);
      const float* before = (e.trainable ? trainable_initial : state_initial).data() + e.offset;
      const int64_t n = NumElements(e.dims);
      double sum = 0, l2 = 0;
      for (int64_t i = 0; i < n; ++i) {
        const double d = static_cast<double>(now[i]) - before[i];
        sum += d;
        l2 += d * d;
      }
      l2 = std::sqrt(l2);
      const float want_l2 = Scalar(ref, "final.delta_l2." + e.name);
      const double scale = std::max<double>(want_l2, 1e-12);
      ExpectAllClose("change L2 " + e.name, {static_cast<float>(l2)}, {want_l2}, 0, 2e-3);
      ExpectAllClose("change sum " + e.name, {static_cast<float>(sum)},
                     {Scalar(ref, "final.delta_sum." + e.name)}, 2e-3 * scale, 2e-3);
      GAN_ASSERT_OK_AND_ASSIGN(std::vector<int64_t> index, GetI64(ref, "final.index." + e.name));
      GAN_ASSERT_OK_AND_ASSIGN(std::vector<float> want, GetF32(ref, "final.delta." + e.name));
      std::vector<float> got;
      for (int64_t i : index) got.push_back(now[i] - before[i]);
      // Per element: within 1% of the tensor's typical change (its RMS) or 1e-3 relative.
      ExpectAllClose("sampled changes " + e.name, got, want,
                     1e-2 * scale / std::sqrt(static_cast<double>(n)), 1e-3);
    }
  };
  check_changes(trainer->generator(), g_initial_trainable, g_initial_state);
  check_changes(trainer->discriminator(), d_initial, {});
  for (const auto& [layer, count] : trainer->generator().batches_tracked()) {
    GAN_ASSERT_OK_AND_ASSIGN(
        std::vector<int64_t> want,
        GetI64(ref, absl::StrCat("final.generator.", layer, ".num_batches_tracked")));
    EXPECT_EQ(count, want.at(0)) << "generator." << layer;
  }
}

INSTANTIATE_TEST_SUITE_P(Presets, GanReferenceTest,
                         ::testing::Values("seed", "seed-dcgan", "tf-dcgan"),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           std::string name = info.param;
                           std::replace(name.begin(), name.end(), '-', '_');
                           return name;
                         });

}  // namespace
}  // namespace gan
