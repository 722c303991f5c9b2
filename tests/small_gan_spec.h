#ifndef GAN_TESTS_SMALL_GAN_SPEC_H_
#define GAN_TESTS_SMALL_GAN_SPEC_H_

// Small GanSpecs for unit tests.

#include "gan/v1/spec.pb.h"

namespace gan::testing {

// A text-format GanSpec; a parse error fails the current test (EXPECT).
gan::v1::GanSpec ParseGanSpec(const char* text);

// Generator layer 5 of SmallConvGanSpec.
enum class SmallConvLayer5 {
  kConv2D,           // conv2d { filters: 3 kernel_size: 3 padding: PADDING_SAME }
  kConv2DTranspose,  // conv2d_transpose { filters: 3 kernel_size: 3 stride: 1 padding: PADDING_SAME }
};

// 8x8x1 images, noise 8, batch 4. Generator: (8) -> Dense 64 -> BN -> ReLU -> (4,4,4) -> x2 ->
// (4,8,8) -> [layer 5: Conv or ConvT] -> (3,8,8) -> BN -> ReLU -> Conv -> (1,8,8) -> tanh.
// Discriminator: (1,8,8) -> Conv s2 -> (4,4,4) -> LeakyReLU -> Dropout -> Flatten 64 -> Dense 1
// -> sigmoid. Adam lr 0.001 (G) / 0.0005 (D).
gan::v1::GanSpec SmallConvGanSpec(SmallConvLayer5 layer5, gan::v1::NoiseDistribution noise);

}  // namespace gan::testing

#endif  // GAN_TESTS_SMALL_GAN_SPEC_H_
