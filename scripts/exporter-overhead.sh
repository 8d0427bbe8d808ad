#!/usr/bin/env bash
# The exporter's cost to a frame (issue 22's goal: <= 1 %): one release binary of
# `headless_stress --features prometheus`, run ROUNDS times without and with `--metrics`,
# alternating, the "with" runs scraped every second by curl (as a Prometheus with a 1 s
# interval would). Prints each run's frames and frame time (mean = seconds / frames; p50 from
# the run's summary) and the ratio of the means. Everything on 127.0.0.1.
#
# Usage: scripts/exporter-overhead.sh [ROUNDS] [SECONDS] [-- extra headless_stress flags]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-4}
seconds=${2:-5}
shift $(( $# >= 2 ? 2 : $# ))
[ "${1:-}" = "--" ] && shift

cargo build -q --release --example headless_stress --features prometheus
bin="${CARGO_TARGET_DIR:-target}/release/examples/headless_stress"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

# One run; prints "frames p50_ms" from the saturated run's summary line.
run() {
  "$bin" --seconds "$seconds" --baseline-seconds 0 --load 0 "$@" |
    sed -n 's/^  frames *\([0-9]*\) frames, frame time p50 \([0-9.]*\) ms.*/\1 \2/p' | head -1
}

printf '%-8s %-6s %8s %10s %10s\n' run round frames mean_ms p50_ms
for round in $(seq 1 "$rounds"); do
  for mode in without with; do
    if [ "$mode" = with ]; then
      ( for _ in $(seq 1 $((seconds + 10))); do
          curl -s --max-time 1 -o /dev/null "http://127.0.0.1:$port/metrics" || true
          sleep 1
        done ) &
      scraper=$!
      out=$(run --metrics "127.0.0.1:$port" "$@")
      kill "$scraper" 2>/dev/null || true
      wait "$scraper" 2>/dev/null || true
    else
      out=$(run "$@")
    fi
    read -r frames p50 <<<"$out"
    mean=$(python3 -c "print(f'{$seconds * 1e3 / $frames:.4f}')")
    printf '%-8s %-6s %8s %10s %10s\n' "$mode" "$round" "$frames" "$mean" "$p50"
  done
done
