#!/usr/bin/env python3
"""Summarizes the relative gradient norms of gan-train runs: the figures behind the default
gradient-health thresholds (core/gradient_health.h; docs/seed_question.md, "Gradient health
thresholds").

For every run directory (gan-train --log_every 1 --out DIR: DIR/metrics.jsonl) and every Conv or
Dense layer: min, median and max over the steps of ||grad|| / ||w|| (relative_norm); the steps
whose metric events flag it VANISHING or EXPLODING; and for D the largest |D(x) - 0.5|,
|D(G(z)) - 0.5| and the mean d_loss of the first and last 20 steps.

    /usr/bin/python3 scripts/gradient_health_study.py /tmp/study/seed-leaky_relu /tmp/study/seed-sigmoid
"""

import argparse
import json
import os
import statistics


def load(run_dir):
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f if line.strip()]


def summarize(run_dir):
    rows = load(run_dir)
    print(f"{run_dir}: {len(rows)} steps")
    layers = [g["layer"] for g in rows[0]["gradient_norms"]]
    print(f"  {'layer':16} {'min':>9} {'median':>9} {'max':>9} {'|w| first':>9} {'flags'}")
    for layer in layers:
        entries = [next(g for g in r["gradient_norms"] if g["layer"] == layer) for r in rows]
        if entries[0].get("health", "LAYER_HEALTH_UNSPECIFIED") == "LAYER_HEALTH_UNSPECIFIED":
            continue  # BatchNorm's scale: not assessed
        ratios = [e["relative_norm"] for e in entries]
        flagged = {}
        for r, e in zip(rows, entries):
            if e["health"] != "LAYER_HEALTH_OK":
                flagged.setdefault(e["health"][len("LAYER_HEALTH_"):].lower(), []).append(
                    int(r["step"]))
        flags = ", ".join(f"{k} from step {v[0]} ({len(v)} steps)" for k, v in flagged.items())
        print(f"  {layer:16} {min(ratios):9.4g} {statistics.median(ratios):9.4g} "
              f"{max(ratios):9.4g} {entries[0]['weight_norm']:9.4g} {flags or 'ok'}")
    deviation = max(max(abs(r["d_real"] - 0.5), abs(r["d_fake"] - 0.5)) for r in rows)
    losses = [r["d_loss"] for r in rows]
    d_flags = {}
    for r in rows:
        state = r.get("discriminator_health", "DISCRIMINATOR_HEALTH_OK")
        if state != "DISCRIMINATOR_HEALTH_OK":
            d_flags.setdefault(state[len("DISCRIMINATOR_HEALTH_"):].lower(), []).append(
                int(r["step"]))
    print(f"  D: max |D - 0.5| {deviation:.3f}, last 60 steps "
          f"{max(max(abs(r['d_real'] - 0.5), abs(r['d_fake'] - 0.5)) for r in rows[-60:]):.3f}; "
          f"d_loss first 20 {statistics.mean(losses[:20]):.4f}, last 20 "
          f"{statistics.mean(losses[-20:]):.4f}; "
          + (", ".join(f"{k} from step {v[0]} ({len(v)} steps)" for k, v in d_flags.items())
             or "ok"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="gan-train --out directories")
    for run_dir in parser.parse_args().runs:
        summarize(run_dir)


if __name__ == "__main__":
    main()
