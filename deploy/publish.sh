#!/usr/bin/env bash
# The image's publish command (deploy/Dockerfile runs it; so does CI): framework-dependent Release build of distbp
# into the folder given (default /app), for the ASP.NET 10 runtime image.
set -euo pipefail
out=${1:-/app}
cd "$(dirname "${BASH_SOURCE[0]}")/.."
dotnet publish src/DistributedBackprop.Node/DistributedBackprop.Node.csproj -c Release -o "$out" -p:UseAppHost=true
test -x "$out/distbp"
