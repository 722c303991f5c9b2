#!/usr/bin/python3
"""Writes the golden reference files that the C++ tests compare the oneDNN engine against.

Run with Debian's PyTorch (the `python3` on PATH may have no torch):

    /usr/bin/python3 scripts/make_reference_data.py            # writes tests/data/reference/
    /usr/bin/python3 scripts/make_reference_data.py --verify   # also rereads every file written
    /usr/bin/python3 scripts/make_reference_data.py --verify-only [--out DIR]
    /usr/bin/python3 scripts/make_reference_data.py --only interchange   # one part: layers|gan|interchange|init

Everything is float32, single-threaded and seeded, so reruns reproduce the files byte for byte
on the same PyTorch build. All files are safetensors, written by `write_safetensors` below (no
safetensors package needed): an 8-byte little-endian u64 header length N, N bytes of JSON
{"__metadata__": {str: str}, name: {"dtype", "shape", "data_offsets"}} padded with spaces to a
multiple of 8, then the raw little-endian data, tensors laid out in sorted name order. Scalars
have shape [] (0-d).

What is written (see docs/architecture.md, "Conventions", for the padding, layout, checkpoint
name and BatchNorm rules reproduced here):

1. layers/<case>.safetensors, one layer each. Metadata: "layer" (the LayerSpec as protobuf JSON),
   "input_shape" (JSON list). Tensors: "input", "grad_output" (the upstream gradient: the loss is
   sum(output * grad_output)), "expected.output", "expected.grad_input", "param.<p>" for every
   state_dict entry p ("weight", "bias", BatchNorm's "running_mean"/"running_var" too),
   "expected.grad.<p>" for the trainable ones, BatchNorm's "expected.running_mean" /
   "expected.running_var" after one training-mode forward, and dropout's "mask".

2. gan/<preset>.safetensors, three full training iterations of the presets seed, seed-dcgan and
   tf-dcgan at batch 4 on 28x28x1 images. Weights are not stored: both sides start from the
   deterministic "test init" (`test_init` below, built on SplitMix64 as in core/random.h), and
   "init.check.<name>" holds the first 8 values of each initialised tensor. Stored: "real", per
   iteration t "iter<t>.z_d"/"iter<t>.z_g" (noise of the D and G steps), the dropout masks of D's
   two passes "iter<t>.d_pass1.mask.<i>" (batch 2B, the D step on [real; fake]) and
   "iter<t>.d_pass2.mask.<i>" (batch B, the G step), the scalars d_loss, g_loss, d_real, d_fake,
   d_accuracy, and per-layer weight-gradient L2 norms "iter<t>.grad_norm.<network>.<i>". After the
   last iteration, for every state_dict tensor P ("generator.1.running_mean", ...):
   "final.index.<P>" (I64, up to 16 flat indices), "final.delta.<P>" (final - initial there),
   "final.delta_sum.<P>", "final.delta_l2.<P>"; "final.<P>" (I64 0-d) for num_batches_tracked.
   The GAN files store dropout masks as U8 (0/1) by default: in F32 the tf-dcgan masks alone
   would be 2.7 MB (--gan-mask-dtype F32 gives F32).

3. interchange/seed_discriminator.safetensors: the seed preset's discriminator as a PyTorch
   nn.Sequential (PyTorch's default init under a fixed seed, then 2 Adam steps on random data),
   its state_dict under the "discriminator." prefix (F32 weights only, no optimizer state), as a
   checkpoint exported from PyTorch would hold it; interchange/seed_discriminator_outputs.safetensors:
   "images" [8,1,28,28] in [-1, 1] (NCHW) and the eval-mode (dropout off) "logits" [8,1] and
   "probabilities" [8,1] (after the final Sigmoid, entry 9). `--only interchange` writes only these.

4. init/pytorch_default_init.safetensors: PyTorch's default initialization of nn.Linear,
   nn.Conv2d and nn.ConvTranspose2d (with in != out channels, where ConvTranspose2d's fan_in,
   from weight dim 1, differs from the input channels) for the shapes of metadata "cases" (JSON:
   [{"name", "layer" (LayerSpec JSON), "input_shape"}]). Per case and parameter p ("weight",
   "bias"): "<name>.<p>.bound", the U(-b, b) bound PyTorch's formulas give (kaiming_uniform_ with
   a = sqrt(5): calculate_gain * sqrt(3 / fan_in); bias 1 / sqrt(fan_in); fan_in from
   torch.nn.init._calculate_fan_in_and_fan_out), and "<name>.<p>.max_abs" / "<name>.<p>.std" of
   the tensor PyTorch drew (seeded). "pytorch.batch_norm.eps" / ".momentum" and "pytorch.adam.eps"
   are the defaults read off nn.BatchNorm2d and torch.optim.Adam.
   init/small_gan_pytorch.safetensors: a small conv GAN (Dense, BatchNorm1d/2d, ConvTranspose2d,
   Conv2d; spec in metadata "spec") initialized by PyTorch and written by
   scripts/export_torch_weights.py as a file for gan-train --init (weights only).
"""

import argparse
import json
import math
import os
import struct
import sys
import zlib

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

DEFAULT_OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "reference")

# ---------------------------------------------------------------------------------------------
# safetensors
# ---------------------------------------------------------------------------------------------

_DTYPES = {"F32": np.dtype("<f4"), "I64": np.dtype("<i8"), "U8": np.dtype("u1")}


