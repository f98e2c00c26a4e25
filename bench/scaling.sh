#!/usr/bin/env bash
# Scale-out on a shaped network: one network namespace per node (deploy/netns.sh), every link shaped with tc tbf in both
# directions (RATES, default "1gbit 10gbit"; netem is not in this kernel, so no added delay), N = 2, 4 and 8 nodes
# (NODES). In the same namespaces and shaping: distbp --aggregation coordinator, --aggregation sharded, and PyTorch DDP
# (gloo, one process per namespace). Two models (MODELS): the benchmark MLP 784-256-128-10 and the
# communication-heavy 784-2048-2048-10 (~5.8 M parameters). Global batch 512 in 8 slices, one worker and one compute
# thread per node (the N processes share this machine's cores: compare modes at the same N, and read the communication
# column). distbp trains on the embedded 8,000-sample set for EPOCHS (default 2: 30 steps); DDP runs as many steps on
# Fashion-MNIST (the work per step is the same). Prints one table per model and rate; raw results in bench/results.
# Usage (root, a Release build, python3-torch): sudo bash bench/scaling.sh
#        NODES="2 4" MODELS=bench RATES=1gbit EPOCHS=1 bash bench/scaling.sh   (a quicker look)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
out=bench/results/scaling-$(date -u +%Y%m%d-%H%M%S)
mkdir -p "$out"
dotnet=$(command -v dotnet)
distbp="$root/src/DistributedBackprop.Node/bin/Release/net10.0/distbp.dll"
read -r -a node_counts <<< "${NODES:-2 4 8}"
read -r -a models <<< "${MODELS:-bench comm}"
read -r -a rates <<< "${RATES:-1gbit 10gbit}"
read -r -a modes <<< "${MODES:-coordinator sharded ddp}"
epochs=${EPOCHS:-2}
steps=$((8000 / 512 * epochs))
declare -A layers=([bench]=784-256-128-10 [comm]=784-2048-2048-10)
secret="$out/cluster-secret"
head -c 32 /dev/urandom | base64 > "$secret"
prefix="dbpsc$$"

shape() { # shape RATE NAMES...: tbf on both ends of every namespace's link
  local rate=$1 burst
  shift
  burst=$([[ $rate == 10gbit ]] && echo 2mb || echo 256kb)
  local k=0
  for name in "$@"; do
    ip netns exec "$prefix-$name" tc qdisc replace dev eth0 root tbf rate "$rate" burst "$burst" latency 50ms
    ip -n "$prefix-hub" link show | grep -o "dbp[0-9]*h$k@" | tr -d '@' | while read -r veth; do
      ip netns exec "$prefix-hub" tc qdisc replace dev "$veth" root tbf rate "$rate" burst "$burst" latency 50ms
    done
    k=$((k + 1))
  done
}

