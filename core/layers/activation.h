#ifndef GAN_CORE_LAYERS_ACTIVATION_H_
#define GAN_CORE_LAYERS_ACTIVATION_H_

#include <memory>

#include "core/layers/layer.h"

namespace gan {

// See core/layers/activation.cc for shapes and semantics.
std::unique_ptr<Layer> MakeActivation(const LayerContext& c);

}  // namespace gan

#endif  // GAN_CORE_LAYERS_ACTIVATION_H_
