#!/usr/bin/python3
"""Loads a checkpoint written by this project (gan-train, the server's jobs) into PyTorch.

Run with Debian's PyTorch (the `python3` on PATH may have no torch):

    build/bin/gan-train --preset seed --steps 3 --dataset synthetic --out /tmp/ck
    /usr/bin/python3 scripts/load_checkpoint_in_torch.py /tmp/ck/checkpoints/step-3.safetensors
    /usr/bin/python3 scripts/load_checkpoint_in_torch.py CHECKPOINT --preset seed   # preset builders

Builds the generator and discriminator as torch.nn.Sequential with one entry per spec entry
(docs/architecture.md, "Conventions"): by default from the GanSpec JSON in the checkpoint's
"spec" metadata, or with --preset from the preset builders of make_reference_data.py. Each network
loads its "<model>." tensors (prefix stripped, optimizer tensors ignored) with
load_state_dict(strict=True). As a further check, the generator draws a few samples in eval mode
(BatchNorm running statistics) and the eval-mode discriminator (dropout off) scores them.
Exit status 0 when both networks load, 1 otherwise.
"""

import argparse
import json
import os
import sys

import torch
import torch.nn as nn

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# The safetensors reader, the layers with Keras padding and the preset builders.
import make_reference_data as ref  # noqa: E402


def _get(params, name, default=None):
    """A field of a protobuf-JSON message under its proto name or its lowerCamelCase JSON name."""
    camel = name.split("_")[0] + "".join(w.capitalize() for w in name.split("_")[1:])
    return params.get(name, params.get(camel, default))


_ACTIVATIONS = {
    "ACTIVATION_FUNCTION_LINEAR": lambda alpha: nn.Identity(),
    "ACTIVATION_FUNCTION_RELU": lambda alpha: nn.ReLU(),
    "ACTIVATION_FUNCTION_LEAKY_RELU": lambda alpha: nn.LeakyReLU(alpha),
    "ACTIVATION_FUNCTION_SIGMOID": lambda alpha: nn.Sigmoid(),
    "ACTIVATION_FUNCTION_TANH": lambda alpha: nn.Tanh(),
}


