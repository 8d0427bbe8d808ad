#!/usr/bin/env bash
# Issue 21 (Bevy at ring speed) on the GPU machine, one call under DEADLINE seconds, most
# important first: the GPU tests of the final code (PERDIX_REQUIRE_GPU=1), headless_stress with
# batches at 16, 64 and 224 B and with envelopes at 64 B (each a bare-ring baseline, the
# saturated ECS run as a fraction of it, light loads), the code before (main before issue 21)
# beside it, one consumer thread at 224 B before/after alternating, the seed API's spsc bench.
#
# Here (no GPU): scripts/stage-device.sh .device-i21 --tests --bins --example headless_stress
# --bench spsc (the final code), and .device-i21base --bins --example headless_stress --bench
# spsc (the code before, with the final benches/spsc.rs so the seed group exists on both);
# carry both.
# There:  DEADLINE=540 bash scripts/gpu-issue21.sh all | tests | figures   (logs in $OUT/<step>.tgz)
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/device-steps.sh .device-i21 gpu-issue21 540 "$1"
n=.device-i21/bin
o=.device-i21base/bin
# A test that hung on the H100 (issue 20's calibration fallback under a GPU-filling kernel):
# run it alone, unstripped (.device-i21/dbg), and after 25 s record every thread's name, state,
# CPU time (twice, 2 s apart: which threads spin), system call, kernel wait channel and, with
# cuda-gdb (there is no gdb), its backtrace.
hang() {
  local t=gpu_events::a_failed_clock_calibration_falls_back_and_says_so start=$SECONDS
  RUST_LOG=perdix_transport=debug .device-i21/dbg/bevy_faults --ignored --exact "$t" --nocapture \
    >"$logs/hang.log" 2>&1 &
  local pid=$!
  while kill -0 "$pid" 2>/dev/null && [ $((SECONDS - start)) -lt 25 ]; do sleep 1; done
  if kill -0 "$pid" 2>/dev/null; then
    for round in 1 2; do
      for task in /proc/"$pid"/task/*; do
        echo "$round $(cat "$task/comm") state=$(cut -d' ' -f3 "$task/stat")" \
          "utime=$(cut -d' ' -f14 "$task/stat") wchan=$(cat "$task/wchan")" \
          "syscall=$(cut -d' ' -f1 "$task/syscall")"
      done
      sleep 2
    done >"$logs/hang-threads.txt"
    local dbg
    dbg=$(command -v gdb || command -v cuda-gdb || ls /usr/local/cuda/bin/cuda-gdb 2>/dev/null)
    [ -n "$dbg" ] && timeout 90 "$dbg" -batch -p "$pid" -ex "thread apply all bt 30" \
      >"$logs/hang-gdb.txt" 2>&1
    kill -9 "$pid"
    echo "hang: still running after 25 s (threads in hang-threads.txt)" >>"$sum"
  else
    wait "$pid"
    echo "hang: ended by itself rc=$? in $((SECONDS - start)) s" >>"$sum"
  fi
}
tests() {
  for spec in ${TESTS:-perdix_transport:40 gpu:100 gpu_faults:90 gpu_sizes:80 bevy_plugin:50 bevy_kernels:30 bevy_faults:100 gpu_user_launch:30}; do
    run "${spec%%:*}" "${spec##*:}" "$n/${spec%%:*}" --ignored --test-threads=1 --nocapture \
      ${SKIP:+--skip "$SKIP"}
  done
}
figures() {
  # Most important first: batches at 64 B (the ECS ratio, the rate goal, light loads), one
  # envelope run (per message), one consumer thread at 224 B, the other sizes, then the rest.
  stress batch 64
  stress envelope 64
  run one-consumer-final-1 25 "$n/benchmark" --sizes 224,32 --consumers 1 --seconds 4 --latency-seconds 0
  stress batch 224
  stress batch 16
  run one-consumer-before-1 25 "$o/benchmark" --sizes 224,32 --consumers 1 --seconds 4 --latency-seconds 0
}
more() {
  run stress-before-64 25 "$o/headless_stress" --size 64 --seconds 5
  for v in before final; do
    d=$o; [ $v = final ] && d=$n
    run "spsc-$v" 60 taskset -c 2,3 "$d/spsc" --bench '^(seed|throughput/perdix)' \
      --warm-up-time 0.5 --measurement-time 2
  done
  run one-consumer-final-2 25 "$n/benchmark" --sizes 224,32 --consumers 1 --seconds 4 --latency-seconds 0
  run one-consumer-before-2 25 "$o/benchmark" --sizes 224,32 --consumers 1 --seconds 4 --latency-seconds 0
}
# The light-load fix (paced warps take turns through each interval): every delivery, and the
# ECS ratio with 8 rings (4 of the 8 verifiers had no ring with 4).
light() {
  stress batch 64
  stress batch 224
  stress batch 16
  stress envelope 64
  run stress-batch-64-8rings 40 "$n/headless_stress" --deliver batch --size 64 --seconds 5 \
    --baseline-seconds 3 --load-seconds 2 --producers 8
}
# One consumer thread at 224 and 32 B with the consumer's prefetch distance at 8, 16 (the
# code's), 32 and 64 slots (.device-i21/pf/benchmark-N, built here alike with PREFETCH_SLOTS = N),
# two rounds alternating.
prefetch() {
  for round in 1 2; do
    for slots in 16 8 32 64; do
      local b=.device-i21/pf/benchmark-$slots
      run "prefetch-$slots-$round" 25 "$b" --sizes 224,32 --consumers 1 --seconds 3 --latency-seconds 0
    done
  done
}
# stress DELIVER SIZE: headless_stress, final code, baseline 3 s, saturated 5 s, loads 2 s each.
stress() {
  run "stress-$1-$2" 40 "$n/headless_stress" --deliver "$1" --size "$2" --seconds 5 \
    --baseline-seconds 3 --load-seconds 2
}
case "$step" in
  tests) tests ;;
  figures) figures ;;
  all) figures; tests; hang; more ;;
  hang) hang ;;
  call1) hang; SKIP=a_failed_clock_calibration_falls_back_and_says_so TESTS=bevy_faults:100 tests; light ;;
  call2) tests; stress batch 64; stress batch 16
    run stress-batch-64-v4 40 "$n/headless_stress" --deliver batch --size 64 --seconds 5 \
      --baseline-seconds 3 --load-seconds 2 --verifiers 4
    prefetch ;;
  call3) # the drain thread's idle spin (2afedf1, reverted: measured slower): before (bin) and
    # after (new, headless_stress built at 2afedf1), alternating
    for r in 1 2; do
      for v in before after; do
        b=$n/headless_stress; [ $v = after ] && b=.device-i21/new/headless_stress
        run "idle-$v-64-$r" 30 "$b" --deliver batch --size 64 --seconds 3 --baseline-seconds 2 \
          --load-seconds 2
      done
    done
    run idle-after-16 30 .device-i21/new/headless_stress --deliver batch --size 16 --seconds 3 \
      --baseline-seconds 2 --load-seconds 2
    for l in "$logs"/idle-*.log; do
      echo "-- $(basename "$l" .log)"; grep -E 'into ECS|load .*%' "$l" | cut -c1-200
    done ;;
  light) light ;;
  prefetch) prefetch ;;
esac
grep -hE "^test .* FAILED|panicked at|left a gap|child outcome" "$logs"/*.log | head -30
[ -f "$logs/hang.log" ] && grep -vE "^\s*$" "$logs/hang.log" | tail -25
[ -f "$logs/hang-threads.txt" ] && cat "$logs/hang-threads.txt"
[ -f "$logs/hang-gdb.txt" ] && grep -E "^Thread|^#[0-9]+ " "$logs/hang-gdb.txt" | cut -c1-170 | head -90
for l in "$logs"/stress-*.log; do
  echo "-- $(basename "$l" .log)"
  grep -E 'bare ring  |into ECS|saturation|load .*%|RESULT|throughput' "$l" | cut -c1-260 | tail -8
done
for l in "$logs"/one-consumer-*.log "$logs"/prefetch-*.log; do echo "-- $(basename "$l" .log)"; grep -E 'M msgs/s' "$l" | head -4; done
for l in "$logs"/spsc-*.log; do echo "-- $(basename "$l" .log)"; grep -B1 -E 'thrpt' "$l" | grep -vE '^--$' | head -16; done
cat "$logs/gpu.txt" "$sum"
tar -czf "$out/$step.tgz" -C "$out" "$step" && rm -rf "$logs"
