#ifndef GAN_CORE_PRECISION_H_
#define GAN_CORE_PRECISION_H_

// The arithmetic precision of training (GanSpec.precision) and whether this CPU can run it.
//
// PRECISION_BF16 is mixed precision: convolutions, transposed convolutions and Dense matmuls
// (forward, backward data and backward weights) multiply bf16 activations and weights and
// accumulate in fp32, with fp32 outputs and fp32 weight gradients; master weights, Adam,
// BatchNorm, the element-wise layers and the loss stay fp32. oneDNN 2.6 has fast bf16 kernels only
// on CPUs with AVX512_BF16 (avx512_core_bf16) or AMX (avx512_core_amx); elsewhere BF16 is refused
// with FAILED_PRECONDITION, never run on reference kernels or silently in fp32.

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gan/v1/spec.pb.h"
#include "oneapi/dnnl/dnnl.hpp"

namespace gan {

// PRECISION_UNSPECIFIED is FP32.
gan::v1::Precision EffectivePrecision(const gan::v1::GanSpec& spec);
inline bool UsesBf16(const gan::v1::GanSpec& spec) {
  return EffectivePrecision(spec) == gan::v1::PRECISION_BF16;
}

// Data type the compute layers multiply in: f32, or bf16 for PRECISION_BF16.
dnnl::memory::data_type ComputeDataType(gan::v1::Precision precision);

// OK for FP32 and UNSPECIFIED. For BF16, FAILED_PRECONDITION naming what is missing unless
// oneDNN's effective ISA (the CPU's, capped by ONEDNN_MAX_CPU_ISA) includes AVX512_BF16 and a
// small bf16 convolution and matmul get optimized kernels (forward, backward data, backward
// weights), e.g. "precision: PRECISION_BF16 needs a CPU with AVX512_BF16 or AMX (oneDNN found max
// ISA avx2)". GanTrainer::Create calls it; a server can call it when a job is submitted. An
// out-of-range value is ValidateGanSpec's INVALID_ARGUMENT, not checked here.
absl::Status CheckPrecisionSupported(const gan::v1::GanSpec& spec);

// oneDNN's name of its effective CPU ISA ("avx2", "avx512_core_bf16", "avx512_core_amx", ...).
std::string EffectiveCpuIsaName();

// One oneDNN primitive of a layer and the implementation oneDNN chose for it (for reports and for
// refusing reference kernels on the bf16 hot path).
struct PrimitiveInfo {
  int layer;                        // entry index in the model spec
  std::string primitive;            // "convolution forward", "matmul backward weights", ...
  std::string impl;                 // oneDNN's impl_info_str(): "brg:avx512_core_amx_bf16", ...
  dnnl::memory::data_type compute;  // data type of its multiplications
};

// True for oneDNN's reference (unoptimized) implementations, whose names start with "ref".
bool IsReferenceImpl(const std::string& impl);

// FAILED_PRECONDITION naming the first bf16 primitive of `primitives` that would run a reference
// kernel (`model` is "generator" or "discriminator"); OK otherwise.
absl::Status CheckNoReferenceKernels(const std::string& model,
                                     const std::vector<PrimitiveInfo>& primitives);

}  // namespace gan

#endif  // GAN_CORE_PRECISION_H_
