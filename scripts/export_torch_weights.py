#!/usr/bin/python3
"""Writes a GAN's weights from PyTorch as a safetensors file that gan-train --init loads.

Run with Debian's PyTorch (the `python3` on PATH may have no torch):

    /usr/bin/python3 scripts/export_torch_weights.py --preset seed --out /tmp/torch-init.safetensors
    build/bin/gan-train --preset seed --init /tmp/torch-init.safetensors --steps 100 --out /tmp/run
    /usr/bin/python3 scripts/export_torch_weights.py --spec gan.json --out FILE   # a GanSpec as JSON
    /usr/bin/python3 scripts/export_torch_weights.py --like CHECKPOINT --out FILE # a checkpoint's spec

The generator and discriminator are built as torch.nn.Sequential with one entry per spec entry
(docs/architecture.md, "Conventions"): with --preset by make_reference_data.build_preset, with
--spec or --like by load_checkpoint_in_torch.networks_from_spec. Their weights are PyTorch's
default initialization (each module's reset_parameters() under torch.manual_seed(--seed)), which
stands for any weights a PyTorch user has: replace `initialized_networks` with your own training.
The file holds each network's state_dict under the "generator." / "discriminator." prefix
(F32 weights in PyTorch layouts, BatchNorm running statistics, num_batches_tracked as I64 0-d),
i.e. the names and layouts of this project's checkpoints without the optimizer state, and
metadata "source" and, when known, "spec" (the GanSpec JSON).
"""

import argparse
import json
import os
import sys

import torch

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_reference_data as ref  # noqa: E402  (safetensors writer, preset builders)


def initialized_networks(seed, preset=None, spec=None):
    """(generator, discriminator) with PyTorch's default init drawn under torch.manual_seed(seed),
    built from a preset name or a GanSpec (protobuf JSON as a dict)."""
    torch.manual_seed(seed)
    if preset is not None:
        generator, discriminator = ref.build_preset(preset)[:2]
    else:
        import load_checkpoint_in_torch  # noqa: E402  (imports make_reference_data itself)
        generator, discriminator, _ = load_checkpoint_in_torch.networks_from_spec(spec)
    return generator, discriminator


def network_tensors(generator, discriminator):
    """{"generator.<i>.<param>": tensor, "discriminator.<i>.<param>": tensor} from the state_dicts."""
    tensors = {}
    for model, net in (("generator", generator), ("discriminator", discriminator)):
        for name, value in net.state_dict().items():
            tensors[f"{model}.{name}"] = value.detach().clone()
    return tensors


def write_weights(path, generator, discriminator, source, spec=None):
    metadata = {"source": source}
    if spec is not None:
        metadata["spec"] = json.dumps(spec, separators=(",", ":"), sort_keys=True)
    ref.write_safetensors(path, network_tensors(generator, discriminator), metadata)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--preset", choices=ref.PRESETS, help="the networks of a preset")
    source.add_argument("--spec", metavar="JSON", help="a file holding a GanSpec as protobuf JSON")
    source.add_argument("--like", metavar="CHECKPOINT",
                        help="the networks of the GanSpec in a checkpoint's 'spec' metadata")
    parser.add_argument("--seed", type=int, default=0, help="torch seed of the initialization")
    parser.add_argument("--out", required=True, help="the safetensors file to write")
    args = parser.parse_args()
    torch.set_num_threads(1)

    spec = None
    if args.spec:
        with open(args.spec) as f:
            spec = json.load(f)
    elif args.like:
        _, metadata = ref.read_safetensors(args.like)
        if "spec" not in metadata:
            raise SystemExit(f"{args.like} has no 'spec' metadata")
        spec = json.loads(metadata["spec"])
    generator, discriminator = initialized_networks(args.seed, preset=args.preset, spec=spec)
    what = f"preset {args.preset}" if args.preset else f"spec of {args.spec or args.like}"
    write_weights(args.out, generator, discriminator,
                  f"scripts/export_torch_weights.py: {what}, PyTorch default init, "
                  f"torch.manual_seed({args.seed})", spec)
    count = sum(p.numel() for net in (generator, discriminator) for p in net.parameters())
    print(f"wrote {args.out}: generator {len(generator)} entries, discriminator "
          f"{len(discriminator)} entries, {count} parameters")
    return 0


if __name__ == "__main__":
    sys.exit(main())
