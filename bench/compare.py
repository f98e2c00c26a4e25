#!/usr/bin/env python3
"""Side-by-side benchmark: distbp against PyTorch on the same work, alternating runs in one session (this machine is
shared and noisy, so only medians and ratios from the same run mean anything).

  python3 bench/compare.py single    # distbp train --workers 1   vs  PyTorch (one process, default threads)
  python3 bench/compare.py cluster   # distbp simulate --nodes 2  vs  PyTorch DDP (gloo, 2 processes)

Needs: apt-get install dataset-fashion-mnist python3-torch libopenblas0-pthread; a Release build of distbp.
Writes every run's JSON under bench/results/<mode>-<UTC time>/ and prints a table of medians.
"""
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.environ.get("DATA", "/usr/share/datasets/fashion-mnist")
RUNS = int(os.environ.get("RUNS", "3"))
DISTBP = os.path.join(ROOT, "src/DistributedBackprop.Node/bin/Release/net10.0/distbp.dll")
TORCH = "/usr/bin/python3"  # Debian's interpreter has python3-torch; the pyenv python3 does not
COMMON = ["--data", DATA, "--layers", "784-256-128-10", "--activation", "relu", "--loss", "cross-entropy",
          "--optimizer", "momentum", "--lr", "0.1", "--momentum", "0.9", "--clip", "5", "--epochs", "2", "--seed", "1"]


def distbp(mode, out, extra):
    summary = os.path.join(out, "summary.json")
    if mode == "single":
        cmd = ["dotnet", DISTBP, "train", "--workers", "1", "--batch", "256", *COMMON, *extra]
    else:
        cmd = ["dotnet", DISTBP, "simulate", "--nodes", "2", "--batch", "512", *COMMON, *extra]
    subprocess.run(cmd + ["--summary-json", summary, "--checkpoint-dir", os.path.join(out, "checkpoints")],
                   check=True, cwd=out, stdout=subprocess.DEVNULL)
    with open(summary) as f:
        return json.load(f)


def torch(mode):
    if mode == "single":
        cmd = [TORCH, os.path.join(ROOT, "bench/pytorch_reference.py"), "--data", DATA, "--batch", "256"]
    else:
        cmd = [TORCH, os.path.join(ROOT, "bench/pytorch_ddp.py"), "--data", DATA, "--procs", "2", "--batch", "256"]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    mode = sys.argv[1] if len(sys.argv) > 1 else "single"
    extra = sys.argv[2:]
    folder = os.path.join(ROOT, "bench/results", f"{mode}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}")
    os.makedirs(folder, exist_ok=True)
    ours, theirs = [], []
    for i in range(RUNS):
        run = os.path.join(folder, f"distbp-{i}")
        os.makedirs(run, exist_ok=True)
        ours.append(distbp(mode, run, extra))
        theirs.append(torch(mode))
        with open(os.path.join(folder, f"pytorch-{i}.json"), "w") as f:
            json.dump(theirs[-1], f, indent=2)
        print(f"run {i}: distbp {ours[-1]['samples_per_second']:,.0f} samples/s acc {ours[-1]['test_accuracy']:.4f} | "
              f"pytorch {theirs[-1]['samples_per_second']:,.0f} samples/s acc {theirs[-1]['test_accuracy']:.4f}",
              flush=True)
    med = lambda xs, k: statistics.median(x[k] for x in xs)
    o, t = med(ours, "samples_per_second"), med(theirs, "samples_per_second")
    print(f"\nmode {mode}, {RUNS} alternating runs, medians (results in {os.path.relpath(folder, ROOT)}):")
    print(f"  distbp   {o:10,.0f} samples/s   test accuracy {med(ours, 'test_accuracy'):.4f}")
    print(f"  pytorch  {t:10,.0f} samples/s   test accuracy {med(theirs, 'test_accuracy'):.4f}")
    print(f"  ratio distbp/pytorch = {o / t:.2f}")
    # Each pair ran back to back, so it shares the machine's state of the moment: the median of the pairs' own ratios
    # is less sensitive to other load than the ratio of the two medians.
    pairs = [x["samples_per_second"] / y["samples_per_second"] for x, y in zip(ours, theirs)]
    print(f"  per-pair ratios {', '.join(f'{r:.2f}' for r in pairs)}; median {statistics.median(pairs):.2f}")
    if "step_seconds" in ours[0]:
        steps = {k: statistics.median(x["step_seconds"][k] for x in ours) * 1000 for k in ours[0]["step_seconds"]}
        print("  distbp per step (ms): " + ", ".join(f"{k} {v:.2f}" for k, v in steps.items()))
        print(f"  distbp bytes per step: {statistics.median(x.get('bytes_per_step', 0) for x in ours):,.0f}")


if __name__ == "__main__":
    main()
