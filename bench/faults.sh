#!/usr/bin/env bash
# The cost of faults on the benchmark work, 3 nodes on loopback: a fault-free run, one worker kill (restarted, and lost
# for good), one coordinator kill and one 5 s freeze, each compared with the fault-free run's wall time and weights.
# Every scenario runs REPEAT times (default 3), the scenarios interleaved so that a noisy spell hits them alike; the
# table gives medians, and the cost of a fault is its median wall time minus the fault-free median.
# Usage: bash bench/faults.sh   (needs dataset-fashion-mnist and a Release build; REPEAT=1 for a quick look)
set -euo pipefail
cd "$(dirname "$0")/.."
data=${DATA:-/usr/share/datasets/fashion-mnist}
repeat=${REPEAT:-3}
out=bench/results/faults-$(date -u +%Y%m%d-%H%M%S)
mkdir -p "$out"
distbp="dotnet src/DistributedBackprop.Node/bin/Release/net10.0/distbp.dll"
work=(--data "$data" --layers 784-256-128-10 --lr 0.1 --momentum 0.9 --clip 5 --epochs 2 --seed 1 --batch 256 --slices 8
      --checkpoint-every 50)
declare -A chaos=(
  [fault-free]=""
  [worker-kill]="--chaos kill:node-2@100"
  [worker-kill-gone]="--chaos kill:node-2@100 --no-respawn"
  [coordinator-kill]="--chaos kill:coordinator@100"
  [freeze]="--chaos stop:node-1@100/5s"
  [owner-kill]="--chaos kill:owner-1@100"
)
# EXTRA="--data-channel off" adds options to every run; EXTRA="--aggregation sharded" runs them sharded (where owner-kill,
# the node that owns range 1, is a fault of its own; in coordinator mode it is one more worker kill). SCENARIOS="fault-free worker-kill" picks some; the fault-free one is the baseline of the costs.
read -r -a order <<< "${SCENARIOS:-fault-free worker-kill worker-kill-gone coordinator-kill freeze owner-kill}"
for ((r = 1; r <= repeat; r++)); do
  for name in "${order[@]}"; do
    run="$name-$r"
    start=$(date +%s.%N)
    # shellcheck disable=SC2086 # the chaos flags split on purpose
    $distbp simulate --nodes 3 "${work[@]}" --run-dir "$out/$run-run" --summary-json "$out/$run.json" \
      --log-dir "$out/$run-logs" ${chaos[$name]} ${EXTRA:-} > "$out/$run.out" 2>&1 || echo "$run: exit $?" >&2
    end=$(date +%s.%N)
    echo "$name $r $start $end" >> "$out/times.txt"
    echo "done $run ($(awk "BEGIN{printf \"%.1f\", $end - $start}") s)" >&2
  done
done
python3 - "$out" <<'PY'
import json, statistics, sys, os
out = sys.argv[1]
rows = {}
failed = []
for line in open(os.path.join(out, "times.txt")):
    name, r, start, end = line.split()
    summary = os.path.join(out, f"{name}-{r}.json")
    if not os.path.exists(summary):
        failed.append(f"{name}-{r}")
        continue
    s = json.load(open(summary))
    rec = [i["recovery_seconds"] for i in s["faults"].get("injected", []) if i.get("recovery_seconds") is not None]
    rows.setdefault(name, []).append((float(end) - float(start), s["train_seconds"], rec[0] if rec else None,
                                      s["weights_sha256"][:12]))
med = lambda xs: statistics.median(xs) if xs else float("nan")
base = med([w for w, *_ in rows.get("fault-free", [])])
print(f"{'run':18} {'n':>2} {'wall (median)':>14} {'cost':>7} {'train':>7} {'fault -> next step':>19}  weights")
for name, runs in rows.items():
    walls = [w for w, *_ in runs]
    rec = [x for *_, x, _ in runs if x is not None]
    shas = sorted({sha for *_, sha in runs})
    cost = "" if name == "fault-free" else f"{med(walls) - base:+7.1f}"
    print(f"{name:18} {len(runs):2} {med(walls):11.1f} s {cost:>7} {med([t for _, t, *_ in runs]):6.1f}s "
          f"{(f'{med(rec):.2f} s' if rec else ''):>19}  {','.join(shas)}")
    print(f"{'':18}    walls: {', '.join(f'{w:.1f}' for w in walls)}")
if failed:
    print(f"FAILED (no summary; see their .out and logs): {', '.join(failed)}")
PY
echo "results in $out"
