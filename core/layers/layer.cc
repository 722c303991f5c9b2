#include "core/layers/layer.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/layers/activation.h"
#include "core/layers/batch_norm.h"
#include "core/layers/convolution.h"
#include "core/layers/dense.h"
#include "core/layers/dropout.h"
#include "core/layers/up_sampling2d.h"

namespace gan {

using gan::v1::LayerSpec;

bool IsView(const LayerSpec& spec, Pass pass) {
  switch (spec.layer_case()) {
    case LayerSpec::kFlatten:
    case LayerSpec::kReshape:
      return true;
    case LayerSpec::kActivation:
      return spec.activation().function() == gan::v1::ACTIVATION_FUNCTION_LINEAR;
    case LayerSpec::kDropout:
      return pass == Pass::kInference || spec.dropout().rate() == 0.0f;
    default:
      return false;
  }
}

dnnl::memory::desc PlainDesc(const Dims& per_sample, int64_t batch) {
  dnnl::memory::dims dims = {batch};
  dims.insert(dims.end(), per_sample.begin(), per_sample.end());
  using tag = dnnl::memory::format_tag;
  const tag plain = dims.size() == 2 ? tag::ab : dims.size() == 3 ? tag::abc : tag::abcd;
  return dnnl::memory::desc(dims, dnnl::memory::data_type::f32, plain);
}

absl::StatusOr<std::unique_ptr<Layer>> CreateLayer(const LayerBinding& binding) {
  // dnnl::error is the only exception oneDNN throws; it stops here.
  try {
    switch (binding.shape->spec.layer_case()) {
      case LayerSpec::kConv2D:
        return MakeConv2D(binding);
      case LayerSpec::kConv2DTranspose:
        return MakeConv2DTranspose(binding);
      case LayerSpec::kDense:
        return MakeDense(binding);
      case LayerSpec::kBatchNorm:
        return MakeBatchNorm(binding);
      case LayerSpec::kActivation:
        return MakeActivation(binding);
      case LayerSpec::kDropout:
        return MakeDropout(binding);
      case LayerSpec::kUpSampling2D:
        return MakeUpSampling2D(binding);
      default:
        break;
    }
  } catch (const dnnl::error& e) {
    return absl::InternalError(absl::StrCat("layer ", binding.shape->index,
                                            ": oneDNN could not create a primitive: ", e.what()));
  }
  return absl::InternalError(absl::StrCat("layer ", binding.shape->index, " is a view"));
}

}  // namespace gan
