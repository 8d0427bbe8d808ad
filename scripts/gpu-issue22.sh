#!/usr/bin/env bash
# Issue 22 (one set of counters; Prometheus; Zenoh) on the GPU machine, one call under
# DEADLINE seconds: the GPU tests of the new code (PERDIX_REQUIRE_GPU=1; the counters' rename
# touched them), then the hot path before (main before issue 22) and after, alternating: the
# consumer now counts the messages and bytes it takes (published with its head), so the spsc
# bench, the GPU benchmark at 224 B and 32 B with 8 consumers, and headless_stress batches at
# 64 B; later steps: the GPU stress stream published over zenoh to a second process.
#
# Here (no GPU): scripts/stage-device.sh .device-i22 --tests --bins --example headless_stress
# --bench spsc (the new code), and .device-i22base --bins --example headless_stress --bench spsc
# (the code before); carry both.
# and .device-i22z --example fleet --example remote_bench (features cuda,bevy,zenoh).
# There:  DEADLINE=540 bash scripts/gpu-issue22.sh call1 | call2 | tests | hot | remote   (logs in $OUT/<step>.tgz)
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/device-steps.sh .device-i22 gpu-issue22 540 "$1"
n=.device-i22/bin
o=.device-i22base/bin
tests() {
  gpu_tests "$n" ${TESTS:-perdix_transport:40 gpu:100 gpu_faults:90 gpu_sizes:80 bevy_plugin:50 bevy_kernels:30 bevy_faults:100 gpu_user_launch:30}
}
hot() {
  hot_path "$n" "$o" "${ROUNDS:-2}"
}
# The stream over zenoh on the GPU host (16 cores; the dev VM has 2): the fleet example with
# one node publishing its GPU stress stream to this process, and remote_bench (64-byte
# messages in 64 KiB batches, every message verified) over TCP and shared memory: the whole
# path (ring + publisher thread), publish alone, and zenoh alone.
z=.device-i22z/bin
remote() {
  run fleet-gpu-1 60 "$z/fleet" --nodes 1 --seconds 5 --producers 4
  run fleet-gpu-2 60 "$z/fleet" --nodes 2 --seconds 5 --producers 4
  for src in ring direct raw; do
    run "remote-$src" 90 "$z/remote_bench" --messages 30000000 --source "$src"
  done
}
# Call 3: the fleet's GPU node after the stop request (progress lines on stderr; a node that
# does not end within 15 s says so and fails), once under DropNewest, and a second spsc pair.
call3() {
  RUST_LOG=warn,zenoh=error run fleet-gpu-stop 50 "$z/fleet" --nodes 1 --seconds 3 --producers 4
  RUST_LOG=warn,zenoh=error run fleet-gpu-drop 50 "$z/fleet" --nodes 1 --seconds 3 --producers 4 --drop
  for v in before after; do
    d=$o; [ $v = after ] && d=$n
    run "spsc-$v-2" 50 taskset -c 2,3 "$d/spsc" --bench '^(seed|throughput/perdix)' \
      --warm-up-time 0.5 --measurement-time 2
  done
  for l in "$logs"/fleet-gpu-*.log; do echo "-- $(basename "$l" .log)"; grep -vE '^ *[0-9.]+s ' "$l" | grep -v WARN | cut -c1-300 | tail -30; done
}
# Call 4: the fleet's GPU node again, after the bounded drain per frame.
fleet_gpu() {
  RUST_LOG=warn,zenoh=error run fleet-gpu-stop 45 "$z/fleet" --nodes 1 --seconds 5 --producers 4
  RUST_LOG=warn,zenoh=error run fleet-gpu-drop 45 "$z/fleet" --nodes 1 --seconds 5 --producers 4 --drop
  for l in "$logs"/fleet-gpu-*.log; do echo "-- $(basename "$l" .log)"; grep -vE '^ *[0-9.]+s ' "$l" | grep -v WARN | cut -c1-320 | tail -12; done
}
case $1 in
  call1) tests; hot ;;
  call4) fleet_gpu ;;
  call3) call3 ;;
  call2) remote; ROUNDS=1 hot; tests ;;
  remote) remote ;;
  tests) tests ;;
  hot) hot ;;
esac
grep -hE "^test .* FAILED|panicked at|left a gap" "$logs"/*.log | head -30
for l in "$logs"/stress-*.log; do
  echo "-- $(basename "$l" .log)"
  grep -E 'bare ring  |into ECS|RESULT' "$l" | cut -c1-200 | tail -4
done
for l in "$logs"/fleet-*.log "$logs"/remote-*.log; do
  echo "-- $(basename "$l" .log)"; grep -E 'producers on|summary|published|verdict|M msgs/s|GB/s' "$l" | grep -v '^ *[0-9.]*s ' | cut -c1-260 | tail -8
done
for l in "$logs"/gpu-*.log; do echo "-- $(basename "$l" .log)"; grep -E 'M msgs/s' "$l" | head -4; done
for l in "$logs"/spsc-*.log; do echo "-- $(basename "$l" .log)"; grep -B1 -E 'thrpt' "$l" | grep -vE '^--$' | head -16; done
cat "$logs/gpu.txt" "$sum"
tar -czf "$out/$step.tgz" -C "$out" "$step" && rm -rf "$logs"
