#!/usr/bin/env python3
"""Random fault campaign: R random --chaos schedules drawn from a seed, each run with `distbp simulate` on the same work,
checked against the fault-free run (weights_sha256), a wall-time bound (no hang) and the exit code (0; a fault is never
exit 2). Prints a table (schedule, exit, wall, time from each fault to the next completed step) and the failing
schedules, each replayable with --chaos.

  python3 bench/chaos_campaign.py --runs 50 --seed 7          # the long campaign of bench/README.md
  python3 bench/chaos_campaign.py --quick --runs 3 --seed 1 --min-bound 90   # CI's (embedded sample, tiny work)

Schedules have one to three faults: kill, stop (freeze), partition, nan, slow or leave (a graceful leave, not
restarted), on any node or the coordinator, or join (a new node), at a random step; about half put two or three faults within a few steps of each other, and some start with a coordinator
kill followed by another fault during the hand-over. Needs a Release build (and dataset-fashion-mnist unless --quick).
Exit status: 0 when every run passed, 1 otherwise.
"""
import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DISTBP = os.path.join(ROOT, "src/DistributedBackprop.Node/bin/Release/net10.0/distbp.dll")
DATA = "/usr/share/datasets/fashion-mnist"

# The benchmark work of the fault figures (issue: random fault schedules): batch 512, 8 slices, one epoch, 117 steps.
BENCH_WORK = ["--data", DATA, "--layers", "784-256-128-10", "--lr", "0.1", "--momentum", "0.9", "--clip", "5",
              "--epochs", "1", "--seed", "1", "--batch", "512", "--slices", "8", "--checkpoint-every", "25"]
# The embedded sample (no dataset needed), a small model: for CI.
QUICK_WORK = ["--layers", "784-32-10", "--epochs", "3", "--seed", "1", "--batch", "64", "--slices", "8",
              "--checkpoint-every", "20"]


