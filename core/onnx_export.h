#ifndef GAN_CORE_ONNX_EXPORT_H_
#define GAN_CORE_ONNX_EXPORT_H_

// A trained network as an ONNX model (ONNX opset kOnnxOpsetVersion, protos and checker of
// Debian's libonnx), for inference anywhere ONNX runs. The model takes and returns exactly what
// the inference protocol's models do (server/inference_tensors.h):
//   discriminator  images [N, H, W, C] float in [-1, 1] (NHWC)
//                  -> logit [N, 1], probability [N, 1] (sigmoid of the logit)
//   generator      noise [N, noise_dim] float -> images [N, H, W, C] float (the generator's range)
// N is a dynamic dimension ("N"). Inside, the graph is the spec's network in NCHW (a Transpose
// turns the discriminator's NHWC input into NCHW, another the generator's output into NHWC): Conv2D
// -> Conv with explicit pads (Keras 'same': the odd pixel after), Conv2DTranspose -> ConvTranspose
// with TensorFlow's cropping as explicit pads, Dense -> Gemm (transB), BatchNorm ->
// BatchNormalization in inference mode (running statistics), UpSampling2D
// -> Resize (nearest, asymmetric, floor), Flatten -> Flatten, Reshape -> Reshape to [0, C, H, W]
// (0 keeps the batch), activations -> Relu, LeakyRelu, Sigmoid, Tanh (linear: nothing), Dropout
// -> nothing (identity at inference). Weights keep their checkpoint names ("generator.0.weight").
// The model passes onnx::checker::check_model before it is returned.

#include <cstdint>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/gan_spec.h"
#include "core/safetensors.h"
#include "gan/v1/spec.pb.h"
#include "onnx/onnx_pb.h"

namespace gan {

// Supported by ONNX 1.12 (Debian 12's libonnx) and every ONNX Runtime release since 1.6.
inline constexpr int64_t kOnnxOpsetVersion = 13;
// The name of the dynamic batch dimension of every input and output.
inline constexpr char kOnnxBatchDimension[] = "N";

enum class OnnxNetwork { kGenerator, kDiscriminator };

// "generator" or "discriminator": the checkpoint prefix of the network's tensors.
absl::string_view OnnxNetworkName(OnnxNetwork network);

// The `network` of `spec` with the weights in `weights` ("<network>.<i>.<param>" F32 tensors in
// PyTorch layouts, as in a checkpoint; other tensors are ignored). INVALID_ARGUMENT for a spec
// that ValidateGanSpec refuses (the batch size plays no part: the model's batch is dynamic) or a
// weight that is missing or of another dtype or shape, naming it; INTERNAL if the checker
// refuses the model.
absl::StatusOr<onnx::ModelProto> ExportOnnx(const gan::v1::GanSpec& spec,
                                            const SafeTensors& weights, OnnxNetwork network,
                                            const GanLimits& limits = {});

// The same for a checkpoint (core/checkpoint.h): the spec comes from its metadata, and its step
// is recorded in the model's metadata_props ("checkpoint_step").
absl::StatusOr<onnx::ModelProto> ExportCheckpointToOnnx(const SafeTensors& checkpoint,
                                                        OnnxNetwork network,
                                                        const GanLimits& limits = {});

}  // namespace gan

#endif  // GAN_CORE_ONNX_EXPORT_H_
