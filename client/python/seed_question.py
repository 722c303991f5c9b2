#!/usr/bin/python3
"""The seed question with data: why are the seed discriminator's hidden activations LeakyReLU and
not sigmoid like its output?

Trains the same short GAN (preset seed-dcgan, same seed, data and batch) once per discriminator
hidden activation (leaky_relu with alpha 0.2, relu, tanh, sigmoid) through gan-server, collects
every step's weight-gradient norm of the discriminator's four weighted layers from the metric
stream, and writes a figure (norms over steps, log scale, one panel per activation) and a
markdown table (median norm per layer and the first/last layer ratio).

    /usr/bin/python3 client/python/seed_question.py                  # starts its own gan-server
    /usr/bin/python3 client/python/seed_question.py --server 127.0.0.1:50051

Needs the generated stubs (client/python/generate.sh) and Debian's python3-grpcio,
python3-protobuf, python3-numpy, python3-matplotlib.
"""

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import ganclient  # noqa: E402
from ganclient.server import LocalServer  # noqa: E402

ACTIVATIONS = ["leaky_relu", "relu", "tanh", "sigmoid"]
# The weighted entries of the seed discriminator: Conv 64, Conv 128, Dense 256, Dense 1.
LAYERS = ["discriminator.0", "discriminator.2", "discriminator.5", "discriminator.8"]
LAYER_NAMES = {"discriminator.0": "0 Conv 64", "discriminator.2": "2 Conv 128",
               "discriminator.5": "5 Dense 256", "discriminator.8": "8 Dense 1 (out)"}
TAIL = 20
FASHION_MNIST = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"
REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--server", help="address of a running gan-server (default: start one)")
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--threads", type=int, default=2, help="--threads_per_job of a started server")
    p.add_argument("--dataset", help="default: fashion-mnist if available, else synthetic")
    p.add_argument("--figure", default=os.path.join(REPO, "docs", "seed_question.png"))
    p.add_argument("--table", default=os.path.join(REPO, "docs", "seed_question_table.md"))
    p.add_argument("--metrics_out", help="also write the collected norms here as JSON")
    p.add_argument("--metrics_in", help="plot these collected norms instead of training")
    return p.parse_args()


def train(client, activation, args, dataset):
    """Runs one job to the end; returns its step dicts."""
    job_id = client.submit(preset="seed-dcgan", steps=args.steps, batch_size=args.batch,
                           seed=args.seed, dataset=dataset, hidden_activation=activation)
    start = time.monotonic()
    events = []
    for m in client.watch(job_id):
        events.append(m)
        if m["step"] % 25 == 0 or m["step"] == args.steps - 1:
            print(f"  {activation:>10} step {m['step']:4d}  d_loss {m['d_loss']:.3f}  "
                  f"g_loss {m['g_loss']:.3f}  D(x) {m['d_real']:.3f}  "
                  f"D(G(z)) {m['d_fake']:.3f}  |g| conv0 {m['gradient_norms'][LAYERS[0]]:.3g}",
                  flush=True)
    job = client.get(job_id)
    state = ganclient.service_pb2.JobState.Name(job.state)
    if state != "JOB_STATE_SUCCEEDED":
        raise SystemExit(f"job {job_id} ({activation}) ended {state}: {job.error_message}")
    print(f"  {activation}: job {job_id}, {time.monotonic() - start:.0f} s", flush=True)
    return events


def collect(args):
    """{activation: {"steps": [...], layer: [...], "d_loss": [...], ...}} from four jobs."""
    with contextlib.ExitStack() as stack:
        address = args.server
        if address is None:
            data_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="seed-question-"))
            server = stack.enter_context(
                LocalServer(data_dir, "--threads_per_job", str(args.threads)))
            address = server.address
        client = stack.enter_context(ganclient.Client(address))
        dataset = args.dataset or ("fashion-mnist" if os.path.exists(FASHION_MNIST) or args.server
                                   else "synthetic")
        runs = {}
        for activation in ACTIVATIONS:
            try:
                events = train(client, activation, args, dataset)
            except ganclient.Error as e:
                if args.dataset or dataset != "fashion-mnist" or "dataset" not in e.message:
                    raise
                print(f"fashion-mnist unavailable ({e}); using synthetic", flush=True)
                dataset = "synthetic"
                events = train(client, activation, args, dataset)
            runs[activation] = {
                "steps": [m["step"] for m in events],
                **{layer: [m["gradient_norms"][layer] for m in events] for layer in LAYERS},
                **{k: [m[k] for m in events] for k in ("d_loss", "g_loss", "d_real", "d_fake")},
            }
        return {"dataset": dataset, "steps": args.steps, "batch": args.batch, "seed": args.seed,
                "runs": runs}


def table(data):
    """Markdown: median weight-gradient norm per layer and activation, the ratio of the first
    layer's median to the last's, and how well D separates real from fake at the end (means over
    the last TAIL steps: one step is too noisy)."""
    tail = min(TAIL, len(next(iter(data["runs"].values()))["steps"]))
    head = ["D hidden activation"] + [f"`{layer}`" for layer in LAYERS] + [
        "ratio `.0` / `.8`", f"D(x) - D(G(z)), last {tail} steps", f"d_loss, last {tail} steps"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for activation, run in data["runs"].items():
        medians = [float(np.median(run[layer])) for layer in LAYERS]
        cells = [activation + (" (alpha 0.2)" if activation == "leaky_relu" else "")]
        cells += [f"{m:.3g}" for m in medians]
        margin = np.mean(np.subtract(run["d_real"][-tail:], run["d_fake"][-tail:]))
        cells += [f"{medians[0] / medians[-1]:.3g}", f"{margin:+.3f}",
                  f"{np.mean(run['d_loss'][-tail:]):.3f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def figure(data, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(9, 6), dpi=100, sharex=True, sharey=True)
    for ax, (activation, run) in zip(axes.flat, data["runs"].items()):
        for layer in LAYERS:
            ax.plot(run["steps"], run[layer], linewidth=1, label=LAYER_NAMES[layer])
        ax.set_yscale("log")
        ax.set_title(f"D hidden activation: {activation}", fontsize=10)
        ax.grid(True, which="major", alpha=0.3)
    for ax in axes[1]:
        ax.set_xlabel("training step")
    for ax in axes[:, 0]:
        ax.set_ylabel("weight-gradient norm")
    axes[0, 0].legend(fontsize=8, loc="lower left")
    fig.suptitle(f"Seed discriminator's layer gradient norms (seed-dcgan, {data['dataset']}, "
                 f"batch {data['batch']}, seed {data['seed']})", fontsize=11)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main():
    args = parse_args()
    if args.metrics_in:
        with open(args.metrics_in) as f:
            data = json.load(f)
    else:
        data = collect(args)
    if args.metrics_out:
        with open(args.metrics_out, "w") as f:
            json.dump(data, f)
    md = table(data)
    print(md)
    with open(args.table, "w") as f:
        f.write(md)
    figure(data, args.figure)
    print(f"wrote {args.figure} and {args.table}")


if __name__ == "__main__":
    main()