def draw_schedule(rng, nodes, steps, owners=False):
    """One to three faults; half of the multi-fault schedules close together; some during a coordinator hand-over."""
    count = rng.choice([1, 2, 2, 3, 3])
    first = rng.randrange(5, max(6, steps - 15))
    close = count > 1 and rng.random() < 0.5
    handover = count > 1 and rng.random() < 0.3
    events = []
    for i in range(count):
        step = first if i == 0 else (events[-1][2] + (rng.randrange(1, 6) if close else rng.randrange(5, max(6, steps // 2))))
        step = min(step, steps - 3)
        if i == 0 and handover:
            action, target = "kill", "coordinator"
        else:
            action = rng.choice(["kill", "kill", "stop", "partition", "nan", "slow", "join", "leave"])
            # With sharded aggregation a fault may also aim at a range's owner (owner-K).
            targets = [f"node-{k}" for k in range(nodes)] + ["coordinator"] + ([f"owner-{k}" for k in range(nodes)] if owners else [])
            target = "" if action == "join" else rng.choice(targets)
        events.append((action, target, step))
    texts = []
    for action, target, step in events:
        duration = {"stop": f"/{rng.choice([1, 2, 3, 5])}s", "partition": f"/{rng.choice([1, 2, 3])}s",
                    "slow": f"/{rng.choice([200, 500, 1000])}ms"}.get(action, "")
        texts.append(f"{action}:{target}@{step}{duration}")
    return ",".join(texts)


def run(work, nodes, chaos, folder, bound):
    """One simulate run: exit code, wall seconds, summary (or None), the log's tail."""
    os.makedirs(folder, exist_ok=True)
    summary = os.path.join(folder, "summary.json")
    cmd = ["dotnet", DISTBP, "simulate", "--nodes", str(nodes), *work, "--run-dir", os.path.join(folder, "run"),
           "--summary-json", summary, "--out", os.path.join(folder, "model.bin")]
    if chaos:
        cmd += ["--chaos", chaos]
    start = time.monotonic()
    with open(os.path.join(folder, "output.log"), "w") as log:
        try:
            code = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, timeout=bound, cwd=folder).returncode
        except subprocess.TimeoutExpired:
            code = "over bound"
    wall = time.monotonic() - start
    result = json.load(open(summary)) if os.path.exists(summary) and code == 0 else None
    return code, wall, result


def recoveries(result):
    """Seconds from each recorded fault to the next completed step, in the summary's fault list."""
    if result is None:
        return ""
    faults = (result.get("faults") or {}).get("detected") or []
    return ", ".join(f"{f.get('kind')} {f['recovery_seconds']:.2f}s" if f.get("recovery_seconds") is not None
                     else f"{f.get('kind')} -" for f in faults[:6]) + (" …" if len(faults) > 6 else "")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="the embedded sample and a tiny model (CI)")
    parser.add_argument("--bound", type=float, default=4.0, help="wall-time bound, times the fault-free run (default 4)")
    parser.add_argument("--min-bound", type=float, default=0.0, help="the wall-time bound is at least this many seconds")
    parser.add_argument("--out", default=None, help="folder for the runs (default: a new one under bench/results)")
    parser.add_argument("--schedule", action="append", default=[], help="run this --chaos schedule too (replay)")
    parser.add_argument("--aggregation", default="coordinator", choices=["coordinator", "sharded"],
                        help="where gradients are summed (sharded: faults also aim at range owners, owner-K)")
    args = parser.parse_args()

    work = (QUICK_WORK if args.quick else BENCH_WORK) + ["--aggregation", args.aggregation]
    results = os.path.join(ROOT, "bench/results")
    os.makedirs(results, exist_ok=True)
    out = args.out or tempfile.mkdtemp(prefix=time.strftime("chaos-%Y%m%d-%H%M%S-"), dir=results)
    os.makedirs(out, exist_ok=True)
    code, clean_wall, clean = run(work, args.nodes, "", os.path.join(out, "fault-free"), bound=600)
    if clean is None:
        print(f"the fault-free run failed (exit {code}); see {out}/fault-free/output.log", file=sys.stderr)
        return 1
    steps, sha = clean["steps"], clean["weights_sha256"]
    # The bound is on the whole run, start-up included; --min-bound gives short runs (CI's) a floor.
    bound = max(args.bound * clean_wall, args.min_bound)
    print(f"seed {args.seed}, {args.runs} schedules, {args.nodes} nodes, {args.aggregation} aggregation, {steps} steps; fault-free: {clean_wall:.1f} s, "
          f"weights_sha256 {sha[:12]}…; bound {bound:.0f} s; runs in {out}")
    rng = random.Random(args.seed)
    schedules = [draw_schedule(rng, args.nodes, steps, args.aggregation == "sharded") for _ in range(args.runs)] + args.schedule
    print("| # | schedule | exit | wall (s) | weights | fault → next completed step |")
    print("|---:|---|---:|---:|---|---|")
    failed = []
    for i, chaos in enumerate(schedules):
        code, wall, result = run(work, args.nodes, chaos, os.path.join(out, f"run-{i:03d}"), bound)
        same = result is not None and result["weights_sha256"] == sha
        ok = code == 0 and same and wall <= bound
        print(f"| {i} | `{chaos}` | {code} | {wall:.1f} | {'same' if same else 'DIFFERENT' if result else '-'} | "
              f"{recoveries(result)} |", flush=True)
        if not ok:
            failed.append((i, chaos, code))
    print(f"\n{len(schedules) - len(failed)} of {len(schedules)} schedules ended with the fault-free weights within the bound")
    for i, chaos, code in failed:
        print(f"failed: run {i} (exit {code}), replay with: --chaos {chaos}   (log: {out}/run-{i:03d}/output.log)")
    return 0 if not failed else 1


if __name__ == "__main__":
    sys.exit(main())
