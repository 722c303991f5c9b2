#include "core/precision.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/engine.h"

namespace gan {
namespace {

using dnnl::memory;
using dt = dnnl::memory::data_type;
using tag = dnnl::memory::format_tag;

bool IsaIncludes(dnnl::cpu_isa isa, dnnl::cpu_isa feature) {
  const auto bits = static_cast<unsigned>(isa), want = static_cast<unsigned>(feature);
  return (bits & want) == want;
}

// Creates a small bf16 convolution (forward, backward data, backward weights with fp32 weight
// gradients) and matmul the way the layers do, and returns the first reference or missing
// implementation, or "" when all of them are optimized.
std::string ProbeBf16Kernels() {
  const dnnl::engine& engine = CpuEngine();
  auto any = [](const memory::dims& d, dt type) { return memory::desc(d, type, tag::any); };
  const memory::dims src = {4, 16, 8, 8}, weights = {32, 16, 3, 3}, dst = {4, 32, 8, 8};
  const memory::dims strides = {1, 1}, pad = {1, 1};
  std::string what = "convolution forward";
  try {
    const dnnl::convolution_forward::primitive_desc fwd(
        dnnl::convolution_forward::desc(
            dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct,
            any(src, dt::bf16), any(weights, dt::bf16), any(dst, dt::f32), strides, pad, pad),
        engine);
    if (IsReferenceImpl(fwd.impl_info_str())) return absl::StrCat(what, " ", fwd.impl_info_str());
    what = "convolution backward data";
    const dnnl::convolution_backward_data::primitive_desc data(
        dnnl::convolution_backward_data::desc(dnnl::algorithm::convolution_direct,
                                              any(src, dt::f32), any(weights, dt::bf16),
                                              any(dst, dt::bf16), strides, pad, pad),
        engine, fwd);
    if (IsReferenceImpl(data.impl_info_str())) {
      return absl::StrCat(what, " ", data.impl_info_str());
    }
    what = "convolution backward weights";
    const dnnl::convolution_backward_weights::primitive_desc wei(
        dnnl::convolution_backward_weights::desc(dnnl::algorithm::convolution_direct,
                                                 any(src, dt::bf16), any(weights, dt::f32),
                                                 any(dst, dt::bf16), strides, pad, pad),
        engine, fwd);
    if (IsReferenceImpl(wei.impl_info_str())) return absl::StrCat(what, " ", wei.impl_info_str());
    what = "matmul";
    const dnnl::matmul::primitive_desc mm(
        dnnl::matmul::desc(memory::desc({16, 64}, dt::bf16, tag::ab),
                           memory::desc({64, 32}, dt::bf16, tag::ab),
                           memory::desc({16, 32}, dt::f32, tag::ab)),
        engine);
    if (IsReferenceImpl(mm.impl_info_str())) return absl::StrCat(what, " ", mm.impl_info_str());
  } catch (const dnnl::error& e) {
    return absl::StrCat(what, ": no implementation (", e.what(), ")");
  }
  return "";
}

}  // namespace

gan::v1::Precision EffectivePrecision(const gan::v1::GanSpec& spec) {
  return spec.precision() == gan::v1::PRECISION_UNSPECIFIED ? gan::v1::PRECISION_FP32
                                                            : spec.precision();
}

dnnl::memory::data_type ComputeDataType(gan::v1::Precision precision) {
  return precision == gan::v1::PRECISION_BF16 ? dt::bf16 : dt::f32;
}

std::string EffectiveCpuIsaName() {
  switch (dnnl::get_effective_cpu_isa()) {
    case dnnl::cpu_isa::sse41:
      return "sse41";
    case dnnl::cpu_isa::avx:
      return "avx";
    case dnnl::cpu_isa::avx2:
      return "avx2";
    case dnnl::cpu_isa::avx2_vnni:
      return "avx2_vnni";
    case dnnl::cpu_isa::avx512_mic:
      return "avx512_mic";
    case dnnl::cpu_isa::avx512_mic_4ops:
      return "avx512_mic_4ops";
    case dnnl::cpu_isa::avx512_core:
      return "avx512_core";
    case dnnl::cpu_isa::avx512_core_vnni:
      return "avx512_core_vnni";
    case dnnl::cpu_isa::avx512_core_bf16:
      return "avx512_core_bf16";
    case dnnl::cpu_isa::avx512_core_amx:
      return "avx512_core_amx";
    default:
      return absl::StrCat("isa 0x",
                          absl::Hex(static_cast<unsigned>(dnnl::get_effective_cpu_isa())));
  }
}

absl::Status CheckPrecisionSupported(const gan::v1::GanSpec& spec) {
  if (!UsesBf16(spec)) return absl::OkStatus();
  const dnnl::cpu_isa isa = dnnl::get_effective_cpu_isa();
  if (!IsaIncludes(isa, dnnl::cpu_isa::avx512_core_bf16)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "precision: PRECISION_BF16 needs a CPU with AVX512_BF16 or AMX (oneDNN found max ISA ",
        EffectiveCpuIsaName(), "); use PRECISION_FP32"));
  }
  // The ISA is enough for oneDNN 2.6; the probe guards against a oneDNN built without them.
  static const std::string* const missing = new std::string(ProbeBf16Kernels());
  if (!missing->empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "precision: PRECISION_BF16 has no optimized oneDNN kernel on this CPU (max ISA ",
        EffectiveCpuIsaName(), "): bf16 ", *missing, "; use PRECISION_FP32"));
  }
  return absl::OkStatus();
}

bool IsReferenceImpl(const std::string& impl) { return absl::StartsWith(impl, "ref"); }

absl::Status CheckNoReferenceKernels(const std::string& model,
                                     const std::vector<PrimitiveInfo>& primitives) {
  for (const PrimitiveInfo& p : primitives) {
    if (p.compute != dt::bf16 || !IsReferenceImpl(p.impl)) continue;
    return absl::FailedPreconditionError(
        absl::StrCat("precision: PRECISION_BF16 would run ", model, " layer ", p.layer, "'s bf16 ",
                     p.primitive, " on oneDNN's reference kernel ", p.impl, " (max ISA ",
                     EffectiveCpuIsaName(), "); use PRECISION_FP32"));
  }
  return absl::OkStatus();
}

}  // namespace gan