def build_from_spec(model, input_shape):
    """nn.Sequential for a ModelSpec (protobuf JSON) applied to per-sample `input_shape`, (F,) or
    (C, H, W); defaults as in core/model_shapes: stride 1, padding valid, use_bias true, BatchNorm
    eps 1e-5 and momentum 0.1."""
    modules = []
    shape = tuple(input_shape)
    for index, entry in enumerate(model.get("layers", [])):
        if len(entry) != 1:
            raise ValueError(f"layers[{index}]: expected one layer kind, got {sorted(entry)}")
        (kind, p), = entry.items()
        if kind in ("conv2d", "conv2d_transpose", "conv2dTranspose"):
            k, s = _get(p, "kernel_size"), _get(p, "stride") or 1
            padding = "same" if p.get("padding") == "PADDING_SAME" else "valid"
            bias = _get(p, "use_bias", True)
            if kind == "conv2d":
                modules.append(ref.KConv2d(shape[0], p["filters"], k, s, padding, bias))
                out = [-(-d // s) if padding == "same" else (d - k) // s + 1 for d in shape[1:]]
            else:
                modules.append(ref.KConvTranspose2d(shape[0], p["filters"], k, s, padding, bias))
                out = [d * s if padding == "same" else (d - 1) * s + k for d in shape[1:]]
            shape = (p["filters"], *out)
        elif kind == "dense":
            modules.append(nn.Linear(shape[0], p["units"], bias=_get(p, "use_bias", True)))
            shape = (p["units"],)
        elif kind in ("batch_norm", "batchNorm"):
            cls = nn.BatchNorm1d if len(shape) == 1 else nn.BatchNorm2d
            modules.append(cls(shape[0], eps=p.get("epsilon", 1e-5), momentum=p.get("momentum", 0.1)))
        elif kind == "activation":
            modules.append(_ACTIVATIONS[p["function"]](p.get("alpha", 0.0)))
        elif kind == "dropout":
            modules.append(nn.Dropout(p.get("rate", 0.0)))  # identity in eval mode
        elif kind in ("up_sampling2d", "upSampling2d"):
            modules.append(ref.UpSampling2d(p["size"]))
            shape = (shape[0], shape[1] * p["size"], shape[2] * p["size"])
        elif kind == "flatten":
            modules.append(nn.Flatten())
            shape = (int(torch.tensor(shape).prod()),)
        elif kind == "reshape":
            shape = (p["channels"], p["height"], p["width"])
            modules.append(ref.Reshape(*shape))
        else:
            raise ValueError(f"layers[{index}]: unknown layer kind {kind!r}")
    return nn.Sequential(*modules), shape


def networks_from_spec(spec):
    image = _get(spec, "image_shape")
    image_chw = (image.get("channels", 1), image["height"], image["width"])
    noise = spec["noise"]
    G, g_out = build_from_spec(spec["generator"], (noise["dim"],))
    D, d_out = build_from_spec(spec["discriminator"], image_chw)
    if tuple(g_out) != image_chw or tuple(d_out) != (1,):
        raise ValueError(f"spec maps noise to {g_out} (image {image_chw}) and images to {d_out}")
    if noise.get("distribution") == "NOISE_DISTRIBUTION_NORMAL":
        sample = lambda n: torch.randn(n, noise["dim"])
    else:
        sample = lambda n: torch.rand(n, noise["dim"]) * 2 - 1
    return G, D, sample


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", help="a step-<N>.safetensors file")
    parser.add_argument("--preset", choices=ref.PRESETS,
                        help="build the networks with this preset's builders instead of from the spec")
    parser.add_argument("--samples", type=int, default=8, help="generator samples to score")
    parser.add_argument("--seed", type=int, default=0, help="torch seed of the samples' noise")
    args = parser.parse_args()
    torch.set_num_threads(1)

    arrays, metadata = ref.read_safetensors(args.checkpoint)
    print(f"{args.checkpoint}: format {metadata.get('format')}, step {metadata.get('step')}, "
          f"epoch {metadata.get('epoch')}, seed {metadata.get('seed')}, {len(arrays)} tensors")
    if args.preset:
        G, D, _, _, sample = ref.build_preset(args.preset)
        print(f"networks: preset {args.preset} (make_reference_data.build_preset)")
    else:
        if "spec" not in metadata:
            raise SystemExit("the checkpoint has no 'spec' metadata; pass --preset")
        G, D, sample = networks_from_spec(json.loads(metadata["spec"]))
        print(f"networks: from the checkpoint's spec (generator {len(G)} entries, "
              f"discriminator {len(D)} entries)")

    ignored = sum(name.startswith("optimizer.") for name in arrays)
    other = [n for n in arrays if not n.startswith(("generator.", "discriminator.", "optimizer."))]
    print(f"ignored {ignored} optimizer tensors" + (f"; other tensors: {other}" if other else ""))
    ok = True
    for model, net in (("generator", G), ("discriminator", D)):
        prefix = model + "."
        state = {name[len(prefix):]: torch.from_numpy(a.copy()) for name, a in arrays.items()
                 if name.startswith(prefix)}
        try:
            net.load_state_dict(state, strict=True)
        except RuntimeError as e:
            ok = False
            print(f"{model}: FAILED: {e}")
            continue
        params = sum(p.numel() for p in net.parameters())
        print(f"{model}: OK (load_state_dict strict=True: {len(state)} tensors, {params} parameters)")
    if not ok:
        return 1

    G.eval()
    D.eval()
    torch.manual_seed(args.seed)
    with torch.no_grad():
        images = G(sample(args.samples))
        out = D(images)
        probabilities = out if isinstance(D[-1], nn.Sigmoid) else torch.sigmoid(out)
    print(f"generator samples (eval mode): shape {list(images.shape)}, "
          f"range [{images.min().item():.4f}, {images.max().item():.4f}]")
    print("D(G(z)) (eval mode, dropout off): " + " ".join(f"{p:.4f}" for p in probabilities.flatten().tolist()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
