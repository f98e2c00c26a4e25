#!/usr/bin/env bash
# What writing the run folder's per-step lines costs: the benchmark work (compare.py single: full Fashion-MNIST,
# 784-256-128-10, batch 256, 2 epochs, --workers 1) with the step lines on and off (DISTBP_METRICS=off, a hidden switch
# for this measurement only), alternating, PAIRS times each. Prints, for each, the median over runs of
#   step: the mean step time the summary reports (step_seconds.total: the coordinator's clock around each step), and
#   wall: (run-finished - run-started) / steps from events.jsonl, which also counts what happens between steps
#         (queueing the line, evaluations and checkpoints, the same in both),
# and the ratios on/off. Usage: bash bench/run_folder_overhead.sh   (needs dataset-fashion-mnist and a Release build)
set -euo pipefail
cd "$(dirname "$0")/.."
data=${DATA:-/usr/share/datasets/fashion-mnist}
pairs=${PAIRS:-5}
out=bench/results/run-folder-overhead-$(date -u +%Y%m%d-%H%M%S)
mkdir -p "$out"
distbp="dotnet src/DistributedBackprop.Node/bin/Release/net10.0/distbp.dll"
work=(train --workers 1 --batch 256 --data "$data" --layers 784-256-128-10 --activation relu --loss cross-entropy
      --optimizer momentum --lr 0.1 --momentum 0.9 --clip 5 --epochs 2 --seed 1)
for i in $(seq 1 "$pairs"); do
  for mode in on off; do
    DISTBP_METRICS=$mode $distbp "${work[@]}" --run-dir "$out/$mode-$i" > "$out/$mode-$i.out" 2>&1
    echo "$mode $i: $(tail -1 "$out/$mode-$i.out")"
  done
done
python3 - "$out" "$pairs" <<'PY'
import json, os, statistics, sys
out, pairs = sys.argv[1], int(sys.argv[2])
def measure(run):
    summary = json.load(open(os.path.join(run, "summary.json")))
    events = [json.loads(l) for l in open(os.path.join(run, "events.jsonl")) if l.endswith("\n")]
    started = next(e["elapsed_s"] for e in events if e["type"] == "run-started")
    finished = next(e["elapsed_s"] for e in events if e["type"] == "run-finished")
    return summary["step_seconds"]["total"] * 1000, (finished - started) / summary["steps_run"] * 1000, summary["weights_sha256"]
results = {mode: [measure(os.path.join(out, f"{mode}-{i}")) for i in range(1, pairs + 1)] for mode in ("on", "off")}
assert len({r[2] for rs in results.values() for r in rs}) == 1, "the weights differ between runs"
median = {mode: (statistics.median(r[0] for r in rs), statistics.median(r[1] for r in rs)) for mode, rs in results.items()}
print(f"\n{pairs} alternating runs each, medians (runs in {out}):")
for mode in ("on", "off"):
    print(f"  step lines {mode:3}  step {median[mode][0]:.3f} ms   wall {median[mode][1]:.3f} ms per step")
print(f"  ratio on/off: step {median['on'][0] / median['off'][0]:.4f}   wall {median['on'][1] / median['off'][1]:.4f}")
PY
