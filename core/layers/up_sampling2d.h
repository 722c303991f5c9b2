#ifndef GAN_CORE_LAYERS_UP_SAMPLING2D_H_
#define GAN_CORE_LAYERS_UP_SAMPLING2D_H_

#include <memory>

#include "core/layers/layer.h"

namespace gan {

// See core/layers/up_sampling2d.cc for shapes and semantics.
std::unique_ptr<Layer> MakeUpSampling2D(const LayerContext& c);

}  // namespace gan

#endif  // GAN_CORE_LAYERS_UP_SAMPLING2D_H_
