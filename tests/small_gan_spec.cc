#include "tests/small_gan_spec.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"

namespace gan::testing {

gan::v1::GanSpec ParseGanSpec(const char* text) {
  gan::v1::GanSpec spec;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &spec));
  return spec;
}

gan::v1::GanSpec SmallConvGanSpec(SmallConvLayer5 layer5, gan::v1::NoiseDistribution noise) {
  const char* layer5_text =
      layer5 == SmallConvLayer5::kConv2DTranspose
          ? "conv2d_transpose { filters: 3 kernel_size: 3 stride: 1 padding: PADDING_SAME }"
          : "conv2d { filters: 3 kernel_size: 3 padding: PADDING_SAME }";
  const std::string text = absl::StrCat(R"pb(
  generator {
    layers { dense { units: 64 } }                                         # 0
    layers { batch_norm { epsilon: 0.001 momentum: 0.01 } }                # 1
    layers { activation { function: ACTIVATION_FUNCTION_RELU } }           # 2
    layers { reshape { channels: 4 height: 4 width: 4 } }                  # 3
    layers { up_sampling2d { size: 2 } }                                   # 4
    layers { )pb", layer5_text, R"pb( }                                    # 5
    layers { batch_norm {} }                                               # 6
    layers { activation { function: ACTIVATION_FUNCTION_RELU } }           # 7
    layers { conv2d { filters: 1 kernel_size: 3 padding: PADDING_SAME } }  # 8
    layers { activation { function: ACTIVATION_FUNCTION_TANH } }           # 9
  }
  discriminator {
    layers {
      conv2d { filters: 4 kernel_size: 3 stride: 2 padding: PADDING_SAME }
    }  # 0
    layers {
      activation { function: ACTIVATION_FUNCTION_LEAKY_RELU alpha: 0.2 }
    }                                                                # 1
    layers { dropout { rate: 0.3 } }                                 # 2
    layers { flatten {} }                                            # 3
    layers { dense { units: 1 } }                                    # 4
    layers { activation { function: ACTIVATION_FUNCTION_SIGMOID } }  # 5
  }
  generator_optimizer {
    learning_rate: 0.001
    beta1: 0.5
    beta2: 0.999
    epsilon: 1e-7
  }
  discriminator_optimizer {
    learning_rate: 0.0005
    beta1: 0.5
    beta2: 0.999
    epsilon: 1e-7
  }
  noise { distribution: )pb", gan::v1::NoiseDistribution_Name(noise), R"pb( dim: 8 }
  image_shape { height: 8 width: 8 channels: 1 }
  batch_size: 4
)pb");
  return ParseGanSpec(text.c_str());
}

}  // namespace gan::testing
