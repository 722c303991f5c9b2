#include "core/layers/layer.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/layers/activation.h"
#include "core/layers/batch_norm.h"
#include "core/layers/convolution.h"
#include "core/layers/dense.h"
#include "core/layers/dropout.h"
#include "core/layers/relayout.h"
#include "core/layers/up_sampling2d.h"

namespace gan {

using gan::v1::LayerSpec;

namespace {

// A Reshape of a plain input to an image whose channels fill AVX2's 8-wide blocks writes the
// blocked layout the convolutions after it compute in, so nothing downstream reorders. In mixed
// precision the bf16 (AMX) convolutions compute in nhwc, so the Reshape writes that instead.
bool ReshapeToBlocked(const LayerSpec& spec, const dnnl::memory::desc& src,
                      dnnl::memory::data_type compute) {
  return spec.has_reshape() &&
         (spec.reshape().channels() % 8 == 0 || compute != dnnl::memory::data_type::f32) &&
         spec.reshape().height() * spec.reshape().width() > 1 &&
         src.dims().size() == 2;  // plain (N, F) input: Reshape is the first 4-D tensor
}

}  // namespace

bool IsView(const LayerSpec& spec, Pass pass, const dnnl::memory::desc& src, bool plain_input,
            dnnl::memory::data_type compute) {
  switch (spec.layer_case()) {
    case LayerSpec::kFlatten:
      return plain_input;
    case LayerSpec::kReshape:
      return plain_input && !ReshapeToBlocked(spec, src, compute);
    case LayerSpec::kActivation:
      return spec.activation().function() == gan::v1::ACTIVATION_FUNCTION_LINEAR;
    case LayerSpec::kDropout:
      return pass == Pass::kInference || spec.dropout().rate() == 0.0f;
    default:
      return false;
  }
}

std::string ImplInfo(const dnnl::primitive& primitive) {
  const char* info = nullptr;
  if (dnnl_primitive_desc_query(primitive.get_primitive_desc(), dnnl_query_impl_info_str, 0,
                                &info) != dnnl_success ||
      info == nullptr) {
    return "";
  }
  return info;
}

dnnl::memory::desc PlainDesc(const Dims& per_sample, int64_t batch) {
  dnnl::memory::dims dims = {batch};
  dims.insert(dims.end(), per_sample.begin(), per_sample.end());
  using tag = dnnl::memory::format_tag;
  const tag plain = dims.size() == 2 ? tag::ab : dims.size() == 3 ? tag::abc : tag::abcd;
  return dnnl::memory::desc(dims, dnnl::memory::data_type::f32, plain);
}

absl::StatusOr<std::unique_ptr<Layer>> CreateLayer(const LayerContext& context) {
  // dnnl::error is the only exception oneDNN throws; it stops here.
  try {
    switch (context.shape->spec.layer_case()) {
      case LayerSpec::kConv2D:
        return MakeConv2D(context);
      case LayerSpec::kConv2DTranspose:
        return MakeConv2DTranspose(context);
      case LayerSpec::kDense:
        return MakeDense(context);
      case LayerSpec::kBatchNorm:
        return MakeBatchNorm(context);
      case LayerSpec::kActivation:
        return MakeActivation(context);
      case LayerSpec::kDropout:
        return MakeDropout(context);
      case LayerSpec::kUpSampling2D:
        return MakeUpSampling2D(context);
      case LayerSpec::kFlatten:
        return MakeRelayout(context, PlainDesc(context.shape->output, context.batch));
      case LayerSpec::kReshape: {
        const Dims& out = context.shape->output;
        if (ReshapeToBlocked(context.shape->spec, context.src_desc, context.compute)) {
          return MakeRelayout(context,
                              dnnl::memory::desc({context.batch, out[0], out[1], out[2]},
                                                 dnnl::memory::data_type::f32,
                                                 context.compute == dnnl::memory::data_type::f32
                                                     ? dnnl::memory::format_tag::aBcd8b
                                                     : dnnl::memory::format_tag::acdb));
        }
        return MakeRelayout(context, PlainDesc(out, context.batch));
      }
      default:
        break;
    }
  } catch (const dnnl::error& e) {
    return absl::InternalError(absl::StrCat("layer ", context.shape->index,
                                            ": oneDNN could not create a primitive: ", e.what()));
  }
  return absl::InternalError(absl::StrCat("layer ", context.shape->index, " is a view"));
}

}  // namespace gan
