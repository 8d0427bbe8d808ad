#!/usr/bin/env bash
# Issue 13 (messages of any size) in ONE device call.
#
#   bash scripts/gpu-issue13.sh stage   # here: build and stage .device/ (tests, bins, examples)
#   bash scripts/gpu-issue13.sh         # on the GPU machine, from the repo root
#
# The run: the GPU tests with --ignored, then `benchmark --sizes 224,32 --consumers 8
# --seconds 5`, `--sizes 4096,65536 --consumers 8`, `--sizes 4096 --consumers 2` (and 4 KiB with
# one CAS per message, for comparison), then headless_stress --seconds 5. Logs under $OUT in one
# tarball (the device returns few files), a short table printed last. Every step has a timeout;
# the whole run stays under 9 minutes.
set -uo pipefail
# On the GPU machine a GPU test that would skip (no device, no libnvrtc) fails instead.
export PERDIX_REQUIRE_GPU=1

if [ "${1:-}" = "stage" ]; then
  set -e
  root=$(git rev-parse --show-toplevel)
  pack=${PACK:-/work/shared/device/pack.sh}
  export PERDIX_FEATURES=${PERDIX_FEATURES:-cuda,bevy}  # headless_stress needs bevy
  tmp=$(mktemp -d)
  # pack.sh starts .device/ afresh each call: tests first, kept aside, then bins and examples.
  bash "$pack" --test gpu --test gpu_sizes --test gpu_faults --test gpu_user_launch
  for f in "$root"/.device/bin/*; do
    # Test executables are named <test>-<hash>: stage them as <test>.
    cp "$f" "$tmp/$(basename "$f" | sed -E 's/-[0-9a-f]{16}$//')"
  done
  bash "$pack" --bin benchmark --example headless_stress
  cp "$tmp"/* "$root/.device/bin/"
  rm -rf "$tmp"
  ls -la "$root/.device/bin"
  du -sh "$root/.device"
  exit 0
fi

source .device/env.sh
out=${OUT:-/tmp/gpu-issue13}
logs="$out/logs"
mkdir -p "$logs"
bin=.device/bin
summary="$logs/summary.txt"
: >"$summary"
nvidia-smi --query-gpu=name,driver_version,pcie.link.gen.current,pcie.link.width.current \
  --format=csv >"$logs/gpu.txt" 2>&1

# The tests (each with its own budget; --test-threads=1: one GPU).
for spec in gpu:125 gpu_sizes:115 gpu_faults:70 gpu_user_launch:35; do
  t=${spec%%:*}
  limit=${spec##*:}
  timeout "$limit" "$bin/$t" --ignored --test-threads=1 >"$logs/test-$t.log" 2>&1
  echo "test $t rc=$? $(grep -E '^test result' "$logs/test-$t.log" | tail -1)" >>"$summary"
  grep -E '^test .* FAILED|panicked' "$logs/test-$t.log" | head -5 >>"$summary"
done

# The benchmark: small sizes as before (comparable figures), then big messages.
bench() {
  local name=$1 limit=$2
  shift 2
  timeout "$limit" "$bin/benchmark" "$@" >"$logs/bench-$name.log" 2>&1
  echo "benchmark $name ($*) rc=$?" >>"$summary"
}
bench small 55 --sizes 224,32 --consumers 8 --seconds 5
bench big-8 40 --sizes 4096,65536 --consumers 8 --seconds 5 --latency-seconds 0
bench 4096-2 25 --sizes 4096 --consumers 2 --seconds 5 --latency-seconds 0
# The same 4 KiB run with one CAS per message instead of one per warp run (the kernel's
# PERDIX_STRESS_EACH): what the run reservation buys.
(export PERDIX_NVRTC_DEFINES=PERDIX_STRESS_EACH
  bench 4096-each 25 --sizes 4096 --consumers 8 --seconds 3 --latency-seconds 0)

timeout 30 "$bin/headless_stress" --seconds 5 >"$logs/headless_stress.log" 2>&1
echo "headless_stress rc=$? $(grep -E 'RESULT' "$logs/headless_stress.log" | tail -1)" >>"$summary"

cat "$logs/gpu.txt"
cat "$summary"
echo "== throughput (run size grid slots rings cons memory messages M-msg/s GB/s dropped stalls ok)"
for f in "$logs"/bench-*.log; do
  echo "-- $(basename "$f" .log)"
  grep -E '^msg[0-9]+ ' "$f"
done
tar -czf "$out/gpu-issue13-logs.tgz" -C "$logs" . && rm -rf "$logs"
