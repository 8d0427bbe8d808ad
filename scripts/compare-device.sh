#!/usr/bin/env bash
# Before/after on the GPU machine in one call: two builds side by side, alternating, two rounds.
#   stage: .device/base/{benchmark,headless_stress} (the old commit) and .device/new/{...}
#   run:   bash scripts/compare-device.sh   (logs under $OUT, a short table last)
set -uo pipefail
source .device/env.sh
out=${OUT:-/tmp/compare}
mkdir -p "$out"
for round in 1 2; do
  for build in base new; do
    .device/$build/benchmark --sizes 224,32 --consumers 8 --seconds 5 --latency-seconds 2 \
      >"$out/bench-$build-$round.log" 2>&1
    .device/$build/headless_stress --seconds 10 >"$out/stress-$build-$round.log" 2>&1
    echo "rc headless_stress $build $round: $?" >>"$out/rc.log"
  done
done
for f in "$out"/bench-*.log "$out"/stress-*.log; do
  echo "== $(basename "$f")"
  grep -E "M msgs/s|p50|RESULT|into ECS|loss" "$f" | head -8
done
cat "$out/rc.log"
