#!/usr/bin/python3
"""The PyTorch peer of gan-bench: the same GAN presets trained with PyTorch on the CPU.

Run it with Debian's PyTorch (`bash scripts/setup.sh --with-torch` installs python3-torch and
libopenblas0-openmp; without OpenBLAS the dense layers fall back to the reference BLAS, ~10x
slower, and the comparison means nothing):

    /usr/bin/python3 bench/torch_peer.py --preset seed --batch 64 --threads 2 --steps 30 --json
    /usr/bin/python3 bench/torch_peer.py --preset seed --bf16 --json     # mixed precision
    /usr/bin/python3 bench/torch_peer.py --preset tf-dcgan --check_checkpoint step-3.safetensors

It measures what build/bin/gan-bench measures, the same way:
  * the networks of core/presets.cc, one torch.nn.Sequential entry per spec entry (so the
    state_dict names are the checkpoint names without the "generator."/"discriminator." prefix),
    with Keras/TensorFlow padding: Conv2D 'same' pads ceil-mode with the odd pixel after,
    Conv2DTranspose 'same' crops the full output the way TensorFlow does (see docs/architecture.md,
    "Conventions"); BatchNorm eps 1e-3 and momentum 0.01 (Keras' 0.99); Glorot-uniform weights
    and zero biases (Keras' defaults, as gan-bench initialises); with --pytorch_defaults
    PyTorch's recipe instead (as gan-train --pytorch_defaults and the JobSpec's
    pytorch_defaults): PyTorch's default init, BatchNorm eps 1e-5 and momentum 0.1, Adam eps 1e-8;
  * Adam with the preset's learning rates and beta1, beta2 0.999, eps 1e-7 (Keras');
  * one iteration as core/gan_trainer.h: D's step on [real; G(z)] with labels [1; 0] (G's forward
    without gradients), then G's step through D (D's weights frozen) with fresh noise and labels
    1; both networks in training mode throughout (batch statistics, dropout on); the final
    sigmoid is folded into the loss (BCEWithLogitsLoss);
  * synthetic data: one fixed real batch; 3 warm-up iterations, then --steps timed ones;
  * scoring: the discriminator in eval mode (dropout off) at --score_batch images per call, with
    the sigmoid, 3 warm-up calls, then as many calls as fit in about 2 seconds.

--bf16 wraps every forward pass and loss in torch.autocast("cpu", dtype=torch.bfloat16), the way
a PyTorch user turns on mixed precision: float32 weights, gradients and Adam, bfloat16 convolutions
and matrix products where the CPU has bf16 kernels.

--json prints one line with the keys of `gan-bench --json`: engine, preset, precision, threads,
batch, steps, train_images_per_s (real images consumed per second), score_batch,
score_images_per_s, peak_rss_bytes, last_d_loss, last_g_loss.

--check_checkpoint FILE compares the peer's networks with the generator./discriminator. tensors
of a checkpoint written by gan-train or gan-server for the same preset (names, shapes and
parameter counts) and exits: 0 when they agree, 1 otherwise.

For sample quality (docs/performance.md, "Sample quality"), --dataset fashion-mnist trains on
Debian's Fashion-MNIST (pixel / 127.5 - 1, as core/dataset.cc; a fresh random order every epoch,
the last partial batch dropped) instead of the one synthetic batch, and --save_samples FILE writes
--sample_count images of the trained generator (eval mode: BatchNorm running statistics, as
`ganctl sample`; torch seed --sample_seed) as an IDX3 file of uint8 pixels, round((x + 1) * 127.5)
as the service rounds, which scripts/sample_quality.py reads. The peer trains 3 warm-up + --steps
iterations. Without these options nothing changes: the default --dataset synthetic is the
benchmark above, and the samples are drawn after the measurements.

    /usr/bin/python3 bench/torch_peer.py --preset seed-dcgan --batch 32 --steps 500 \
        --dataset fashion-mnist --save_samples /tmp/peer-samples.idx --sample_count 2000
"""

import argparse
import gzip
import json
import math
import os
import resource
import struct
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

