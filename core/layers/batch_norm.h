#ifndef GAN_CORE_LAYERS_BATCH_NORM_H_
#define GAN_CORE_LAYERS_BATCH_NORM_H_

#include <memory>

#include "core/layers/layer.h"

namespace gan {

// See core/layers/batch_norm.cc for shapes and semantics.
std::unique_ptr<Layer> MakeBatchNorm(const LayerContext& c);

}  // namespace gan

#endif  // GAN_CORE_LAYERS_BATCH_NORM_H_
