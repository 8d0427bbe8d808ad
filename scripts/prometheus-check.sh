#!/usr/bin/env bash
# A real Prometheus server scrapes the exporter (issue 22, item 5): starts the
# `prometheus_export` example (a ring producer and consumer, its counters at /metrics on
# 127.0.0.1, a free port), starts Debian's `prometheus` against it with a generated config
# (scrape every 1 s, storage in a temp dir, listening on 127.0.0.1), and asks Prometheus' HTTP
# query API until `perdix_messages_total` has arrived and grown. Everything stays on 127.0.0.1;
# each wait is bounded (DEADLINE s in all) and both processes are stopped on exit.
#
# Usage: scripts/prometheus-check.sh   (needs `prometheus` on PATH: apt-get install prometheus)
set -euo pipefail
cd "$(dirname "$0")/.."
DEADLINE=${DEADLINE:-60}

command -v prometheus >/dev/null || { echo "prometheus-check: no prometheus on PATH" >&2; exit 1; }
prometheus --version 2>&1 | head -1

cargo build -q --no-default-features --features prometheus --example prometheus_export
app_bin="${CARGO_TARGET_DIR:-target}/debug/examples/prometheus_export"

work=$(mktemp -d)
app_pid=""
prom_pid=""
cleanup() {
  [ -n "$app_pid" ] && kill "$app_pid" 2>/dev/null || true
  [ -n "$prom_pid" ] && kill "$prom_pid" 2>/dev/null || true
  [ -n "$prom_pid" ] && wait "$prom_pid" 2>/dev/null || true
  [ -n "$app_pid" ] && wait "$app_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# The app: runs a little longer than the deadline, so it outlives every query.
"$app_bin" --addr 127.0.0.1:0 --seconds $((DEADLINE + 10)) >"$work/app.log" 2>&1 &
app_pid=$!
app_addr=""
for _ in $(seq 1 100); do
  app_addr=$(sed -n 's#^metrics at http://\(.*\)/metrics$#\1#p' "$work/app.log")
  [ -n "$app_addr" ] && break
  sleep 0.1
done
[ -n "$app_addr" ] || { echo "prometheus-check: the app did not start" >&2; cat "$work/app.log" >&2; exit 1; }
echo "app serves http://$app_addr/metrics"

prom_port=$(free_port)
cat >"$work/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: perdix
    static_configs:
      - targets: ["$app_addr"]
EOF
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/data" \
  --web.listen-address="127.0.0.1:$prom_port" --log.level=warn >"$work/prometheus.log" 2>&1 &
prom_pid=$!
echo "prometheus listens on 127.0.0.1:$prom_port"

# One instant query: the sum of the values, or nothing while there is no sample yet.
query() {
  curl -s --max-time 2 "http://127.0.0.1:$prom_port/api/v1/query" --data-urlencode "query=$1" |
    python3 -c 'import json, sys
try:
    result = json.load(sys.stdin)["data"]["result"]
except Exception:
    sys.exit(0)
if result:
    print(int(sum(float(r["value"][1]) for r in result)))' || true
}

first=""
start=$SECONDS
while [ $((SECONDS - start)) -lt "$DEADLINE" ]; do
  value=$(query 'perdix_messages_total{job="perdix",ring="readings",device="cpu"}')
  if [ -n "$value" ]; then
    if [ -z "$first" ]; then
      first=$value
      echo "perdix_messages_total arrived: $first"
    elif [ "$value" -gt "$first" ]; then
      capacity=$(query 'perdix_ring_capacity_slots{ring="readings"}')
      buckets=$(query 'count(perdix_latency_seconds_bucket)')
      echo "perdix_messages_total grew: $first -> $value (capacity $capacity slots, $buckets latency buckets)"
      [ "$capacity" = 4096 ] || { echo "prometheus-check: capacity $capacity, not 4096" >&2; exit 1; }
      [ "$buckets" = 23 ] || { echo "prometheus-check: $buckets latency buckets, not 23" >&2; exit 1; }
      echo "prometheus-check: ok in $((SECONDS - start)) s"
      exit 0
    fi
  fi
  sleep 1
done
echo "prometheus-check: perdix_messages_total did not arrive and grow in $DEADLINE s (first: ${first:-none})" >&2
tail -20 "$work/prometheus.log" >&2
exit 1