PRESETS = ("seed", "seed-dcgan", "tf-dcgan")
IMAGE = (1, 28, 28)  # C, H, W of every preset
NOISE_DIM = 100


# ------------------------------------------------------------------------------------------------
# Layers with Keras/TensorFlow padding
# ------------------------------------------------------------------------------------------------

def same_pad(size, kernel, stride):
    """(before, after) padding of Keras' Conv2D 'same' along one dimension of `size` pixels."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class KerasConv2d(nn.Conv2d):
    """Conv2D for a known square input size. Symmetric 'same' padding uses the convolution's own
    padding; asymmetric padding (stride 2 on an even size: one pixel before, two after) pads
    explicitly first."""

    def __init__(self, in_channels, filters, kernel, stride, padding, in_size, bias=True):
        before, after = same_pad(in_size, kernel, stride) if padding == "same" else (0, 0)
        symmetric = before == after
        super().__init__(in_channels, filters, kernel, stride, padding=before if symmetric else 0,
                         bias=bias)
        self.explicit_pad = None if symmetric else (before, after, before, after)

    def forward(self, x):
        if self.explicit_pad is not None:
            x = F.pad(x, self.explicit_pad)
        return super().forward(x)


class KerasConvTranspose2d(nn.ConvTranspose2d):
    """Conv2DTranspose 'same' (out = in * stride): the full transposed convolution,
    (in - 1) * stride + kernel pixels, cropped by TensorFlow's rule (the smaller half before).
    The symmetric part of the crop is the layer's own padding; the odd pixel is sliced off the
    end."""

    def __init__(self, in_channels, filters, kernel, stride, bias=True):
        total = kernel - stride  # full size minus in * stride
        before, after = total // 2, total - total // 2
        super().__init__(in_channels, filters, kernel, stride, padding=before, bias=bias)
        self.extra_after = after - before

    def forward(self, x):
        y = super().forward(x)
        if self.extra_after:
            y = y[:, :, :-self.extra_after, :-self.extra_after]
        return y


# ------------------------------------------------------------------------------------------------
# The presets (core/presets.cc)
# ------------------------------------------------------------------------------------------------

# The two recipes (core/framework_defaults.h): Keras' defaults, which the presets use, and
# PyTorch's, which --pytorch_defaults selects like the JobSpec's pytorch_defaults and gan-train
# --pytorch_defaults: BatchNorm eps and momentum (PyTorch's convention), Adam's eps, and whether
# the weights are redrawn Glorot-uniform with zero biases (Keras) or keep the default
# reset_parameters() draw of nn.Linear / nn.Conv2d / nn.ConvTranspose2d (PyTorch).
RECIPES = {
    "keras": {"bn_eps": 1e-3, "bn_momentum": 0.01, "adam_eps": 1e-7, "glorot": True},
    "pytorch": {"bn_eps": 1e-5, "bn_momentum": 0.1, "adam_eps": 1e-8, "glorot": False},
}
recipe = RECIPES["keras"]  # set by main() before the networks are built


def bn1d(features):
    return nn.BatchNorm1d(features, eps=recipe["bn_eps"], momentum=recipe["bn_momentum"])


def bn2d(channels):
    return nn.BatchNorm2d(channels, eps=recipe["bn_eps"], momentum=recipe["bn_momentum"])


def seed_networks():
    generator = nn.Sequential(
        nn.Linear(NOISE_DIM, 1024), bn1d(1024), nn.ReLU(),                        # 0-2
        nn.Linear(1024, 128 * 7 * 7), bn1d(128 * 7 * 7), nn.ReLU(),               # 3-5
        nn.Unflatten(1, (128, 7, 7)), nn.Upsample(scale_factor=2, mode="nearest"),  # 6-7
        KerasConv2d(128, 64, 5, 1, "same", 14), bn2d(64), nn.ReLU(),              # 8-10
        nn.Upsample(scale_factor=2, mode="nearest"),                              # 11
        KerasConv2d(64, 1, 5, 1, "same", 28),                                     # 12
        nn.Tanh())                                                                # 13
    discriminator = nn.Sequential(
        KerasConv2d(1, 64, 5, 2, "same", 28), nn.LeakyReLU(0.2),                  # 0-1: 28 -> 14
        KerasConv2d(64, 128, 5, 2, "valid", 14), nn.LeakyReLU(0.2),               # 2-3: 14 -> 5
        nn.Flatten(), nn.Linear(128 * 5 * 5, 256), nn.LeakyReLU(0.2),             # 4-6
        nn.Dropout(0.5), nn.Linear(256, 1),                                       # 7-8
        nn.Sigmoid())                                                             # 9
    return generator, discriminator


def tf_dcgan_networks():
    generator = nn.Sequential(
        nn.Linear(NOISE_DIM, 7 * 7 * 256, bias=False), bn1d(12544), nn.LeakyReLU(0.3),       # 0-2
        nn.Unflatten(1, (256, 7, 7)),                                                        # 3
        KerasConvTranspose2d(256, 128, 5, 1, bias=False), bn2d(128), nn.LeakyReLU(0.3),      # 4-6
        KerasConvTranspose2d(128, 64, 5, 2, bias=False), bn2d(64), nn.LeakyReLU(0.3),        # 7-9
        KerasConvTranspose2d(64, 1, 5, 2, bias=False), nn.Tanh())                            # 10-11
    discriminator = nn.Sequential(
        KerasConv2d(1, 64, 5, 2, "same", 28), nn.LeakyReLU(0.3), nn.Dropout(0.3),    # 0-2: 28 -> 14
        KerasConv2d(64, 128, 5, 2, "same", 14), nn.LeakyReLU(0.3), nn.Dropout(0.3),  # 3-5: 14 -> 7
        nn.Flatten(), nn.Linear(128 * 7 * 7, 1))                                     # 6-7
    return generator, discriminator


def build_preset(name):
    """(generator, discriminator, logits network, noise sampler, D's Adam, G's Adam)."""
    if name == "tf-dcgan":
        generator, discriminator = tf_dcgan_networks()
        noise = lambda n: torch.randn(n, NOISE_DIM)
        d_adam, g_adam = (1e-4, 0.9), (1e-4, 0.9)
    else:
        generator, discriminator = seed_networks()
        noise = lambda n: torch.rand(n, NOISE_DIM) * 2 - 1
        d_adam = (1e-5, 0.1) if name == "seed" else (2e-4, 0.5)
        g_adam = (2e-4, 0.5)
    # The final sigmoid entry is folded into the loss in training and applied when scoring.
    logits = discriminator[:-1] if isinstance(discriminator[-1], nn.Sigmoid) else discriminator
    return generator, discriminator, logits, noise, d_adam, g_adam


def glorot_init(net):
    """Keras' defaults, as gan-bench initialises: Glorot-uniform kernels, zero biases (BatchNorm
    keeps PyTorch's weight 1, bias 0, running mean 0, variance 1)."""
    for module in net.modules():
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.xavier_uniform_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)


