#!/usr/bin/env bash
# Runs the GPU checks and measurements on the device machine, in one call.
#
# Here (build machine, no GPU needed):
#   PERDIX_FEATURES=cuda ../shared/device/pack.sh --no-default-features --test gpu --test gpu_faults ...
#   (stages the GPU test binaries and the release bins), then copy .device to .device-cuda
#   (listed in .git/info/exclude) so other packs cannot replace it.
# There (device call with carry [".device-cuda"]):
#   scripts/gpu-device.sh STEP...   where STEP is tests | transport | quick | matrix | soak:N
# Logs go to $OUT (or ./gpu-out); the last lines printed are short summaries.
set -uo pipefail
cd "$(dirname "$0")/.."
dev=${PERDIX_DEVICE_DIR:-.device-cuda}
source "$dev/env.sh"
out=${OUT:-gpu-out}
mkdir -p "$out"
export RUST_LOG=${RUST_LOG:-warn}
export PERDIX_PTX_CACHE=/tmp/perdix-ptx
nvidia-smi --query-gpu=name,driver_version,memory.used,memory.total,clocks.sm,clocks.max.sm,pstate,temperature.gpu \
  --format=csv >"$out/nvidia-smi.txt" 2>&1
(nproc; lscpu | grep -E "Model name|Socket|Core|Thread|L2|L3|NUMA") >>"$out/nvidia-smi.txt" 2>&1
summary=()
for step in "$@"; do
  start=$SECONDS
  case "$step" in
    tests)
      # Every staged GPU test binary (cargo names them NAME-<16 hex digits>), its ignored tests
      # (the GPU ones) one at a time. PERDIX_REQUIRE_GPU=1: a test that would print `skipped`
      # (no device, no libnvrtc) fails instead, with the reason, so none passes without running.
      ran=0
      for name in ${PERDIX_GPU_TESTS:-gpu gpu_faults gpu_sizes gpu_user_launch bevy_kernels bevy_faults bevy_plugin}; do
        for t in "$dev"/bin/"$name"-????????????????; do
          [ -x "$t" ] || continue
          ran=$((ran + 1))
          log="$out/gpu-tests-$name.log"
          PERDIX_REQUIRE_GPU=1 timeout 300 "$t" --ignored --test-threads=1 --nocapture >"$log" 2>&1
          rc=$?
          skips=$(grep -c "skipped:" "$log")
          summary+=("tests $name rc=$rc skipped=$skips: $(grep -E '^test result' "$log" | tail -1)")
          grep -E "^test .*(FAILED|ok)$|panicked|skipped:" "$log" | head -30
        done
      done
      [ "$ran" -gt 0 ] || summary+=("tests: no GPU test binary staged in $dev/bin")
      ;;
    transport)
      timeout 240 "$dev/bin/transport_test" >"$out/transport_test.log" 2>&1
      rc=$?
      # Without a device it falls back to CPU producers and still passes: not here.
      if grep -q "no GPU" "$out/transport_test.log"; then rc="$rc, FAILED: no GPU (ran on the CPU)"; fi
      summary+=("transport_test rc=$rc")
      tail -8 "$out/transport_test.log"
      ;;
    quick)
      timeout 300 "$dev/bin/benchmark" --matrix --seconds 2 --latency-seconds 2 >"$out/quick.txt" 2>"$out/quick.err"
      rc=$?
      summary+=("quick matrix rc=$rc")
      cat "$out/quick.txt"; tail -3 "$out/quick.err"
      ;;
    matrix)
      timeout 590 "$dev/bin/benchmark" --matrix --seconds 10 --latency-seconds 5 >"$out/matrix.txt" 2>"$out/matrix.err"
      rc=$?
      summary+=("matrix rc=$rc")
      cat "$out/matrix.txt"; tail -3 "$out/matrix.err"
      ;;
    fence)
      # Publication fence A/B: release fence (default) vs __threadfence_system, same process order.
      for variant in "" PERDIX_FENCE_SC; do
        PERDIX_NVRTC_DEFINES=$variant timeout 120 "$dev/bin/benchmark" --sizes 224,32 --consumers 2 --seconds 2 \
          --latency-seconds 2 >"$out/fence-${variant:-release}.txt" 2>/dev/null
        echo "fence ${variant:-release}:"; cat "$out/fence-${variant:-release}.txt" | tail -4
      done
      summary+=("fence A/B done")
      ;;
    lanes)
      timeout 200 "$dev/bin/benchmark" --sizes 32 --lanes --gpu-capacity 2048,4096 --consumers 4 --seconds 10 \
        --latency-seconds 5 >"$out/lanes.txt" 2>"$out/lanes.err"
      rc=$?
      summary+=("lanes rc=$rc")
      cat "$out/lanes.txt"; tail -3 "$out/lanes.err"
      ;;
    soak:*)
      n=${step#soak:}
      timeout 590 "$dev/bin/benchmark" --sizes 224 --consumers 4 --total-messages "$n" --full-check \
        --latency-seconds 0 --gpu-capacity 65536 >"$out/soak.txt" 2>"$out/soak.err"
      rc=$?
      summary+=("soak $n rc=$rc")
      cat "$out/soak.txt"; tail -3 "$out/soak.err"
      ;;
    *) echo "unknown step $step" ;;
  esac
  summary+=("  ($step took $((SECONDS - start)) s)")
done
printf '%s\n' "${summary[@]}"
