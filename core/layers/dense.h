#ifndef GAN_CORE_LAYERS_DENSE_H_
#define GAN_CORE_LAYERS_DENSE_H_

#include <memory>

#include "core/layers/layer.h"

namespace gan {

// See core/layers/dense.cc for shapes and semantics.
std::unique_ptr<Layer> MakeDense(const LayerContext& c);

}  // namespace gan

#endif  // GAN_CORE_LAYERS_DENSE_H_
