#!/usr/bin/env bash
# The side-by-side comparisons, end to end from a fresh clone: builds every server and the load
# generator (wsgate bench) into bench/bin, installs bench/node's packages and Centrifugo when
# missing, then runs the echo comparison (gws, gorilla, melody, Node ws, wsgate; under 10 minutes
# on a quiet machine) and the fan-out comparison (wsgate serve, Centrifugo; about 3 minutes).
# Results, plots and HTML reports go to bench/results/<commit>/. Extra arguments go to both runs
# (e.g. -rounds 1 -duration 1s for a quick look). Needs Go, Node 20 with npm, taskset.
set -euo pipefail
cd "$(dirname "$0")/.."
out="bench/results/$(git rev-parse --short HEAD 2>/dev/null || echo local)"
mkdir -p "$out"
go run ./internal/cmd/echobench -suite compare -raw "$out/compare.json" -plots "$out/plots" \
  -html "$out/compare.html" "$@" > "$out/compare.md" 2> >(tee "$out/compare.log" >&2)
go run ./internal/cmd/echobench -suite fanout -raw "$out/fanout.json" -plots "$out/plots" \
  -html "$out/fanout.html" "$@" > "$out/fanout.md" 2> >(tee "$out/fanout.log" >&2)
cat "$out/compare.md" "$out/fanout.md"