def adam(params, lr_beta1):
    lr, beta1 = lr_beta1
    return torch.optim.Adam(params, lr=lr, betas=(beta1, 0.999), eps=recipe["adam_eps"])


# ------------------------------------------------------------------------------------------------
# Checking the networks against a checkpoint of this project
# ------------------------------------------------------------------------------------------------

def safetensors_shapes(path):
    """{tensor name: shape} from a safetensors file's header."""
    with open(path, "rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(length).decode("utf-8"))
    return {name: tuple(info["shape"]) for name, info in header.items() if name != "__metadata__"}


def check_checkpoint(path, generator, discriminator):
    stored = safetensors_shapes(path)
    ok = True
    for prefix, net in (("generator.", generator), ("discriminator.", discriminator)):
        ours = {prefix + name: tuple(t.shape) for name, t in net.state_dict().items()}
        theirs = {name: shape for name, shape in stored.items() if name.startswith(prefix)}
        for name in sorted(set(ours) | set(theirs)):
            if ours.get(name) != theirs.get(name):
                ok = False
                print(f"{name}: peer {ours.get(name)}, checkpoint {theirs.get(name)}")
        count = lambda shapes: sum(math.prod(s) for n, s in shapes.items()
                                   if not n.endswith(("running_mean", "running_var",
                                                      "num_batches_tracked")))
        print(f"{prefix[:-1]}: {len(ours)} tensors, {count(ours)} trainable parameters in the "
              f"peer; {len(theirs)} tensors, {count(theirs)} in the checkpoint")
    print("the peer's networks match the checkpoint" if ok else "MISMATCH")
    return 0 if ok else 1


# ------------------------------------------------------------------------------------------------
# Fashion-MNIST and samples, for sample quality
# ------------------------------------------------------------------------------------------------

def fashion_mnist_batches(data_dir, batch, seed):
    """An endless iterator of training batches (B, 1, 28, 28) in [-1, 1]: every epoch in a fresh
    random order from its own torch.Generator (the global RNG's noise stream is untouched), the
    last partial batch dropped."""
    path = os.path.join(data_dir, "train-images-idx3-ubyte")
    if not os.path.exists(path):
        path += ".gz"
    with (gzip.open if path.endswith(".gz") else open)(path, "rb") as f:
        raw = f.read()
    magic, n, h, w = struct.unpack(">IIII", raw[:16])
    if magic != 0x803 or (h, w) != IMAGE[1:] or len(raw) != 16 + n * h * w:
        raise ValueError(f"{path}: not an IDX file of 28x28 uint8 images")
    images = torch.frombuffer(bytearray(raw[16:]), dtype=torch.uint8).reshape(n, *IMAGE)
    images = images.float() / 127.5 - 1
    order = torch.Generator().manual_seed(seed)
    while True:
        perm = torch.randperm(n, generator=order)
        for start in range(0, n - batch + 1, batch):
            yield images[perm[start:start + batch]]


def save_samples(path, generator, noise, count, seed):
    """`count` eval-mode generator samples as an IDX3 file of uint8 (count, 28, 28) pixels."""
    generator.eval()
    torch.manual_seed(seed)
    chunks = []
    with torch.no_grad():
        for start in range(0, count, 500):
            images = generator(noise(min(500, count - start)))
            chunks.append(torch.round((images.clamp(-1, 1) + 1) * 127.5).to(torch.uint8))
    pixels = torch.cat(chunks)
    with open(path, "wb") as f:
        f.write(struct.pack(">IIII", 0x803, count, IMAGE[1], IMAGE[2]))
        f.write(pixels.numpy().tobytes())


# ------------------------------------------------------------------------------------------------
# The benchmark
# ------------------------------------------------------------------------------------------------

def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", choices=PRESETS, default="seed")
    parser.add_argument("--batch", type=int, default=64, help="training batch size")
    parser.add_argument("--threads", type=int, default=2, help="intra-op threads")
    parser.add_argument("--steps", type=int, default=30,
                        help="timed iterations after 3 warm-up ones")
    parser.add_argument("--score_batch", "--score-batch", type=int, default=256,
                        help="discriminator inference batch")
    parser.add_argument("--bf16", action="store_true",
                        help='mixed precision: torch.autocast("cpu", dtype=torch.bfloat16)')
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    parser.add_argument("--check_checkpoint", metavar="FILE",
                        help="compare the networks with a checkpoint of the same preset and exit")
    parser.add_argument("--dataset", choices=("synthetic", "fashion-mnist"), default="synthetic",
                        help="training data: one fixed random batch (the benchmark) or "
                             "Fashion-MNIST (for sample quality)")
    parser.add_argument("--data_dir", default="/usr/share/datasets/fashion-mnist",
                        help="where --dataset fashion-mnist finds train-images-idx3-ubyte[.gz]")
    parser.add_argument("--save_samples", metavar="FILE",
                        help="after training, write --sample_count generator samples (eval mode) "
                             "to FILE as IDX3 uint8 images")
    parser.add_argument("--sample_count", type=int, default=2000, help="images --save_samples writes")
    parser.add_argument("--sample_seed", type=int, default=1, help="torch seed of the samples' noise")
    parser.add_argument("--pytorch_defaults", action="store_true",
                        help="PyTorch's recipe instead of the presets' Keras one: default init of "
                             "Linear/Conv2d/ConvTranspose2d, BatchNorm eps 1e-5 momentum 0.1, Adam "
                             "eps 1e-8 (as gan-train --pytorch_defaults)")
    args = parser.parse_args()
    global recipe
    recipe = RECIPES["pytorch" if args.pytorch_defaults else "keras"]
    if min(args.batch, args.threads, args.steps, args.score_batch, args.sample_count) < 1:
        parser.error("--batch, --threads, --steps, --score_batch and --sample_count must be "
                     "positive")

    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    generator, discriminator, d_logits, noise, d_adam, g_adam = build_preset(args.preset)
    if args.check_checkpoint:
        return check_checkpoint(args.check_checkpoint, generator, discriminator)
    if recipe["glorot"]:
        glorot_init(generator)
        glorot_init(discriminator)
    generator.train()
    discriminator.train()
    d_opt = adam(discriminator.parameters(), d_adam)
    g_opt = adam(generator.parameters(), g_adam)
    d_params = list(discriminator.parameters())

    b = args.batch
    real = torch.rand(b, *IMAGE) * 2 - 1
    batches = (fashion_mnist_batches(args.data_dir, b, 1) if args.dataset == "fashion-mnist"
               else None)
    d_labels = torch.cat([torch.ones(b, 1), torch.zeros(b, 1)])
    g_labels = torch.ones(b, 1)
    bce = nn.BCEWithLogitsLoss()

    def mixed():
        return torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16)

    def iteration(real):
        # D's step on [real; G(z_d)].
        with torch.no_grad(), mixed():
            fake = generator(noise(b))
        d_opt.zero_grad(set_to_none=True)
        with mixed():
            d_loss = bce(d_logits(torch.cat([real, fake])).float(), d_labels)
        d_loss.backward()
        d_opt.step()
        # G's step through the updated D, whose weights stay frozen.
        g_opt.zero_grad(set_to_none=True)
        for p in d_params:
            p.requires_grad_(False)
        with mixed():
            g_loss = bce(d_logits(generator(noise(b))).float(), g_labels)
        g_loss.backward()
        g_opt.step()
        for p in d_params:
            p.requires_grad_(True)
        return d_loss, g_loss

    for _ in range(3):
        iteration(real if batches is None else next(batches))
    start = time.perf_counter()
    for _ in range(args.steps):
        d_loss, g_loss = iteration(real if batches is None else next(batches))
    train_ips = args.steps * b / (time.perf_counter() - start)

    discriminator.eval()
    images = torch.full((args.score_batch, *IMAGE), 0.5)
    with torch.no_grad(), mixed():
        for _ in range(3):
            torch.sigmoid(d_logits(images))
        scored = 0
        start = time.perf_counter()
        while time.perf_counter() - start < 2.0:
            torch.sigmoid(d_logits(images))
            scored += args.score_batch
        score_ips = scored / (time.perf_counter() - start)

    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    if args.save_samples:
        save_samples(args.save_samples, generator, noise, args.sample_count, args.sample_seed)
        print(f"wrote {args.sample_count} samples to {args.save_samples}", file=sys.stderr)
    precision = "bf16" if args.bf16 else "fp32"
    if args.json:
        print(json.dumps({
            "engine": "pytorch-" + torch.__version__, "preset": args.preset,
            "precision": precision, "threads": args.threads, "batch": b, "steps": args.steps,
            "train_images_per_s": round(train_ips, 1), "score_batch": args.score_batch,
            "score_images_per_s": round(score_ips, 1), "peak_rss_bytes": peak_rss,
            "last_d_loss": round(d_loss.item(), 4), "last_g_loss": round(g_loss.item(), 4)}))
    else:
        print(f"preset {args.preset} ({precision}), batch {b}, {args.threads} threads: training "
              f"{train_ips:.1f} images/s, scoring {score_ips:.1f} images/s (batch "
              f"{args.score_batch}), peak RSS {peak_rss / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
