#!/usr/bin/env python3
"""The fraction of the machine's peak FLOP rate one training step reaches, per layer and overall.

Run from the repository root (python3 standard library only):

    scripts/flop_fraction.py --preset seed --batch 64 --threads 2 --precision fp32 --steps 30
    scripts/flop_fraction.py --precision bf16 --build_dir build-flops   # binaries of another build

The binaries are <build_dir>/bin/gan-peak-flops and <build_dir>/bin/gan-bench (--build_dir,
default `build`). One invocation runs, on the same --threads:

 1. gan-peak-flops --json: the attainable peak GFLOP/s per precision, from a large square oneDNN
    matmul (fp32: f32 in and out; bf16: bf16 inputs, f32 output).
 2. gan-bench --json without verbose output: training images/s, hence the time of one step.
 3. gan-bench again under ONEDNN_VERBOSE=2, which prints one line per primitive execution,
        onednn_verbose,exec,cpu,<primitive>,<impl>,<prop kind>,<memory descs>,<attrs>,<aux>,
            <problem desc>,<time ms>
    (oneDNN 2.6; the column order is read from its `prim_template` line), and one
    `onednn_verbose,create:...` line per primitive creation. Level 2 instead of 1 for those create
    lines: gan-bench creates the scorer's primitives after training, so the execution lines
    before that last block of creations are the training steps (3 warm-up ones, then --steps).
    Of those, the last --steps steps count (their sequence must repeat step after step).

Every convolution, deconvolution, matmul and inner product execution gets its FLOPs from its
problem description: 2 * multiply-accumulates, counting the zero padding as the kernels' nominal
work does; backward data and backward weights of a layer do the same multiply-accumulates as its
forward pass. A convolution (n batch, g groups, ic/oc channels, o* output and k* kernel sizes)
does n * oc * ic/g * od*oh*ow * kd*kh*kw; a deconvolution n * ic * oc/g * id*ih*iw * kd*kh*kw; a
matmul MxK:KxN (with any batch dimensions) M*N*K per batch; an inner product mb * oc * ic *
id*ih*iw. An execution multiplies in bf16 when any of its src / weights / dst tensors is bf16, and
its GFLOP/s is compared with that precision's peak.

The per-layer table sums time and FLOPs per (primitive, prop kind, problem, data type) and
divides by the steps: each row's GFLOP/s is the rate inside that primitive. The verbose run's
per-primitive times are what the rows use (verbose output costs time between primitives, not
inside them); the overall figure divides all convolution/matmul FLOPs of a step by the step time
of the run without verbose output (batch / images per second), so it includes everything else a
step does (BatchNorm, activations, reorders, Adam, the loss).
"""

import argparse
import json
import os
import re
import subprocess
import sys

COMPUTE = ("convolution", "deconvolution", "matmul", "inner_product")
DEFAULT_COLUMNS = [
    "operation", "engine", "primitive", "implementation", "prop_kind", "memory_descriptors",
    "attributes", "auxiliary", "problem_desc", "exec_time"
]


def run(command, env=None):
    result = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, check=False)
    if result.returncode != 0:
        sys.stderr.write(result.stderr)
        sys.exit(f"flop_fraction: {' '.join(command)} exited with {result.returncode}")
    return result.stdout


