#!/usr/bin/env bash
# Issue 23 on the GPU machine: the latency study (benchmark --latency-report: one-way at light
# load, the ring round trip and emit cost, the flag ping-pong, latency under load; both ring
# modes), the hot path before (main before issue 23) and after, alternating (spsc pairs, the GPU
# benchmark at 224 B and 32 B with 8 consumers), and the GPU tests.
# Here:   CARGO_TARGET_DIR=/work/target scripts/stage-device.sh .device-i23f --tests --bins --bench spsc
#         (and, from a worktree of main before the issue, .device-base23 --bins --bench spsc)
# There:  DEADLINE=540 bash scripts/gpu-issue23.sh call1 | call2 | latency | hot | tests
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/device-steps.sh .device-i23f gpu-issue23 540 "$1"
n=.device-i23f/bin
o=.device-base23/bin
all_tests="gpu_low_latency:90 perdix_transport:40 gpu:100 gpu_faults:90 gpu_sizes:80 bevy_plugin:50 bevy_kernels:30 bevy_faults:100 gpu_user_launch:30"
latency() {
  run latency 150 "$n/benchmark" --latency-report --latency-seconds "${SECS:-3}" --round-trips 20000
}
case $1 in
  call1) latency; gpu_tests "$n" gpu_low_latency:90; hot_path "$n" "$o" 1; gpu_tests "$n" gpu:100 gpu_sizes:80 ;;
  call2) gpu_tests "$n" perdix_transport:40 gpu_faults:90 bevy_plugin:50 bevy_kernels:30 bevy_faults:100 gpu_user_launch:30 ;;
  latency) latency ;;
  hot) hot_path "$n" "$o" "${ROUNDS:-2}" ;;
  tests) gpu_tests "$n" $all_tests ;;
esac
grep -hE "^test .* FAILED|panicked at" "$logs"/*.log | head -30
[ -f "$logs/latency.log" ] && grep -vE '^benchmark:|^\s*$' "$logs/latency.log" | cut -c1-230 | tail -30
for l in "$logs"/gpu-*.log; do echo "-- $(basename "$l" .log)"; grep -E 'M msgs/s' "$l" | head -4; done
for l in "$logs"/spsc-*.log; do echo "-- $(basename "$l" .log)"; grep -B1 -E 'thrpt' "$l" | grep -vE '^--$' | head -16; done
cat "$logs/gpu.txt" "$sum"
tar -czf "$out/$step.tgz" -C "$out" "$step" && rm -rf "$logs"