run_distbp() { # run_distbp N MODEL MODE RESULT
  local n=$1 model=$2 mode=$3 result=$4 pids=() k
  for ((k = 0; k < n; k++)); do
    local seeds=()
    ((k > 0)) && seeds=(--seeds "akka.tcp://distbp@10.231.0.2:4053")
    ip netns exec "$prefix-n$k" timeout 900 "$dotnet" "$distbp" node --hostname "10.231.0.$((k + 2))" --port 4053 "${seeds[@]}" \
      --min-nodes "$n" --workers "$n" --threads 1 --aggregation "$mode" --cluster-secret-file "$secret" \
      --layers "${layers[$model]}" --batch 512 --slices 8 --epochs "$epochs" --checkpoint-every 100000 \
      --run-dir "$result-run" --summary-json "$result.json" > "$result-node$k.log" 2>&1 &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid" || { rc=$?; echo "${result##*/}: a node exited $rc" >&2; }; done
}

run_ddp() { # run_ddp N MODEL RESULT
  local n=$1 model=$2 result=$3 pids=() k
  for ((k = 0; k < n; k++)); do
    # gloo binds the interface its hostname resolves to, loopback here: name the namespace's link.
    ip netns exec "$prefix-n$k" env GLOO_SOCKET_IFNAME=eth0 timeout 900 /usr/bin/python3 bench/pytorch_ddp.py --rank "$k" --procs "$n" --master 10.231.0.2 \
      --layers "${layers[$model]}" --batch $((512 / n)) --epochs 1 --max-steps "$steps" --threads 1 \
      > "$result-rank$k.log" 2>&1 &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid" || { rc=$?; echo "${result##*/}: a rank exited $rc" >&2; }; done
  grep -h '^{' "$result-rank0.log" > "$result.json" || true
}

cleanup() { bash deploy/netns.sh down "$prefix" hub $(for ((k = 0; k < 8; k++)); do echo "n$k"; done) 2>/dev/null || true; }
trap cleanup EXIT
for n in "${node_counts[@]}"; do
  names=()
  for ((k = 0; k < n; k++)); do names+=("n$k"); done
  bash deploy/netns.sh up "$prefix" "${names[@]}"
  for rate in "${rates[@]}"; do
    shape "$rate" "${names[@]}"
    for model in "${models[@]}"; do
      for mode in "${modes[@]}"; do
        result="$out/$model-$rate-$n-$mode"
        start=$(date +%s)
        if [[ $mode == ddp ]]; then run_ddp "$n" "$model" "$result"; else run_distbp "$n" "$model" "$mode" "$result"; fi
        echo "done $model $rate N=$n $mode ($(($(date +%s) - start)) s)" >&2
      done
    done
  done
  bash deploy/netns.sh down "$prefix" "${names[@]}"
done

python3 - "$out" <<'PY'
import json, os, statistics, sys
out = sys.argv[1]
params = {"bench": 235_146, "comm": 784 * 2048 + 2048 + 2048 * 2048 + 2048 + 2048 * 10 + 10}
rows = {}
for f in sorted(os.listdir(out)):
    if not f.endswith(".json"):
        continue
    model, rate, n, mode = f[:-5].split("-")
    try:
        r = json.load(open(os.path.join(out, f)))
    except (json.JSONDecodeError, OSError):
        continue
    if mode == "ddp":
        r["median_step_ms"] = r["median_step_seconds"] * 1e3
    else:
        # Medians of the steps in the run folder's metrics: the first steps (compiling, connecting) do not weigh in.
        steps = [json.loads(l) for l in open(os.path.join(out, f[:-5] + "-run", "metrics.jsonl")) if '"kind":"step"' in l]
        for key in ("step_ms", "compute_ms", "comm_ms", "coordinator_ms"):
            r["median_" + key] = statistics.median(s[key] for s in steps)
    r["median_samples_per_second"] = r["global_batch"] / (r["median_step_ms"] / 1e3)
    rows[(model, rate, int(n), mode)] = r
for model in ("bench", "comm"):
    for rate in ("1gbit", "10gbit"):
        keys = sorted(k for k in rows if k[0] == model and k[1] == rate)
        if not keys:
            continue
        m = 4 * params[model]
        print(f"\n{model} model ({params[model]:,} parameters, M = {m / 1e6:.2f} MB), links {rate}; medians over the steps")
        print("| N | mode | samples/s | step ms (compute / communication / coordinator) | busiest node bytes/step | "
              "÷ ring 4(N−1)/N·M | vs DDP |")
        print("|---:|---|---:|---|---:|---:|---:|")
        for (mo, ra, n, mode) in sorted(keys, key=lambda k: (k[2], k[3])):
            r = rows[(mo, ra, n, mode)]
            ddp = rows.get((mo, ra, n, "ddp"), {}).get("median_samples_per_second")
            sps = r["median_samples_per_second"]
            if mode == "ddp":
                split, busiest, bound = f"{r['median_step_ms']:.1f}", "", ""
            else:
                split = (f"{r['median_step_ms']:.1f} ({r['median_compute_ms']:.1f} / {r['median_comm_ms']:.1f} / "
                         f"{r['median_coordinator_ms']:.1f})")
                b = r["busiest_node_bytes_per_step"]
                busiest, bound = f"{b:,.0f}", f"{b / (4 * (n - 1) / n * m):.2f}"
            vs = f"{sps / ddp:.2f}×" if ddp else ""
            print(f"| {n} | {mode} | {sps:,.0f} | {split} | {busiest} | {bound} | {vs} |")
PY
echo "raw results: $out"
