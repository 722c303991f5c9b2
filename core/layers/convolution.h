#ifndef GAN_CORE_LAYERS_CONVOLUTION_H_
#define GAN_CORE_LAYERS_CONVOLUTION_H_

#include <memory>

#include "core/layers/layer.h"

namespace gan {

// See core/layers/convolution.cc for shapes and semantics.
std::unique_ptr<Layer> MakeConv2D(const LayerContext& c);
std::unique_ptr<Layer> MakeConv2DTranspose(const LayerContext& c);

}  // namespace gan

#endif  // GAN_CORE_LAYERS_CONVOLUTION_H_
