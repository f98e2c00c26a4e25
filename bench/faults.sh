#!/usr/bin/env bash
# The cost of faults on the benchmark work, 3 nodes on loopback: a fault-free run, then one worker kill, one
# coordinator kill and one 5 s freeze, each compared with the fault-free run's wall time and weights.
# Usage: bash bench/faults.sh   (needs dataset-fashion-mnist and a Release build)
set -euo pipefail
cd "$(dirname "$0")/.."
data=${DATA:-/usr/share/datasets/fashion-mnist}
out=bench/results/faults-$(date -u +%Y%m%d-%H%M%S)
mkdir -p "$out"
distbp="dotnet src/DistributedBackprop.Node/bin/Release/net10.0/distbp.dll"
work=(--data "$data" --layers 784-256-128-10 --lr 0.1 --momentum 0.9 --clip 5 --epochs 2 --seed 1 --batch 256 --slices 8
      --checkpoint-every 50)
run() {
  local name=$1; shift
  local start end
  start=$(date +%s.%N)
  $distbp simulate --nodes 3 "${work[@]}" --checkpoint-dir "$out/$name-checkpoints" --summary-json "$out/$name.json" \
    --log-dir "$out/$name-logs" "$@" > "$out/$name.out" 2>&1
  end=$(date +%s.%N)
  python3 - "$out/$name.json" "$name" "$start" "$end" <<'PY'
import json, sys
s = json.load(open(sys.argv[1])); wall = float(sys.argv[4]) - float(sys.argv[3])
inj = s["faults"].get("injected", [])
rec = ", ".join(f"{i['fault']}: next step {i['recovery_seconds']:.2f} s after" for i in inj if i.get("recovery_seconds") is not None)
print(f"{sys.argv[2]:16} wall {wall:6.1f} s  train {s['train_seconds']:6.1f} s  step {s['step_seconds']['total']*1000:5.1f} ms  "
      f"sha {s['weights_sha256'][:12]}  {rec}")
PY
}
run fault-free
run worker-kill --chaos kill:node-2@100
run worker-kill-gone --chaos kill:node-2@100 --no-respawn
run coordinator-kill --chaos kill:coordinator@100
run freeze --chaos stop:node-1@100/5s