def _to_numpy(value):
    """A tensor/array/number as a little-endian numpy array with its safetensors dtype name."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    arr = np.asarray(value)
    # np.array(order="C") rather than np.ascontiguousarray, which turns 0-d scalars into shape [1].
    if arr.dtype == np.float32 or arr.dtype == np.float64:
        return "F32", np.array(arr, dtype="<f4", order="C")
    if arr.dtype == np.int64 or arr.dtype == np.int32:
        return "I64", np.array(arr, dtype="<i8", order="C")
    if arr.dtype == np.uint8 or arr.dtype == np.bool_:
        return "U8", np.array(arr, dtype="u1", order="C")
    raise TypeError(f"unsupported dtype {arr.dtype}")


def write_safetensors(path, tensors, metadata):
    """Writes {name: tensor} with string metadata; tensors laid out in sorted name order."""
    header = {"__metadata__": {str(k): str(v) for k, v in sorted(metadata.items())}}
    blobs = []
    offset = 0
    for name in sorted(tensors):
        dtype, arr = _to_numpy(tensors[name])
        assert arr.shape == tuple(np.shape(tensors[name])), name
        data = arr.tobytes()
        header[name] = {"dtype": dtype, "shape": list(arr.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    header_bytes = json.dumps(header, separators=(",", ":")).encode("utf-8")
    header_bytes += b" " * (-len(header_bytes) % 8)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(header_bytes)))
        f.write(header_bytes)
        for data in blobs:
            f.write(data)


def read_safetensors(path):
    """Reads a safetensors file: returns ({name: numpy array}, metadata dict). Checks the layout."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    if n % 8 != 0 or 8 + n > len(raw):
        raise ValueError(f"{path}: bad header length {n}")
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    metadata = header.pop("__metadata__", {})
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        raise ValueError(f"{path}: metadata values must be strings")
    data = raw[8 + n:]
    tensors = {}
    expected_begin = 0
    for name in sorted(header):
        info = header[name]
        dtype = _DTYPES[info["dtype"]]
        begin, end = info["data_offsets"]
        if begin != expected_begin:
            raise ValueError(f"{path}: {name} is not laid out in sorted order without gaps")
        count = int(np.prod(info["shape"], dtype=np.int64))
        if end - begin != count * dtype.itemsize:
            raise ValueError(f"{path}: {name} has {end - begin} bytes for shape {info['shape']}")
        tensors[name] = np.frombuffer(data[begin:end], dtype=dtype).reshape(info["shape"])
        expected_begin = end
    if expected_begin != len(data):
        raise ValueError(f"{path}: {len(data) - expected_begin} trailing bytes")
    return tensors, metadata


# ---------------------------------------------------------------------------------------------
# Counter-based RNG (core/random.h) and the deterministic "test init"
# ---------------------------------------------------------------------------------------------

_U64 = np.uint64


def splitmix64(x):
    """SplitMix64 finalizer on a uint64 numpy array, wrapping mod 2^64 exactly like core/random.h."""
    x = np.asarray(x, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = x + _U64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> _U64(30))) * _U64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> _U64(27))) * _U64(0x94D049BB133111EB)
        return z ^ (z >> _U64(31))


def uniform_at(key, count):
    """UniformAt(key, i) for i in [0, count) as float64 (exact: 24-bit values / 2^24)."""
    index = np.arange(count, dtype=np.uint64)
    with np.errstate(over="ignore"):
        x = (_U64(key) << _U64(32)) + index
    return (splitmix64(x) >> _U64(40)).astype(np.float64) / float(1 << 24)


INIT_SEED = 7
GENERATOR_KEY_OFFSET = 0
DISCRIMINATOR_KEY_OFFSET = 500


def test_init(net, seed, key_offset):
    """Deterministic init shared with the C++ tests. Entry k (counting only state_dict entries
    ending in .weight/.bias, in state_dict order) uses key seed*1000 + key_offset + k; element i
    (flat, PyTorch layout) gets u = UniformAt(key, i). BatchNorm weight = 1 + (2u-1)*0.1, bias =
    (2u-1)*0.1; any other weight/bias = (2u-1)/sqrt(fan_in), fan_in = numel(layer weight) /
    weight.shape[0]. Computed in float64, then cast to float32. Running stats reset to 0 / 1."""
    modules = dict(net.named_modules())
    state = net.state_dict()
    k = 0
    for name, tensor in state.items():
        if not (name.endswith(".weight") or name.endswith(".bias")):
            continue
        module_name, _, param = name.rpartition(".")
        module = modules[module_name]
        u = uniform_at(seed * 1000 + key_offset + k, tensor.numel())
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            values = (1.0 + (2 * u - 1) * 0.1) if param == "weight" else (2 * u - 1) * 0.1
        else:
            weight = module.weight
            fan_in = weight.numel() // weight.shape[0]
            values = (2 * u - 1) * (1.0 / math.sqrt(fan_in))
        with torch.no_grad():
            tensor.copy_(torch.from_numpy(values.astype(np.float32).reshape(tensor.shape)))
        k += 1
    for module in net.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.reset_running_stats()


# ---------------------------------------------------------------------------------------------
# Layers with the service's conventions
# ---------------------------------------------------------------------------------------------


