#!/usr/bin/env bash
# Issue 20 (trust, second pass) on the GPU machine: the GPU tests with PERDIX_REQUIRE_GPU=1, the
# new GPU tests on the unfixed code, and the hot-path figures of the base (7955fc9) and the final
# code alternating in one call.
#
# Here (no GPU): stage the final code in .device-final/ (tests renamed without their hash, the
# bins, headless_stress, 02_gpu_producer, simulation, the spsc bench), the base's bins,
# headless_stress and spsc bench in .device-base/, and the library's tests at be45d5f (the prober
# test before its fix) in .device-before/, each with scripts/stage-device.sh; carry them.
# There:  bash scripts/gpu-issue20.sh all | short | tests | more | bench   (logs in $OUT/<step>.tgz; all: one
# call under DEADLINE s, most important first)
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/device-steps.sh .device-final gpu-issue20 560 "$1"
f=.device-final/bin
b=.device-base/bin
case "$step" in
  tests)
    for spec in perdix_transport:60 gpu:120 gpu_faults:120 gpu_sizes:100 gpu_user_launch:40 \
      bevy_kernels:40 bevy_faults:120; do
      run "${spec%%:*}" "${spec##*:}" "$f/${spec%%:*}" --ignored --test-threads=1 --nocapture
    done
    grep -hE "^test .* FAILED|panicked at|left a gap|child outcome" "$logs"/*.log | head -40
    ;;
  more)
    run bevy_plugin 60 "$f/bevy_plugin" --ignored --test-threads=1 --nocapture
    run transport_test 150 "$f/transport_test"
    run 02_gpu_producer 60 "$f/02_gpu_producer"
    run simulation 60 "$f/simulation" --seconds 3
    run before_prober 40 .device-before/bin/perdix_transport --ignored --test-threads=1 --nocapture \
      a_failed_bind_after_the_launch_never_frees_the_cells_under_the_kernel
    grep -hE "^test .* FAILED|panicked at|left a gap|child outcome|RESULT|PASS|FAIL" "$logs"/*.log | head -40
    ;;
  short)
    # Little device time left: the fault tests before and after the fix first, then the rest.
    run gpu_faults 90 "$f/gpu_faults" --ignored --test-threads=1 --nocapture
    run perdix_transport 40 "$f/perdix_transport" --ignored --test-threads=1 --nocapture
    run before_prober 30 .device-before/bin/perdix_transport --ignored --test-threads=1 --nocapture \
      a_failed_bind_after_the_launch_never_frees_the_cells_under_the_kernel
    for spec in gpu:80 bevy_faults:100 gpu_sizes:80 gpu_user_launch:30 bevy_kernels:30; do
      run "${spec%%:*}" "${spec##*:}" "$f/${spec%%:*}" --ignored --test-threads=1 --nocapture
    done
    grep -hE "^test .* FAILED|panicked at|left a gap|child outcome" "$logs"/*.log | head -30
    ;;
  all)
    # One call, most important first: the final GPU tests, the new GPU tests on the unfixed
    # code, one round of base/final figures, then the bins and examples.
    for spec in perdix_transport:40 gpu:100 gpu_faults:90 gpu_sizes:80 gpu_user_launch:30 \
      bevy_kernels:30 bevy_faults:100; do
      run "${spec%%:*}" "${spec##*:}" "$f/${spec%%:*}" --ignored --test-threads=1 --nocapture
    done
    run before_prober 30 .device-before/bin/perdix_transport --ignored --test-threads=1 --nocapture \
      a_failed_bind_after_the_launch_never_frees_the_cells_under_the_kernel
    for v in base final; do
      d=$b; [ $v = final ] && d=$f
      run "bench-$v" 45 "$d/benchmark" --sizes 224,32 --consumers 8 --seconds 4 --latency-seconds 2
      run "stress-$v" 25 "$d/headless_stress" --seconds 5
      run "spsc-$v" 40 taskset -c 2,3 "$d/spsc" --bench throughput/perdix --warm-up-time 0.5 \
        --measurement-time 2
    done
    run bevy_plugin 40 "$f/bevy_plugin" --ignored --test-threads=1 --nocapture
    run transport_test 100 "$f/transport_test"
    run 02_gpu_producer 30 "$f/02_gpu_producer"
    grep -hE "^test .* FAILED|panicked at|left a gap|child outcome" "$logs"/*.log | head -30
    for l in "$logs"/bench-*.log; do echo "-- $(basename "$l" .log)"; grep -E 'M msg|latency' "$l" | head -8; done
    for l in "$logs"/stress-*.log; do echo "-- $(basename "$l" .log)"; grep -E 'RESULT|msgs/s' "$l" | tail -3; done
    for l in "$logs"/spsc-*.log; do echo "-- $(basename "$l" .log)"; grep -E 'thrpt' "$l" | head -4; done
    ;;
  bench)
    # Alternating base/final, two rounds: 224 B and 32 B with 8 consumers, headless_stress, spsc.
    for round in 1 2; do
      for v in base final; do
        d=$b; [ $v = final ] && d=$f
        run "bench-$v-$round" 60 "$d/benchmark" --sizes 224,32 --consumers 8 --seconds 5 --latency-seconds 2
        run "stress-$v-$round" 30 "$d/headless_stress" --seconds 5
        run "spsc-$v-$round" 60 taskset -c 2,3 "$d/spsc" --bench throughput/perdix --warm-up-time 0.5 \
          --measurement-time 2
      done
    done
    for l in "$logs"/bench-*.log; do echo "-- $(basename "$l" .log)"; grep -E 'M msg|latency' "$l" | head -8; done
    for l in "$logs"/stress-*.log; do echo "-- $(basename "$l" .log)"; grep -E 'RESULT|msgs/s' "$l" | tail -3; done
    for l in "$logs"/spsc-*.log; do echo "-- $(basename "$l" .log)"; grep -E 'thrpt' "$l" | head -4; done
    ;;
esac
cat "$logs/gpu.txt" "$sum"
tar -czf "$out/$step.tgz" -C "$out" "$step"
