// Every layer type's Backward against central finite differences of its own Forward, alone and in
// three small stacks, so the analytic gradients agree with the function the network actually
// computes, whatever layouts and buffer sharing the network chose (layer_reference_test compares
// both with PyTorch on fixed data; this needs none).
//
// Loss L = sum(output * R) with a fixed random R, so dL/doutput = R goes into output_grad().
// Analytic: Backward(param_grads=true) gives dL/dinput (NetworkOptions.input_grad) and dL/dparam
// (ParameterStore::Grad). Numeric: (L(x + eps) - L(x - eps)) / (2 eps) per element on the float32
// network, L accumulated in double.

#include <algorithm>
#include <cmath>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/init.h"
#include "core/model_shapes.h"
#include "core/parameter_store.h"
#include "core/sequential.h"
#include "io/status_macros.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"
#include "tests/test_util.h"

namespace gan {
namespace {

// Central-difference step. Large enough that float32 rounding in the two forwards, divided by
// 2 eps, stays ~1e-5; small enough that the O(eps^2) truncation error is ~1e-4 relative for the
// smooth layers here. Near a kink the step shrinks (see Probe).
constexpr double kEps = 1e-2;
// Per element, |analytic - numeric| <= kAtol + kRtol * |numeric|. The absolute term covers
// near-zero gradients, where the float32 noise of the forwards dominates (measured <= 5e-5 at
// kEps, <= 3e-4 at the smallest step kEps / 16); the relative term covers truncation error, which
// scales with the gradient (measured <= 4e-3 relative, in the stack where BatchNorm over a batch
// of 4 follows a Dense). A wrong index, transpose or missing term is off by O(1) relative;
// scaling every analytic gradient by 1.03 fails every case.
constexpr double kAtol = 1e-3;
constexpr double kRtol = 1e-2;
// And over the checked elements of a tensor, ||analytic - numeric|| <= kRelNorm * ||numeric||,
// which catches an error spread over gradients too small for the per-element absolute term (in
// the blocked stack every gradient is below 0.1; measured <= 1.2e-3 everywhere). Not applied when
// the true gradient is zero up to noise (max |numeric| < kNormFloor): a bias before BatchNorm.
constexpr double kRelNorm = 1e-2;
constexpr double kNormFloor = 1e-3;
// Tensors with more elements are checked at this many deterministic random positions.
constexpr size_t kMaxCheckedPerTensor = 64;

struct GradientCase {
  std::string name;
  std::string model;  // gan.v1.ModelSpec in text format
  Dims input;         // per sample
  int64_t batch;
  // Draw the input with |x| > 3 eps, so that perturbing an element never moves it across the
  // kink of a ReLU/LeakyReLU applied directly to it (the single-layer ReLU cases then need no
  // step shrinking or skipping). Kinks deeper in a stack are handled in the check itself.
  bool input_away_from_zero = false;
};

// One tensor whose gradient is checked: its values (perturbed in place) and the analytic gradient
// copied right after Backward.
struct CheckedTensor {
  std::string name;
  float* values;
  std::vector<float> analytic;
};

// Indices of `n` elements to check: all of them, or a fixed random sample.
std::vector<size_t> CheckedIndices(size_t n, std::mt19937& rng) {
  std::vector<size_t> indices(n);
  std::iota(indices.begin(), indices.end(), 0);
  if (n <= kMaxCheckedPerTensor) return indices;
  std::shuffle(indices.begin(), indices.end(), rng);
  indices.resize(kMaxCheckedPerTensor);
  std::sort(indices.begin(), indices.end());
  return indices;
}

bool IsKinked(const gan::v1::LayerSpec& layer) {
  return layer.has_activation() &&
         (layer.activation().function() == gan::v1::ACTIVATION_FUNCTION_RELU ||
          layer.activation().function() == gan::v1::ACTIVATION_FUNCTION_LEAKY_RELU);
}

// The network under test at one point (input x, its parameters in the store, fixed dropout
// masks), evaluating L = sum(output * R) and the sides of every kink.
//
// Kinks: a ReLU/LeakyReLU whose input crosses 0 under a perturbation has different one-sided
// slopes there, and a central difference measures neither. The network keeps no intermediate
// activations one could read (element-wise layers may run in place), so the input of each
// kinked entry i > 0 is recomputed by a second network made of entries [0, i) sharing the
// parameter store and the dropout masks. A perturbation that flips the sign of any kink input is
// retried with the step / 4 and / 16 and the element is skipped if even that crosses (the kink
// tolerance of ggml's test-backend-ops). Perturbing one conv weight moves every pre-activation of
// its filter, so in the stacks many weights need a smaller step and a few are skipped.
class Probe {
 public:
  static absl::StatusOr<std::unique_ptr<Probe>> Create(const std::vector<LayerShape>& layers,
                                                       int64_t batch, ParameterStore* store) {
    auto probe = std::unique_ptr<Probe>(new Probe);
    probe->kink_at_input_ = IsKinked(layers.front().spec);
    GAN_ASSIGN_OR_RETURN(probe->net_, Sequential::Create(layers, store,
                                                         {batch, Pass::kTraining,
                                                          /*input_grad=*/true}));
    for (size_t i = 1; i < layers.size(); ++i) {
      if (!IsKinked(layers[i].spec)) continue;
      GAN_ASSIGN_OR_RETURN(std::unique_ptr<Sequential> prefix,
                           Sequential::Create(
                               std::vector<LayerShape>(layers.begin(), layers.begin() + i),
                               store, {batch, Pass::kTraining, /*input_grad=*/false}));
      probe->kink_inputs_.push_back(std::move(prefix));
    }
    return probe;
  }