def keras_same_padding(size, kernel, stride):
    """Keras/TensorFlow 'same' padding of one dimension: (out, before, after); extra pixel after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return out, total // 2, total - total // 2


def keras_pad2d(x, kernel, stride):
    """Pads an NCHW tensor the Keras 'same' way (PyTorch's padding= would pad symmetrically)."""
    _, top, bottom = keras_same_padding(x.shape[2], kernel, stride)
    _, left, right = keras_same_padding(x.shape[3], kernel, stride)
    return F.pad(x, (left, right, top, bottom))


class KConv2d(nn.Conv2d):
    """Conv2D with Keras padding ('same' or 'valid'); weight OIHW."""

    def __init__(self, in_ch, out_ch, kernel, stride=1, padding="same", bias=True):
        super().__init__(in_ch, out_ch, kernel, stride, padding=0, bias=bias)
        self.keras_padding = padding

    def forward(self, x):
        if self.keras_padding == "same":
            x = keras_pad2d(x, self.kernel_size[0], self.stride[0])
        return F.conv2d(x, self.weight, self.bias, self.stride)


class KConvTranspose2d(nn.ConvTranspose2d):
    """Conv2DTranspose with TensorFlow's output size and cropping; weight IOHW."""

    def __init__(self, in_ch, out_ch, kernel, stride=1, padding="same", bias=True):
        super().__init__(in_ch, out_ch, kernel, stride, padding=0, bias=bias)
        self.keras_padding = padding

    def forward(self, x):
        k, s = self.kernel_size[0], self.stride[0]
        y = F.conv_transpose2d(x, self.weight, self.bias, s)  # full: (in - 1) * s + k
        if self.keras_padding == "same":
            crops = []
            for size in x.shape[2:]:
                total = (size - 1) * s + k - size * s
                crops.append((total // 2, total - total // 2))
            (t, b), (l, r) = crops
            y = y[:, :, t:y.shape[2] - b, l:y.shape[3] - r]
        return y


class Reshape(nn.Module):
    """(N, ...) -> (N, C, H, W), C,H,W order."""

    def __init__(self, c, h, w):
        super().__init__()
        self.shape = (c, h, w)

    def forward(self, x):
        return x.reshape(x.shape[0], *self.shape)


class UpSampling2d(nn.Module):
    """Nearest-neighbour upsampling by an integer factor."""

    def __init__(self, size):
        super().__init__()
        self.size = size

    def forward(self, x):
        return x.repeat_interleave(self.size, dim=2).repeat_interleave(self.size, dim=3)


class MaskDropout(nn.Module):
    """Inverted dropout y = x * mask / (1 - rate) that takes its 0/1 masks from `self.masks`, one
    per forward call in training mode, so the C++ side can be fed the same masks."""

    def __init__(self, rate):
        super().__init__()
        self.rate = rate
        self.masks = []
        self.last_input_shape = None

    def forward(self, x):
        self.last_input_shape = tuple(x.shape)
        if not self.training:
            return x
        mask = self.masks.pop(0)
        assert tuple(mask.shape) == tuple(x.shape), (mask.shape, x.shape)
        return x * mask / (1.0 - self.rate)


# ---------------------------------------------------------------------------------------------
# Part 1: per-layer goldens
# ---------------------------------------------------------------------------------------------


def case_seed(name):
    """A stable per-case seed, so adding a case never changes the others' data."""
    return zlib.crc32(name.encode("utf-8"))


def away_from_zero(x, margin=0.05):
    """Moves values with |x| < margin to +-margin (keeps activations away from their kinks)."""
    sign = torch.where(x >= 0, torch.ones_like(x), -torch.ones_like(x))
    return torch.where(x.abs() < margin, sign * margin, x)


def run_layer_case(out_dir, name, layer_json, module, x, extra_tensors=None):
    """Runs one training-mode forward and backward of `module` on `x` and writes the golden."""
    params_before = {k: v.detach().clone() for k, v in module.state_dict().items() if k != "num_batches_tracked"}
    x = x.detach().clone().requires_grad_(True)
    module.train()
    y = module(x)
    grad_output = torch.randn(y.shape)
    module.zero_grad()
    y.backward(grad_output)
    tensors = {
        "input": x.detach(),
        "grad_output": grad_output,
        "expected.output": y.detach(),
        "expected.grad_input": x.grad.detach(),
    }
    for p, value in params_before.items():
        tensors["param." + p] = value
    for p, param in module.named_parameters():
        tensors["expected.grad." + p] = param.grad.detach()
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        tensors["expected.running_mean"] = module.running_mean.detach().clone()
        tensors["expected.running_var"] = module.running_var.detach().clone()
    tensors.update(extra_tensors or {})
    for t in tensors.values():
        assert t.dtype == torch.float32, name
    metadata = {"layer": json.dumps(layer_json, separators=(",", ":")), "input_shape": json.dumps(list(x.shape))}
    path = os.path.join(out_dir, "layers", name + ".safetensors")
    write_safetensors(path, tensors, metadata)
    return path


def _padding_name(padding):
    return "PADDING_SAME" if padding == "same" else "PADDING_VALID"


def _scale_weights(module, gain=1.0):
    """Random normal weights with std gain/sqrt(fan_in) (outputs O(1)), biases N(0, 0.5^2)."""
    with torch.no_grad():
        fan_in = module.weight.numel() // module.weight.shape[0]
        if isinstance(module, nn.ConvTranspose2d):
            # Each output pixel sums over in_channels * (k/stride)^2 taps on average.
            fan_in = module.weight.shape[0] * module.weight[0, 0].numel() / module.stride[0] ** 2
        module.weight.copy_(torch.randn(module.weight.shape) * gain / math.sqrt(fan_in))
        if module.bias is not None:
            module.bias.copy_(torch.randn(module.bias.shape) * 0.5)


def conv2d_cases(out_dir):
    cases = [
        # name, input shape, filters, kernel, stride, padding, bias
        ("conv2d_same_s2", (2, 3, 10, 10), 4, 5, 2, "same", True),
        ("conv2d_valid_s2", (2, 3, 11, 11), 4, 5, 2, "valid", True),
        ("conv2d_same_s1_nobias", (2, 2, 7, 7), 3, 3, 1, "same", False),
        ("conv2d_same_s2_even", (2, 1, 28, 28), 2, 5, 2, "same", True),
        # Few output channels from many inputs: the engine computes these as flipped-kernel
        # transposed convolutions; an even kernel makes the 'same' padding asymmetric.
        ("conv2d_few_filters_same_k4", (2, 16, 6, 6), 1, 4, 1, "same", True),
        ("conv2d_few_filters_valid", (2, 16, 7, 7), 2, 3, 1, "valid", False),
    ]
    paths = []
    for name, shape, filters, k, s, padding, bias in cases:
        torch.manual_seed(case_seed(name))
        module = KConv2d(shape[1], filters, k, s, padding, bias)
        _scale_weights(module)
        layer = {"conv2d": {"filters": filters, "kernelSize": k, "stride": s, "padding": _padding_name(padding),
                            "useBias": bias}}
        paths.append(run_layer_case(out_dir, name, layer, module, torch.randn(shape)))
    return paths


def conv2d_transpose_cases(out_dir):
    cases = [
        ("conv2d_transpose_same_s2", (2, 3, 5, 5), 4, 5, 2, "same", True),
        ("conv2d_transpose_same_s1_nobias", (2, 3, 6, 6), 2, 5, 1, "same", False),
        ("conv2d_transpose_valid_s2", (2, 3, 4, 4), 2, 3, 2, "valid", True),
    ]
    paths = []
    for name, shape, filters, k, s, padding, bias in cases:
        torch.manual_seed(case_seed(name))
        module = KConvTranspose2d(shape[1], filters, k, s, padding, bias)
        _scale_weights(module)
        layer = {"conv2dTranspose": {"filters": filters, "kernelSize": k, "stride": s,
                                     "padding": _padding_name(padding), "useBias": bias}}
        paths.append(run_layer_case(out_dir, name, layer, module, torch.randn(shape)))
    return paths


def dense_cases(out_dir):
    paths = []
    for name, shape, units, bias in [("dense", (4, 7), 5, True), ("dense_nobias", (4, 7), 3, False)]:
        torch.manual_seed(case_seed(name))
        module = nn.Linear(shape[1], units, bias=bias)
        _scale_weights(module)
        layer = {"dense": {"units": units, "useBias": bias}}
        paths.append(run_layer_case(out_dir, name, layer, module, torch.randn(shape)))
    return paths


def batch_norm_cases(out_dir):
    paths = []
    for name, shape, eps, momentum in [("batch_norm_features", (6, 5), 1e-3, 0.01),
                                       ("batch_norm_channels", (4, 3, 5, 5), 1e-5, 0.1)]:
        torch.manual_seed(case_seed(name))
        channels = shape[1]
        cls = nn.BatchNorm1d if len(shape) == 2 else nn.BatchNorm2d
        module = cls(channels, eps=eps, momentum=momentum)
        with torch.no_grad():  # non-trivial parameters and running statistics
            module.weight.copy_(1 + 0.2 * torch.randn(channels))
            module.bias.copy_(0.5 * torch.randn(channels))
            module.running_mean.copy_(0.3 * torch.randn(channels))
            module.running_var.copy_(0.5 + torch.rand(channels))
        x = torch.randn(shape) * 1.5 + torch.randn(channels).reshape((1, channels) + (1,) * (len(shape) - 2))
        layer = {"batchNorm": {"epsilon": eps, "momentum": momentum}}
        paths.append(run_layer_case(out_dir, name, layer, module, x))
    return paths


def activation_cases(out_dir):
    cases = [
        ("leaky_relu", nn.LeakyReLU(0.2), {"function": "ACTIVATION_FUNCTION_LEAKY_RELU", "alpha": 0.2}),
        ("relu", nn.ReLU(), {"function": "ACTIVATION_FUNCTION_RELU"}),
        ("sigmoid", nn.Sigmoid(), {"function": "ACTIVATION_FUNCTION_SIGMOID"}),
        ("tanh", nn.Tanh(), {"function": "ACTIVATION_FUNCTION_TANH"}),
        ("linear", nn.Identity(), {"function": "ACTIVATION_FUNCTION_LINEAR"}),
    ]
    paths = []
    for name, module, activation in cases:
        torch.manual_seed(case_seed(name))
        x = away_from_zero(torch.randn(3, 10) * 1.5)
        paths.append(run_layer_case(out_dir, name, {"activation": activation}, module, x))
    return paths


def dropout_case(out_dir):
    name, rate = "dropout", 0.5
    torch.manual_seed(case_seed(name))
    x = torch.randn(4, 8)
    mask = torch.bernoulli(torch.full(x.shape, 1 - rate))
    module = MaskDropout(rate)
    module.masks.append(mask)
    return [run_layer_case(out_dir, name, {"dropout": {"rate": rate}}, module, x, {"mask": mask})]


def reshaping_cases(out_dir):
    cases = [
        ("up_sampling2d", (2, 3, 4, 5), UpSampling2d(2), {"upSampling2d": {"size": 2}}),
        ("flatten", (2, 3, 4, 4), nn.Flatten(), {"flatten": {}}),
        ("reshape", (2, 48), Reshape(3, 4, 4), {"reshape": {"channels": 3, "height": 4, "width": 4}}),
    ]
    paths = []
    for name, shape, module, layer in cases:
        torch.manual_seed(case_seed(name))
        paths.append(run_layer_case(out_dir, name, layer, module, torch.randn(shape)))
    return paths


def write_layer_goldens(out_dir):
    paths = []
    for family in (conv2d_cases, conv2d_transpose_cases, dense_cases, batch_norm_cases, activation_cases,
                   dropout_case, reshaping_cases):
        paths += family(out_dir)
    return paths


# ---------------------------------------------------------------------------------------------
# Part 2: full GAN iterations per preset
# ---------------------------------------------------------------------------------------------

# Keras' BatchNormalization defaults (epsilon 1e-3, momentum 0.99) in PyTorch's momentum convention.
BN_EPS, BN_MOMENTUM = 1e-3, 0.01
ADAM_BETA2, ADAM_EPS = 0.999, 1e-7
NOISE_DIM = 100


def _bn1d(n):
    return nn.BatchNorm1d(n, eps=BN_EPS, momentum=BN_MOMENTUM)


def _bn2d(n):
    return nn.BatchNorm2d(n, eps=BN_EPS, momentum=BN_MOMENTUM)


def seed_discriminator():
    """The seed's Keras discriminator; entry 9 (Sigmoid) is folded into the loss in training."""
    return nn.Sequential(
        KConv2d(1, 64, 5, 2, "same"), nn.LeakyReLU(0.2),                          # 0-1
        KConv2d(64, 128, 5, 2, "valid"), nn.LeakyReLU(0.2),                       # 2-3
        nn.Flatten(), nn.Linear(128 * 5 * 5, 256), nn.LeakyReLU(0.2),             # 4-6
        MaskDropout(0.5), nn.Linear(256, 1),                                      # 7-8
        nn.Sigmoid())                                                             # 9


def build_preset(preset):
    """Returns (G, D, d_logits, adam settings {net: (lr, beta1)}, noise sampler) for a preset."""
    if preset in ("seed", "seed-dcgan"):
        G = nn.Sequential(
            nn.Linear(NOISE_DIM, 1024), _bn1d(1024), nn.ReLU(),                  # 0-2
            nn.Linear(1024, 128 * 7 * 7), _bn1d(128 * 7 * 7), nn.ReLU(),          # 3-5
            Reshape(128, 7, 7), UpSampling2d(2),                                  # 6-7
            KConv2d(128, 64, 5, 1, "same"), _bn2d(64), nn.ReLU(),                 # 8-10
            UpSampling2d(2), KConv2d(64, 1, 5, 1, "same"), nn.Tanh())             # 11-13
        D = seed_discriminator()
        d_logits = D[:9]
        adam = {"generator": (2e-4, 0.5), "discriminator": (1e-5, 0.1) if preset == "seed" else (2e-4, 0.5)}
        noise = lambda n: torch.rand(n, NOISE_DIM) * 2 - 1
    elif preset == "tf-dcgan":
        G = nn.Sequential(
            nn.Linear(NOISE_DIM, 7 * 7 * 256, bias=False), _bn1d(7 * 7 * 256), nn.LeakyReLU(0.3),  # 0-2
            Reshape(256, 7, 7),                                                                     # 3
            KConvTranspose2d(256, 128, 5, 1, "same", bias=False), _bn2d(128), nn.LeakyReLU(0.3),    # 4-6
            KConvTranspose2d(128, 64, 5, 2, "same", bias=False), _bn2d(64), nn.LeakyReLU(0.3),      # 7-9
            KConvTranspose2d(64, 1, 5, 2, "same", bias=False), nn.Tanh())                           # 10-11
        D = nn.Sequential(
            KConv2d(1, 64, 5, 2, "same"), nn.LeakyReLU(0.3), MaskDropout(0.3),     # 0-2
            KConv2d(64, 128, 5, 2, "same"), nn.LeakyReLU(0.3), MaskDropout(0.3),   # 3-5
            nn.Flatten(), nn.Linear(128 * 7 * 7, 1))                               # 6-7
        d_logits = D
        adam = {"generator": (1e-4, 0.9), "discriminator": (1e-4, 0.9)}
        noise = lambda n: torch.randn(n, NOISE_DIM)
    else:
        raise ValueError(preset)
    return G, D, d_logits, adam, noise


def dropout_layers(net):
    return {int(i): m for i, m in net.named_children() if isinstance(m, MaskDropout)}


def dropout_input_shapes(d_logits, image_shape):
    """Per-sample input shape of every dropout entry of D (one eval-mode pass on zeros)."""
    d_logits.eval()
    with torch.no_grad():
        d_logits(torch.zeros((1,) + image_shape))
    d_logits.train()
    return {i: m.last_input_shape[1:] for i, m in dropout_layers(d_logits).items()}


def weight_grad_norms(net):
    """{layer index: L2 norm of its weight gradient} for every layer with a weight."""
    norms = {}
    for name, param in net.named_parameters():
        index, _, pname = name.partition(".")
        if pname == "weight":
            norms[int(index)] = param.grad.detach().double().norm().item()
    return norms


def spread_indices(numel, count=16):
    """min(numel, count) distinct flat indices spread evenly over [0, numel)."""
    n = min(numel, count)
    if n == 1:
        return np.zeros(1, dtype=np.int64)
    return np.array([(j * (numel - 1)) // (n - 1) for j in range(n)], dtype=np.int64)


def run_gan_preset(out_dir, preset, batch=4, iterations=3, mask_dtype="U8"):
    # One seed for all presets: seed and seed-dcgan then see the same real images, noise and
    # masks, so their first D step is identical and only the optimizers make them differ.
    torch.manual_seed(case_seed("gan"))
    G, D, d_logits, adam, noise = build_preset(preset)
    test_init(G, INIT_SEED, GENERATOR_KEY_OFFSET)
    test_init(D, INIT_SEED, DISCRIMINATOR_KEY_OFFSET)
    G.train()
    D.train()
    tensors = {}
    for net_name, net in (("generator", G), ("discriminator", D)):
        for name, t in net.state_dict().items():
            if name.endswith(".weight") or name.endswith(".bias"):
                tensors[f"init.check.{net_name}.{name}"] = t.flatten()[:8].clone()
    initial = {("generator", k): v.detach().clone() for k, v in G.state_dict().items()}
    initial.update({("discriminator", k): v.detach().clone() for k, v in D.state_dict().items()})

    (lr_g, b1_g), (lr_d, b1_d) = adam["generator"], adam["discriminator"]
    opt_g = torch.optim.Adam(G.parameters(), lr=lr_g, betas=(b1_g, ADAM_BETA2), eps=ADAM_EPS)
    opt_d = torch.optim.Adam(D.parameters(), lr=lr_d, betas=(b1_d, ADAM_BETA2), eps=ADAM_EPS)
    bce = nn.BCEWithLogitsLoss()
    B = batch
    real = torch.rand(B, 1, 28, 28) * 2 - 1
    tensors["real"] = real
    labels_d = torch.cat([torch.ones(B, 1), torch.zeros(B, 1)])
    ones = torch.ones(B, 1)
    drop_shapes = dropout_input_shapes(d_logits, (1, 28, 28))
    drops = dropout_layers(D)
    mask_cast = (lambda m: m.to(torch.uint8)) if mask_dtype == "U8" else (lambda m: m)
    losses = []

    for t in range(iterations):
        p = f"iter{t}."
        z_d, z_g = noise(B), noise(B)
        tensors[p + "z_d"], tensors[p + "z_g"] = z_d, z_g
        for pass_name, n in (("d_pass1", 2 * B), ("d_pass2", B)):
            for i, shape in drop_shapes.items():
                mask = torch.bernoulli(torch.full((n,) + shape, 1 - drops[i].rate))
                drops[i].masks.append(mask)
                tensors[f"{p}{pass_name}.mask.{i}"] = mask_cast(mask)

        # D step on [real; G(z_d)] with labels [1; 0]; G runs in train mode (BN stats update).
        with torch.no_grad():
            fake = G(z_d)
        opt_d.zero_grad()
        logits = d_logits(torch.cat([real, fake]))
        d_loss = bce(logits, labels_d)
        d_loss.backward()
        opt_d.step()
        with torch.no_grad():
            probs = torch.sigmoid(logits)
            tensors[p + "d_real"] = probs[:B].mean()
            tensors[p + "d_fake"] = probs[B:].mean()
            right = torch.cat([logits[:B] > 0, logits[B:] < 0])
            tensors[p + "d_accuracy"] = right.float().mean()
        for i, v in weight_grad_norms(D).items():
            tensors[f"{p}grad_norm.discriminator.{i}"] = torch.tensor(v, dtype=torch.float32)

        # G step through the frozen D with fresh noise and labels 1.
        opt_g.zero_grad()
        for q in D.parameters():
            q.requires_grad_(False)
        g_loss = bce(d_logits(G(z_g)), ones)
        g_loss.backward()
        opt_g.step()
        for q in D.parameters():
            q.requires_grad_(True)
        for i, v in weight_grad_norms(G).items():
            tensors[f"{p}grad_norm.generator.{i}"] = torch.tensor(v, dtype=torch.float32)

        tensors[p + "d_loss"] = d_loss.detach()
        tensors[p + "g_loss"] = g_loss.detach()
        losses.append((d_loss.item(), g_loss.item()))
        assert all(not m.masks for m in drops.values()), "every stored mask must be consumed"

    for net_name, net in (("generator", G), ("discriminator", D)):
        for name, final in net.state_dict().items():
            key = f"{net_name}.{name}"
            if name.endswith("num_batches_tracked"):
                tensors["final." + key] = final.detach().clone().to(torch.int64).reshape(())
                continue
            delta = (final.detach().double() - initial[(net_name, name)].double()).flatten().numpy()
            idx = spread_indices(delta.size)
            tensors["final.index." + key] = idx
            tensors["final.delta." + key] = delta[idx].astype(np.float32)
            tensors["final.delta_sum." + key] = np.float32(delta.sum())
            tensors["final.delta_l2." + key] = np.float32(np.sqrt(np.sum(delta * delta)))

    metadata = {"preset": preset, "batch": str(B), "iterations": str(iterations), "init_seed": str(INIT_SEED),
                "mask_dtype": mask_dtype}
    path = os.path.join(out_dir, "gan", preset + ".safetensors")
    write_safetensors(path, tensors, metadata)
    return path, losses


PRESETS = ("seed", "seed-dcgan", "tf-dcgan")


# ---------------------------------------------------------------------------------------------
# Part 3: checkpoint interchange with PyTorch
# ---------------------------------------------------------------------------------------------

INTERCHANGE_IMAGES = 8
INTERCHANGE_TRAIN_BATCH = 16


def write_interchange(out_dir):
    """The seed preset's discriminator from PyTorch's default init, moved off it by 2 Adam steps on
    random images and labels, saved weights-only as a "discriminator."-prefixed state_dict, plus its
    eval-mode logits and probabilities on random images (the C++ side loads and scores them)."""
    torch.manual_seed(case_seed("interchange"))
    D = seed_discriminator()  # PyTorch's default init, drawn under the seed above
    d_logits = D[:9]
    dropout = D[7]
    opt = torch.optim.Adam(D.parameters(), lr=1e-3, betas=(0.5, ADAM_BETA2), eps=ADAM_EPS)
    bce = nn.BCEWithLogitsLoss()
    D.train()
    for _ in range(2):
        x = torch.rand(INTERCHANGE_TRAIN_BATCH, 1, 28, 28) * 2 - 1
        labels = torch.bernoulli(torch.full((INTERCHANGE_TRAIN_BATCH, 1), 0.5))
        dropout.masks.append(torch.bernoulli(torch.full((INTERCHANGE_TRAIN_BATCH, 256), 1 - dropout.rate)))
        opt.zero_grad()
        bce(d_logits(x), labels).backward()
        opt.step()
    assert not dropout.masks

    D.eval()  # dropout off
    images = torch.rand(INTERCHANGE_IMAGES, 1, 28, 28) * 2 - 1
    with torch.no_grad():
        logits = d_logits(images)
        probabilities = D(images)
    weights = {"discriminator." + k: v.detach().clone() for k, v in D.state_dict().items()}
    weights_path = os.path.join(out_dir, "interchange", "seed_discriminator.safetensors")
    write_safetensors(weights_path, weights, {
        "preset": "seed",
        "source": "scripts/make_reference_data.py write_interchange: PyTorch default init, "
                  "then 2 Adam steps (lr 1e-3, betas (0.5, 0.999)) on random images and labels",
    })
    outputs_path = os.path.join(out_dir, "interchange", "seed_discriminator_outputs.safetensors")
    write_safetensors(outputs_path, {"images": images, "logits": logits, "probabilities": probabilities},
                      {"preset": "seed", "mode": "eval (dropout off)", "images_layout": "NCHW"})
    return [weights_path, outputs_path]


# ---------------------------------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------------------------------


def check_keras_arithmetic():
    """The padding examples of the conventions, so a slip in the helpers fails loudly."""
    assert keras_same_padding(28, 5, 2) == (14, 1, 2)
    assert keras_same_padding(10, 5, 2) == (5, 1, 2)
    assert keras_same_padding(7, 3, 1) == (7, 1, 1)
    y = KConvTranspose2d(1, 1, 5, 2, "same")(torch.zeros(1, 1, 7, 7))
    assert tuple(y.shape[2:]) == (14, 14)
    y = KConvTranspose2d(1, 1, 3, 2, "valid")(torch.zeros(1, 1, 4, 4))
    assert tuple(y.shape[2:]) == (9, 9)
    # SplitMix64 on a known value (Vigna's splitmix64 from state 0 gives 0xE220A8397B1DCDAF).
    assert int(splitmix64(np.uint64(0))) == 0xE220A8397B1DCDAF


def verify(paths):
    """Rereads every file with read_safetensors and checks it round-trips through the writer."""
    for path in paths:
        tensors, metadata = read_safetensors(path)
        tmp = path + ".roundtrip"
        write_safetensors(tmp, {k: v.copy() for k, v in tensors.items()}, metadata)
        with open(path, "rb") as a, open(tmp, "rb") as b:
            same = a.read() == b.read()
        os.remove(tmp)
        if not same:
            raise SystemExit(f"verify: {path} does not round-trip")
        for name, value in tensors.items():
            leaf = name.split(".")[1] if name.startswith("iter") else ""
            if leaf in ("d_loss", "g_loss", "d_real", "d_fake", "d_accuracy", "grad_norm") or \
                    name.startswith(("final.delta_sum.", "final.delta_l2.", "final.generator.", "final.discriminator.")):
                assert value.shape == (), f"{path}: {name} should be 0-d, is {value.shape}"
        if "layer" in metadata:
            json.loads(metadata["layer"])
            assert list(tensors["input"].shape) == json.loads(metadata["input_shape"])
    print(f"verify: {len(paths)} files reread and round-tripped")


# ---------------------------------------------------------------------------------------------
# Part 4: PyTorch's default initialization and a PyTorch-initialized GAN
# ---------------------------------------------------------------------------------------------

# name, LayerSpec (protobuf JSON), per-sample input shape, the PyTorch module of that layer.
INIT_CASES = (
    ("dense", {"dense": {"units": 1024}}, [100], lambda: nn.Linear(100, 1024)),
    ("dense_nobias", {"dense": {"units": 512, "use_bias": False}}, [300],
     lambda: nn.Linear(300, 512, bias=False)),
    ("conv2d", {"conv2d": {"filters": 128, "kernel_size": 5, "stride": 2, "padding": "PADDING_VALID"}},
     [64, 14, 14], lambda: nn.Conv2d(64, 128, 5, 2)),
    ("conv2d_transpose", {"conv2d_transpose": {"filters": 128, "kernel_size": 5, "stride": 1,
                                               "padding": "PADDING_SAME"}},
     [256, 7, 7], lambda: nn.ConvTranspose2d(256, 128, 5, 1)),
    ("conv2d_transpose_to_one", {"conv2d_transpose": {"filters": 1, "kernel_size": 5, "stride": 2,
                                                      "padding": "PADDING_SAME"}},
     [64, 14, 14], lambda: nn.ConvTranspose2d(64, 1, 5, 2)),
    ("conv2d_transpose_widening", {"conv2d_transpose": {"filters": 32, "kernel_size": 3, "stride": 1,
                                                        "padding": "PADDING_SAME"}},
     [8, 6, 6], lambda: nn.ConvTranspose2d(8, 32, 3, 1)),
)

# The small conv GAN of init/small_gan_pytorch.safetensors (tests/small_gan_spec.h's
# SmallConvGanSpec with a Conv2DTranspose at generator entry 5).
SMALL_GAN_SPEC = {
    "generator": {"layers": [
        {"dense": {"units": 64}},
        {"batch_norm": {"epsilon": 0.001, "momentum": 0.01}},
        {"activation": {"function": "ACTIVATION_FUNCTION_RELU"}},
        {"reshape": {"channels": 4, "height": 4, "width": 4}},
        {"up_sampling2d": {"size": 2}},
        {"conv2d_transpose": {"filters": 3, "kernel_size": 3, "stride": 1, "padding": "PADDING_SAME"}},
        {"batch_norm": {}},
        {"activation": {"function": "ACTIVATION_FUNCTION_RELU"}},
        {"conv2d": {"filters": 1, "kernel_size": 3, "padding": "PADDING_SAME"}},
        {"activation": {"function": "ACTIVATION_FUNCTION_TANH"}},
    ]},
    "discriminator": {"layers": [
        {"conv2d": {"filters": 4, "kernel_size": 3, "stride": 2, "padding": "PADDING_SAME"}},
        {"activation": {"function": "ACTIVATION_FUNCTION_LEAKY_RELU", "alpha": 0.2}},
        {"dropout": {"rate": 0.3}},
        {"flatten": {}},
        {"dense": {"units": 1}},
        {"activation": {"function": "ACTIVATION_FUNCTION_SIGMOID"}},
    ]},
    "generator_optimizer": {"learning_rate": 0.001, "beta1": 0.5, "beta2": 0.999, "epsilon": 1e-7},
    "discriminator_optimizer": {"learning_rate": 0.0005, "beta1": 0.5, "beta2": 0.999, "epsilon": 1e-7},
    "noise": {"distribution": "NOISE_DISTRIBUTION_UNIFORM", "dim": 8},
    "image_shape": {"height": 8, "width": 8, "channels": 1},
    "batch_size": 4,
}


def write_init(out_dir):
    """PyTorch's default-init bounds and draws per layer kind, its BatchNorm and Adam defaults, and
    a PyTorch-initialized small GAN as gan-train --init reads it."""
    tensors = {}
    cases = []
    for name, layer, input_shape, make in INIT_CASES:
        torch.manual_seed(case_seed("init." + name))
        module = make()  # reset_parameters(): PyTorch's default init
        fan_in, _ = nn.init._calculate_fan_in_and_fan_out(module.weight)
        gain = nn.init.calculate_gain("leaky_relu", math.sqrt(5))
        bounds = {"weight": gain * math.sqrt(3.0 / fan_in), "bias": 1.0 / math.sqrt(fan_in)}
        for param in ("weight", "bias"):
            value = getattr(module, param)
            if value is None:
                continue
            value = value.detach().double()
            tensors[f"{name}.{param}.bound"] = np.float32(bounds[param])
            tensors[f"{name}.{param}.max_abs"] = np.float32(value.abs().max().item())
            tensors[f"{name}.{param}.std"] = np.float32(value.std(unbiased=False).item())
        cases.append({"name": name, "layer": layer, "input_shape": input_shape})
    bn = nn.BatchNorm2d(1)
    tensors["pytorch.batch_norm.eps"] = np.float32(bn.eps)
    tensors["pytorch.batch_norm.momentum"] = np.float32(bn.momentum)
    tensors["pytorch.adam.eps"] = np.float32(torch.optim.Adam([nn.Parameter(torch.zeros(1))]).defaults["eps"])
    bounds_path = os.path.join(out_dir, "init", "pytorch_default_init.safetensors")
    write_safetensors(bounds_path, tensors, {"cases": json.dumps(cases, separators=(",", ":")),
                                             "torch_version": torch.__version__})

    import export_torch_weights  # noqa: E402  (this directory; imports this module back)
    seed = case_seed("init.small_gan")
    G, D = export_torch_weights.initialized_networks(seed, spec=SMALL_GAN_SPEC)
    gan_path = os.path.join(out_dir, "init", "small_gan_pytorch.safetensors")
    export_torch_weights.write_weights(
        gan_path, G, D, f"scripts/make_reference_data.py write_init: PyTorch default init, "
        f"torch.manual_seed({seed})", SMALL_GAN_SPEC)
    return [bounds_path, gan_path]


def list_outputs(out_dir):
    found = []
    for sub in ("layers", "gan", "interchange", "init"):
        d = os.path.join(out_dir, sub)
        if os.path.isdir(d):
            found += [os.path.join(d, f) for f in sorted(os.listdir(d)) if f.endswith(".safetensors")]
    return found


PARTS = ("layers", "gan", "interchange", "init")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=os.path.normpath(DEFAULT_OUT), help="output directory")
    parser.add_argument("--verify", action="store_true", help="reread every written file with read_safetensors")
    parser.add_argument("--verify-only", action="store_true", help="only reread the files already in --out")
    parser.add_argument("--gan-mask-dtype", choices=["U8", "F32"], default="U8",
                        help="dtype of the dropout masks in gan/*.safetensors")
    parser.add_argument("--only", choices=PARTS, help="write only this part (default: all)")
    args = parser.parse_args()
    if args.verify_only:
        verify(list_outputs(args.out))
        return
    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float32)
    check_keras_arithmetic()
    parts = [args.only] if args.only else PARTS
    paths = []
    if "layers" in parts:
        paths += write_layer_goldens(args.out)
    if "gan" in parts:
        for preset in PRESETS:
            path, losses = run_gan_preset(args.out, preset, mask_dtype=args.gan_mask_dtype)
            paths.append(path)
            print(f"{preset}:")
            for t, (d_loss, g_loss) in enumerate(losses):
                print(f"  iter {t}: d_loss {d_loss:.6f}  g_loss {g_loss:.6f}")
    if "interchange" in parts:
        paths += write_interchange(args.out)
    if "init" in parts:
        paths += write_init(args.out)
    total = sum(os.path.getsize(p) for p in paths)
    print(f"wrote {len(paths)} files to {args.out}, {total} bytes in all")
    if args.verify:
        verify(paths)


if __name__ == "__main__":
    sys.exit(main())
