#!/usr/bin/env bash
# One device call for issue 11: before/after figures, then the GPU tests and the GPU paths of
# the tools and examples, at the code as staged in .device/ (see scripts/compare-device.sh).
set -uo pipefail
# On the GPU machine a GPU test that would skip (no device, no libnvrtc) fails instead.
export PERDIX_REQUIRE_GPU=1
source .device/env.sh
out=${OUT:-/tmp/gpu-issue11}
mkdir -p "$out"
nvidia-smi --query-gpu=name,driver_version,pcie.link.gen.current,pcie.link.width.current --format=csv >"$out/gpu.txt" 2>&1
# A quick look first: a head push that fails shows in seconds, not after the whole run.
.device/new/benchmark --sizes 224 --consumers 8 --seconds 1 >"$out/sanity.log" 2>&1
if ! grep -q "clean true" "$out/sanity.log"; then
  tail -5 "$out/sanity.log"
  exit 1
fi
bash scripts/compare-device.sh >"$out/compare.txt" 2>&1
for t in gpu gpu_faults bevy_plugin bevy_faults bevy_kernels; do
  timeout 150 .device/bin/$t --ignored --test-threads=1 >"$out/test-$t.log" 2>&1
  echo "test $t rc=$? $(grep -E '^test result' "$out/test-$t.log" | tail -1)" >>"$out/summary.txt"
done
timeout 120 .device/new/transport_test >"$out/transport_test.log" 2>&1
echo "transport_test rc=$? $(grep -iE 'passed|failed' "$out/transport_test.log" | tail -1)" >>"$out/summary.txt"
timeout 60 .device/new/02_gpu_producer >"$out/02_gpu_producer.log" 2>&1
echo "02_gpu_producer rc=$? $(tail -1 "$out/02_gpu_producer.log")" >>"$out/summary.txt"
timeout 60 .device/new/simulation --seconds 3 >"$out/simulation.log" 2>&1
echo "simulation rc=$? $(tail -1 "$out/simulation.log")" >>"$out/summary.txt"
timeout 60 .device/new/03_bevy_messages >"$out/03_bevy_messages.log" 2>&1
echo "03_bevy_messages rc=$? $(tail -1 "$out/03_bevy_messages.log")" >>"$out/summary.txt"
cat "$out/gpu.txt"
tail -40 "$out/compare.txt"
cat "$out/summary.txt"
tar -czf /tmp/logs.tgz -C "$out" . && find "$out" -type f ! -name summary.txt -delete && mv /tmp/logs.tgz "$out/"
