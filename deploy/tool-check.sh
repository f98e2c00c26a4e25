#!/usr/bin/env bash
# The .NET tool: `dotnet pack` writes distbp to artifacts/; install it from there into a fresh folder, as a user would
# (dotnet tool install distbp --add-source artifacts), and check that it prints the version of Directory.Build.props
# and trains one epoch of the embedded sample.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
dotnet pack "$root/src/DistributedBackprop.Node" -c Release --nologo -v quiet
version=$(sed -n 's|.*<Version>\(.*\)</Version>.*|\1|p' "$root/Directory.Build.props")
dotnet tool install distbp --tool-path "$work/tools" --add-source "$root/artifacts" --version "$version"
"$work/tools/distbp" --version | tee "$work/version.txt"
grep -q "^distbp $version" "$work/version.txt"
cd "$work"
"$work/tools/distbp" train --layers 784-16-10 --epochs 1 | tee "$work/train.txt"
grep -q '^weights_sha256 [0-9a-f]\{64\}$' "$work/train.txt"
