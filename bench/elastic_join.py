#!/usr/bin/env python3
"""Throughput before and after a node joins: `distbp simulate --nodes 2 --chaos join:@STEP` on the benchmark work, with
the per-step samples/s of the run folder's metrics.jsonl split at the first step that used the joined node's worker.

  python3 bench/elastic_join.py                 # pinned: the first two nodes share CPU 0, the joined node gets CPU 1
  python3 bench/elastic_join.py --no-pin        # every process on every core (on 2 cores the join adds no capacity)

With --pin (the default) the launcher and its first two nodes run on CPU 0 only, and the joined node is moved to CPU 1
as soon as it starts: the cluster had one core's worth of capacity and the join brings a second, as a new machine would.
It also runs the fault-free `train --workers 1` and checks that the weights are the same. Needs a Release build and
dataset-fashion-mnist. Prints one line per figure and writes them as JSON to bench/results/elastic_join.json.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DISTBP = os.path.join(ROOT, "src/DistributedBackprop.Node/bin/Release/net10.0/distbp.dll")
WORK = ["--data", "/usr/share/datasets/fashion-mnist", "--layers", "784-256-128-10", "--lr", "0.1", "--momentum", "0.9",
        "--clip", "5", "--seed", "1", "--batch", "512", "--slices", "8", "--threads", "1", "--checkpoint-every", "0"]


def sha_of(output):
    return next((l.split()[1] for l in output.splitlines() if l.startswith("weights_sha256 ")), None)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--join-at", type=int, default=20)
    parser.add_argument("--no-pin", action="store_true")
    parser.add_argument("--warmup", type=int, default=20, help="steps left out after the start and after the join")
    args = parser.parse_args()
    work = WORK + ["--epochs", str(args.epochs)]
    pin = not args.no_pin
    folder = tempfile.mkdtemp(prefix="elastic-join-")

    oracle = subprocess.run(["dotnet", DISTBP, "train", "--workers", "1", *work, "--run-dir", os.path.join(folder, "train")],
                            capture_output=True, text=True, check=True).stdout
    run_dir = os.path.join(folder, "simulate")
    cmd = ["dotnet", DISTBP, "simulate", "--nodes", "2", *work, "--run-dir", run_dir, "--chaos", f"join:@{args.join_at}"]
    if pin:
        cmd = ["taskset", "-c", "0", *cmd]
    process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = []
    for line in process.stdout:
        output.append(line)
        # "chaos: join:@20 -> node-2 (pid 1234) after step 20"
        if pin and line.startswith("chaos: join:") and "(pid " in line:
            pid = line.split("(pid ")[1].split(")")[0]
            subprocess.run(["taskset", "-a", "-p", "-c", "1", pid], check=True, capture_output=True)
    if process.wait() != 0:
        sys.exit("simulate failed:\n" + "".join(output))

    steps = [json.loads(l) for l in open(os.path.join(run_dir, "metrics.jsonl")) if '"kind":"step"' in l]
    first = next((i for i, s in enumerate(steps) if "worker-2" in s["slices"]), None)
    if first is None:
        sys.exit("no step used the joined node's worker; make the run longer (--epochs)")
    before = [s["samples_per_s"] for s in steps[args.warmup:first]]
    after = [s["samples_per_s"] for s in steps[first + args.warmup:]]
    result = {
        "pinned": pin,
        "steps": len(steps),
        "join_requested_after_step": args.join_at,
        "first_step_with_joined_worker": steps[first]["step"],
        "seconds_from_start_to_that_step": steps[first]["elapsed_s"],
        "median_samples_per_s_before": statistics.median(before),
        "median_samples_per_s_after": statistics.median(after),
        "ratio_after_to_before": statistics.median(after) / statistics.median(before),
        "median_step_ms_before": statistics.median(s["step_ms"] for s in steps[args.warmup:first]),
        "median_step_ms_after": statistics.median(s["step_ms"] for s in steps[first + args.warmup:]),
        "weights_sha256": sha_of("".join(output)),
        "weights_equal_train_workers_1": sha_of("".join(output)) == sha_of(oracle),
    }
    for key, value in result.items():
        print(f"{key}: {value:.3f}" if isinstance(value, float) else f"{key}: {value}")
    os.makedirs(os.path.join(ROOT, "bench", "results"), exist_ok=True)
    name = "elastic_join.json" if pin else "elastic_join_unpinned.json"
    with open(os.path.join(ROOT, "bench", "results", name), "w") as f:
        json.dump(result, f, indent=2)
    return 0 if result["weights_equal_train_workers_1"] else 1


if __name__ == "__main__":
    sys.exit(main())