def last_json_line(text):
    for line in reversed(text.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    sys.exit("flop_fraction: no JSON line in the output")


def sizes(desc):
    """{'mb': 64, 'ic': 128, ...} from a problem description such as
    mb64_ic128oc64_ih14oh14kh5sh1dh0ph2_iw14ow14kw5sw1dw0pw2."""
    return {key: int(value) for key, value in re.findall(r"([a-z]+)(\d+)", desc)}


def macs(primitive, desc):
    if primitive in ("convolution", "deconvolution"):
        s = sizes(desc)
        g = s.get("g", 1)
        kernel = s.get("kd", 1) * s.get("kh", 1) * s.get("kw", 1)
        if primitive == "convolution":
            spatial = s.get("od", 1) * s.get("oh", 1) * s.get("ow", 1)
            return s["mb"] * s["oc"] * (s["ic"] // g) * spatial * kernel
        spatial = s.get("id", 1) * s.get("ih", 1) * s.get("iw", 1)
        return s["mb"] * s["ic"] * (s["oc"] // g) * spatial * kernel
    if primitive == "matmul":
        src, _, dst = ([int(d) for d in part.split("x")] for part in desc.split(":"))
        product = 1
        for d in dst:
            product *= d
        return product * src[-1]
    s = sizes(desc)  # inner_product
    return s["mb"] * s["oc"] * s["ic"] * s.get("id", 1) * s.get("ih", 1) * s.get("iw", 1)


def data_type(memory_descs):
    """'bf16' if any src / weights / dst (or their gradients) is bf16, else 'fp32'."""
    for md in memory_descs.split():
        name, _, rest = md.partition("_")
        if name in ("src", "wei", "dst", "diff") and rest.startswith("bf16"):
            return "bf16"
    return "fp32"


def parse_verbose(text):
    """The training executions: a list of dicts, in order, before the scorer's creations."""
    columns = DEFAULT_COLUMNS
    blocks = []  # lists of executions, split by creation lines
    current = []
    for line in text.splitlines():
        if not line.startswith("onednn_verbose,"):
            continue
        fields = line.split(",")
        if fields[1] == "info" and fields[2].startswith("prim_template:"):
            columns = [fields[2].split(":", 1)[1]] + fields[3:]
            continue
        if fields[1].startswith("create"):
            if current:
                blocks.append(current)
                current = []
            continue
        if fields[1] != "exec":
            continue
        # A description field could hold commas: the fixed columns are counted from both ends.
        head = len(columns) - 2  # columns before problem_desc
        row = dict(zip(columns[:head], fields[1:1 + head]))
        row["problem_desc"] = fields[-2]
        row["exec_time"] = float(fields[-1])
        current.append(row)
    if current:
        blocks.append(current)
    if len(blocks) < 2:
        sys.exit("flop_fraction: expected the training executions, then the scorer's creations")
    training = []
    for block in blocks[:-1]:
        training.extend(block)
    return training


def steady_steps(executions, steps):
    """The executions of the last `steps` of 3 + steps steps. The first step may run a few more
    (one-off conversions); every later step runs the same sequence, which gives its length."""
    key = lambda e: (e["primitive"], e["prop_kind"], e["problem_desc"])
    total = len(executions)
    for per_step in range(total // (3 + steps), 0, -1):
        extra = total - per_step * (3 + steps)
        if extra >= per_step:
            break
        tail = [key(e) for e in executions[total - per_step * (2 + steps):]]
        if all(tail[i] == tail[i % per_step] for i in range(len(tail))):
            return executions[total - per_step * steps:], per_step, extra
    sys.exit(f"flop_fraction: {total} training executions do not split into {3 + steps} steps "
             "that repeat")


def load_average():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="seed", help="seed, seed-dcgan or tf-dcgan")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--precision", default="fp32", choices=("fp32", "bf16"))
    parser.add_argument("--steps", type=int, default=30, help="timed steps after 3 warm-up ones")
    parser.add_argument("--top", type=int, default=0,
                        help="print only the N slowest convolution/matmul rows (0: all)")
    parser.add_argument("--build_dir", default="build",
                        help="build directory holding bin/gan-bench and bin/gan-peak-flops")
    args = parser.parse_args()
    bin_dir = os.path.join(args.build_dir, "bin")
    for name in ("gan-peak-flops", "gan-bench"):
        if not os.access(os.path.join(bin_dir, name), os.X_OK):
            sys.exit(f"flop_fraction: no {bin_dir}/{name}; build it with `cmake --build "
                     f"{args.build_dir} -j2 --target gan-peak-flops gan-bench` or pass --build_dir")
    bench = [
        os.path.join(bin_dir, "gan-bench"), "--preset", args.preset, "--batch",
        str(args.batch), "--threads", str(args.threads), "--steps", str(args.steps),
        "--precision", args.precision, "--json"
    ]
    load_before = load_average()

    peak = last_json_line(
        run([os.path.join(bin_dir, "gan-peak-flops"), "--threads", str(args.threads), "--json"]))
    quiet_env = dict(os.environ)
    quiet_env.pop("ONEDNN_VERBOSE", None)
    quiet_env.pop("DNNL_VERBOSE", None)
    measured = last_json_line(run(bench, quiet_env))
    step_ms = 1000.0 * args.batch / measured["train_images_per_s"]
    verbose_env = dict(quiet_env, ONEDNN_VERBOSE="2")
    executions, per_step, extra = steady_steps(parse_verbose(run(bench, verbose_env)), args.steps)
    load_after = load_average()

    print(f"CPU {peak['cpu']}, {peak['engine']}, oneDNN max ISA {peak['isa']}, "
          f"{args.threads} threads; 1-minute load average {load_before:.2f} before, "
          f"{load_after:.2f} after")
    peaks = {}
    for precision in ("fp32", "bf16"):
        p = peak[precision]
        if p["supported"]:
            peaks[precision] = p["peak_gflops"]
            print(f"peak {precision}: {p['peak_gflops']:.1f} GFLOP/s (median "
                  f"{p['median_gflops']:.1f}), matmul {p['size']}^3, {p['impl']}")
        else:
            print(f"peak {precision}: not supported on this CPU: {p['reason']}")
    print(f"gan-bench --preset {args.preset} --batch {args.batch} --precision {args.precision}: "
          f"{measured['train_images_per_s']:.1f} images/s, {step_ms:.2f} ms per step; "
          f"{per_step} primitive executions per step"
          + (f" (the first step {extra} more)" if extra else ""))

    groups = {}
    other = {}
    for e in executions:
        if e["primitive"] not in COMPUTE:
            other[e["primitive"]] = other.get(e["primitive"], 0.0) + e["exec_time"]
            continue
        dtype = data_type(e["memory_descriptors"])
        key = (e["primitive"], e["prop_kind"], e["problem_desc"], dtype)
        g = groups.setdefault(key, {"ms": 0.0, "flops": 0, "calls": 0, "impls": []})
        g["ms"] += e["exec_time"]
        g["flops"] += 2 * macs(e["primitive"], e["problem_desc"])
        g["calls"] += 1
        if e["implementation"] not in g["impls"]:
            g["impls"].append(e["implementation"])

    rows = sorted(groups.items(), key=lambda item: -item[1]["ms"])
    if args.top:
        rows = rows[:args.top]
    print()
    print("| primitive | prop kind | problem | impl | type | calls/step | ms/step | GFLOP/step "
          "| GFLOP/s | of peak |")
    print("|---|---|---|---|---|---:|---:|---:|---:|---:|")
    for (primitive, prop, desc, dtype), g in rows:
        ms = g["ms"] / args.steps
        gflop = g["flops"] / args.steps / 1e9
        rate = gflop / (ms / 1000.0) if ms > 0 else 0.0
        fraction = f"{100.0 * rate / peaks[dtype]:.1f}%" if dtype in peaks else "-"
        print(f"| {primitive} | {prop} | {desc} | {'/'.join(g['impls'])} | {dtype} | "
              f"{g['calls'] // args.steps} | {ms:.2f} | {gflop:.3f} | {rate:.1f} | {fraction} |")

    compute_ms = sum(g["ms"] for g in groups.values()) / args.steps
    compute_gflop = sum(g["flops"] for g in groups.values()) / args.steps / 1e9
    other_ms = sum(other.values()) / args.steps
    run_peak = peaks.get(args.precision)

    def of_peak(rate):
        return f"{100.0 * rate / run_peak:.1f}% of the {args.precision} peak" if run_peak else "-"

    inside = compute_gflop / (compute_ms / 1000.0)
    overall = compute_gflop / (step_ms / 1000.0)
    print()
    print(f"convolution/matmul work per step: {compute_gflop:.3f} GFLOP in {compute_ms:.2f} ms "
          f"of primitive time: {inside:.1f} GFLOP/s inside them, {of_peak(inside)}")
    print(f"other primitives per step: {other_ms:.2f} ms ("
          + ", ".join(f"{k} {v / args.steps:.2f}" for k, v in sorted(other.items(),
                                                                    key=lambda kv: -kv[1]))
          + ")")
    print(f"overall: {compute_gflop:.3f} GFLOP per {step_ms:.2f} ms step (without verbose "
          f"output) = {overall:.1f} GFLOP/s, {of_peak(overall)}")


if __name__ == "__main__":
    main()