  Sequential& net() { return *net_; }
  std::vector<float>& x() { return x_; }
  std::vector<float>& r() { return r_; }

  // The same fixed 0/1 mask for a dropout entry in every network: Forward reuses it until
  // someone refills it.
  void SetDropoutMasks(std::mt19937& rng) {
    for (Dropout* dropout : net_->dropout_layers()) {
      std::bernoulli_distribution keep(1.0 - dropout->rate());
      for (float& m : dropout->mask()) m = keep(rng) ? 1.0f : 0.0f;
    }
    for (auto& prefix : kink_inputs_) {
      for (Dropout* dropout : prefix->dropout_layers()) {
        for (Dropout* full : net_->dropout_layers()) {
          if (full->layer_index() != dropout->layer_index()) continue;
          std::copy(full->mask().begin(), full->mask().end(), dropout->mask().begin());
        }
      }
    }
  }

  // L at the current x and parameters; x is copied in every time, so nothing depends on what
  // Forward leaves in the input buffer.
  double Loss() {
    std::copy(x_.begin(), x_.end(), net_->input().begin());
    net_->Forward();
    double l = 0;
    const absl::Span<float> out = net_->output();
    for (size_t i = 0; i < out.size(); ++i) l += static_cast<double>(out[i]) * r_[i];
    return l;
  }

  // Whether the input of each kinked entry is > 0, elementwise, at the current point.
  std::vector<bool> KinkSides() {
    std::vector<bool> sides;
    if (kink_at_input_) {
      for (float v : x_) sides.push_back(v > 0);
    }
    for (auto& prefix : kink_inputs_) {
      std::copy(x_.begin(), x_.end(), prefix->input().begin());
      prefix->Forward();
      for (float v : prefix->output()) sides.push_back(v > 0);
    }
    return sides;
  }

 private:
  Probe() = default;

  std::unique_ptr<Sequential> net_;
  std::vector<std::unique_ptr<Sequential>> kink_inputs_;
  bool kink_at_input_ = false;
  std::vector<float> x_, r_;
};

class LayerGradientTest : public ::testing::TestWithParam<GradientCase> {};

TEST_P(LayerGradientTest, MatchesFiniteDifferences) {
  const GradientCase& c = GetParam();
  gan::v1::ModelSpec spec;
  ASSERT_TRUE(google::protobuf::TextFormat::ParseFromString(c.model, &spec)) << c.model;
  GAN_ASSERT_OK_AND_ASSIGN(std::vector<LayerShape> layers,
                           InferModelShapes(spec, c.input, "model", c.batch, ModelLimits{}));
  ParameterStore store("model", layers);
  // Nonzero biases and BatchNorm scale/shift, weights ~ U(-1, 1) / sqrt(fan_in).
  InitializeForReference(/*seed=*/7, /*key_offset=*/0, &store);
  GAN_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Probe> probe, Probe::Create(layers, c.batch, &store));
  Sequential& net = probe->net();

