#ifndef GAN_CORE_LAYERS_RELAYOUT_H_
#define GAN_CORE_LAYERS_RELAYOUT_H_

#include <memory>

#include "core/layers/layer.h"

namespace gan {

// Flatten or Reshape that changes layout: the logical reinterpretation is in plain C,H,W order,
// so either a blocked input is reordered into a plain `dst`, or a plain input (seen with the
// output's dims) into a blocked `dst`; the gradient is reordered back. (A plain-to-plain
// Flatten or Reshape is a view.)
std::unique_ptr<Layer> MakeRelayout(const LayerContext& c, const dnnl::memory::desc& dst);

}  // namespace gan

#endif  // GAN_CORE_LAYERS_RELAYOUT_H_
