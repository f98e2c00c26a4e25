#!/usr/bin/env bash
# A deeper fuzzing campaign than CI's: the same deterministic mutation fuzzers over every decoder (wire messages,
# data-channel frames and handshake, chunk streams, model and checkpoint files with recomputed trailers, IDX, CSV),
# with many more cases and several seeds. Any exception other than the decoder's input error, any call over 1 s, any
# allocation far above the input's size fails, naming the target, seed, case and input.
#   bash bench/fuzz.sh [CASES_PER_TARGET] [SEEDS...]      (defaults: 1000000, seeds 1 2 3)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cases=${1:-1000000}
shift || true
seeds=("${@:-1 2 3}")
dotnet build DistributedBackprop.sln -c Release > /dev/null
for seed in ${seeds[*]}; do
  for project in tests/DistributedBackprop.Core.Tests tests/DistributedBackprop.Cluster.Tests; do
    DISTBP_FUZZ_CASES=$cases DISTBP_FUZZ_SEED=$seed dotnet test "$project" -c Release --no-build --filter "FullyQualifiedName~.Fuzz." \
      --logger "console;verbosity=detailed" | grep -E " cases \(seed|Passed!|Failed!|case [0-9]+"
  done
done