  std::mt19937 rng(20240611);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  probe->x().resize(net.input().size());
  for (float& v : probe->x()) {
    do {
      v = normal(rng);
    } while (c.input_away_from_zero && std::fabs(v) <= 3 * kEps);
  }
  const int dropout_entries = static_cast<int>(
      std::count_if(spec.layers().begin(), spec.layers().end(),
                    [](const gan::v1::LayerSpec& l) { return l.dropout().rate() > 0; }));
  ASSERT_EQ(net.dropout_layers().size(), static_cast<size_t>(dropout_entries));
  probe->SetDropoutMasks(rng);
  probe->r().resize(net.output().size());
  for (float& v : probe->r()) v = normal(rng);

  // Analytic gradients at the unperturbed point.
  const double base_loss = probe->Loss();
  ASSERT_EQ(net.output_grad().size(), probe->r().size());
  std::copy(probe->r().begin(), probe->r().end(), net.output_grad().begin());
  net.Backward(/*param_grads=*/true);
  std::vector<CheckedTensor> tensors;
  ASSERT_EQ(net.input_grad().size(), probe->x().size());
  tensors.push_back({"input", probe->x().data(),
                     std::vector<float>(net.input_grad().begin(), net.input_grad().end())});
  for (const ParameterStore::Entry& e : store.entries()) {
    if (!e.trainable) continue;  // running statistics have no gradient
    const float* grad = store.Grad(e.layer, e.param);
    tensors.push_back({e.name, store.Data(e),
                       std::vector<float>(grad, grad + NumElements(e.dims))});
  }
  const std::vector<bool> base_sides = probe->KinkSides();

  for (const CheckedTensor& t : tensors) {
    const std::vector<size_t> indices = CheckedIndices(t.analytic.size(), rng);
    size_t failures = 0, skipped = 0, worst = 0;
    double worst_excess = -1, worst_numeric = 0;
    double diff_sq = 0, numeric_sq = 0, max_numeric = 0;
    for (size_t i : indices) {
      const float saved = t.values[i];
      double numeric = 0;
      bool crossed = true;
      for (double step : {kEps, kEps / 4, kEps / 16}) {
        t.values[i] = saved + static_cast<float>(step);
        const double plus = probe->Loss();
        crossed = probe->KinkSides() != base_sides;
        t.values[i] = saved - static_cast<float>(step);
        const double minus = probe->Loss();
        crossed = crossed || probe->KinkSides() != base_sides;
        t.values[i] = saved;
        numeric = (plus - minus) / (2 * step);
        if (!crossed) break;
      }
      if (crossed) {
        ++skipped;
        continue;
      }
      const double diff = std::fabs(t.analytic[i] - numeric);
      const double excess = diff - (kAtol + kRtol * std::fabs(numeric));
      if (!(excess <= 0)) ++failures;  // NaN fails too
      diff_sq += diff * diff;
      numeric_sq += numeric * numeric;
      max_numeric = std::max(max_numeric, std::fabs(numeric));
      if (!(excess <= worst_excess)) worst_excess = excess, worst = i, worst_numeric = numeric;
    }
    EXPECT_EQ(failures, 0u) << t.name << ": " << failures << " of " << indices.size()
                            << " elements out of tolerance; worst at [" << worst
                            << "]: analytic " << t.analytic[worst] << " vs numeric "
                            << worst_numeric;
    if (max_numeric >= kNormFloor) {
      EXPECT_LE(std::sqrt(diff_sq), kRelNorm * std::sqrt(numeric_sq))
          << t.name << ": relative error of the whole gradient";
    }
    // Skipping must stay the exception, or the check would pass vacuously.
    EXPECT_LE(skipped * 10, indices.size()) << t.name << ": " << skipped << " of "
                                            << indices.size() << " elements crossed a kink";
  }
  // Every perturbation was undone and the masks are fixed, so the function is where it started
  // (BatchNorm's running statistics moved, which the training-mode output does not read).
  EXPECT_NEAR(probe->Loss(), base_loss, 1e-6 * std::max(1.0, std::fabs(base_loss)));
}

// Layer specs in text format, one layer per string.
std::string Conv(int filters, int kernel, int stride, const char* padding, bool bias) {
  return "layers { conv2d { filters: " + std::to_string(filters) +
         " kernel_size: " + std::to_string(kernel) + " stride: " + std::to_string(stride) +
         " padding: " + padding + " use_bias: " + (bias ? "true" : "false") + " } }";
}
std::string ConvT(int filters, int kernel, int stride, const char* padding, bool bias) {
  return "layers { conv2d_transpose { filters: " + std::to_string(filters) +
         " kernel_size: " + std::to_string(kernel) + " stride: " + std::to_string(stride) +
         " padding: " + padding + " use_bias: " + (bias ? "true" : "false") + " } }";
}
std::string Dense(int units, bool bias) {
  return "layers { dense { units: " + std::to_string(units) +
         " use_bias: " + (bias ? "true" : "false") + " } }";
}
std::string Act(const char* function, float alpha = 0) {
  return std::string("layers { activation { function: ") + function +
         " alpha: " + std::to_string(alpha) + " } }";
}
// Keras' values as the presets use them; a larger epsilon than PyTorch's keeps the normalization
// smooth enough for eps-sized perturbations of a batch of 3-4.
const char kBatchNorm[] = "layers { batch_norm { epsilon: 1e-3 momentum: 0.01 } }";

constexpr char kSame[] = "PADDING_SAME";
constexpr char kValid[] = "PADDING_VALID";

// GoogleTest prints a case (in --gtest_list_tests and failures) by its name, not its bytes.
void PrintTo(const GradientCase& c, std::ostream* os) { *os << c.name; }

INSTANTIATE_TEST_SUITE_P(
    AllLayers, LayerGradientTest,
    ::testing::Values(
        // Conv2D: (N, 2, H, W) -> (N, 3, OH, OW); odd and even sizes exercise Keras' asymmetric
        // 'same' padding (the extra pixel after).
        GradientCase{"conv2d_same_s1", Conv(3, 3, 1, kSame, true), {2, 6, 6}, 2},
        GradientCase{"conv2d_same_s1_nobias", Conv(3, 3, 1, kSame, false), {2, 6, 6}, 2},
        GradientCase{"conv2d_same_s2_odd", Conv(3, 3, 2, kSame, true), {2, 7, 7}, 2},
        GradientCase{"conv2d_same_s2_even_k4", Conv(3, 4, 2, kSame, true), {2, 8, 8}, 2},
        GradientCase{"conv2d_same_s2_nobias", Conv(3, 5, 2, kSame, false), {2, 7, 7}, 2},
        GradientCase{"conv2d_valid_s1", Conv(3, 3, 1, kValid, true), {2, 6, 6}, 2},
        GradientCase{"conv2d_valid_s2", Conv(3, 3, 2, kValid, true), {2, 7, 7}, 2},
        GradientCase{"conv2d_valid_s2_nobias", Conv(3, 3, 2, kValid, false), {2, 8, 8}, 3},
        // Channel counts oneDNN computes in blocked layouts (8c/16c).
        GradientCase{"conv2d_same_s1_16_filters", Conv(16, 3, 1, kSame, true), {8, 5, 5}, 2},
        GradientCase{"conv2d_valid_s2_16_filters", Conv(16, 3, 2, kValid, true), {16, 7, 7}, 2},
        // Conv2DTranspose: 'same' out = in * stride, 'valid' out = (in - 1) * stride + k.
        GradientCase{"conv2d_transpose_same_s1", ConvT(3, 3, 1, kSame, true), {2, 5, 5}, 2},
        GradientCase{"conv2d_transpose_same_s1_nobias", ConvT(3, 3, 1, kSame, false), {2, 5, 5},
                     2},
        GradientCase{"conv2d_transpose_same_s2", ConvT(3, 5, 2, kSame, true), {2, 4, 4}, 2},
        GradientCase{"conv2d_transpose_same_s2_k3", ConvT(2, 3, 2, kSame, true), {3, 3, 3}, 2},
        GradientCase{"conv2d_transpose_same_s2_nobias", ConvT(3, 5, 2, kSame, false), {2, 4, 4},
                     2},
        GradientCase{"conv2d_transpose_valid_s2", ConvT(3, 3, 2, kValid, true), {2, 3, 3}, 2},
        GradientCase{"conv2d_transpose_valid_s2_nobias", ConvT(3, 3, 2, kValid, false),
                     {2, 3, 3}, 3},
        GradientCase{"conv2d_transpose_same_s2_16_filters", ConvT(16, 3, 2, kSame, true),
                     {8, 3, 3}, 2},
        // Dense: (N, 12) -> (N, 5).
        GradientCase{"dense", Dense(5, true), {12}, 3},
        GradientCase{"dense_nobias", Dense(5, false), {12}, 3},
        // BatchNorm in training mode: the batch statistics depend on every input, so each input's
        // gradient has the two extra terms through the mean and the variance.
        GradientCase{"batch_norm_features", kBatchNorm, {6}, 4},
        GradientCase{"batch_norm_channels", kBatchNorm, {3, 4, 4}, 2},
        // Element-wise.
        GradientCase{"leaky_relu", Act("ACTIVATION_FUNCTION_LEAKY_RELU", 0.2f), {2, 5, 5}, 2,
                     /*input_away_from_zero=*/true},
        GradientCase{"relu", Act("ACTIVATION_FUNCTION_RELU"), {2, 5, 5}, 2,
                     /*input_away_from_zero=*/true},
        GradientCase{"sigmoid", Act("ACTIVATION_FUNCTION_SIGMOID"), {2, 5, 5}, 2},
        GradientCase{"tanh", Act("ACTIVATION_FUNCTION_TANH"), {2, 5, 5}, 2},
        GradientCase{"linear", Act("ACTIVATION_FUNCTION_LINEAR"), {2, 5, 5}, 2},
        GradientCase{"dropout", "layers { dropout { rate: 0.4 } }", {2, 5, 5}, 2},
        // Shape-only entries.
        GradientCase{"up_sampling2d", "layers { up_sampling2d { size: 2 } }", {2, 3, 4}, 2},
        GradientCase{"up_sampling2d_x3", "layers { up_sampling2d { size: 3 } }", {2, 2, 3}, 2},
        GradientCase{"flatten", "layers { flatten {} }", {2, 3, 3}, 2},
        GradientCase{"reshape_features", "layers { reshape { channels: 2 height: 3 width: 3 } }",
                     {18}, 2},
        GradientCase{"reshape_image", "layers { reshape { channels: 3 height: 2 width: 3 } }",
                     {2, 3, 3}, 2},
        // Stacks: the seed discriminator's pattern (views aliasing buffers between real layers),
        // the generator's, and one whose activations stay in blocked layouts between layers,
        // with element-wise layers that may run in place.
        GradientCase{"discriminator_stack",
                     Conv(4, 3, 2, kSame, true) + Act("ACTIVATION_FUNCTION_LEAKY_RELU", 0.2f) +
                         "layers { flatten {} }" + Dense(6, true) + kBatchNorm +
                         Act("ACTIVATION_FUNCTION_TANH"),
                     {1, 8, 8}, 4},
        GradientCase{"generator_stack",
                     Dense(18, false) + kBatchNorm + Act("ACTIVATION_FUNCTION_RELU") +
                         "layers { reshape { channels: 2 height: 3 width: 3 } }" +
                         "layers { up_sampling2d { size: 2 } }" + ConvT(2, 3, 1, kSame, true) +
                         "layers { dropout { rate: 0.25 } }" + Conv(1, 3, 1, kSame, true) +
                         Act("ACTIVATION_FUNCTION_SIGMOID"),
                     {5}, 4},
        GradientCase{"blocked_stack",
                     Conv(16, 3, 1, kSame, true) + kBatchNorm +
                         Act("ACTIVATION_FUNCTION_LEAKY_RELU", 0.2f) +
                         "layers { dropout { rate: 0.3 } }" + Conv(8, 3, 2, kSame, false) +
                         Act("ACTIVATION_FUNCTION_RELU") + "layers { up_sampling2d { size: 2 } }" +
                         ConvT(8, 3, 2, kSame, true) + Act("ACTIVATION_FUNCTION_TANH") +
                         "layers { flatten {} }" + Dense(1, true),
                     {3, 6, 6}, 2}),
    [](const ::testing::TestParamInfo<GradientCase>& info) { return info.param.name; });

}  // namespace
}  // namespace gan
