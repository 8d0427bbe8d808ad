#!/usr/bin/env bash
# Issue 6's multi-GPU measurements on a device machine with 2+ GPUs, in one call.
#
# Here (build machine, no GPU needed):
#   mkdir -p .git/info && printf '/.device/\n/.device-tests/\n' >> .git/info/exclude
#   PERDIX_FEATURES=cuda,bevy ../shared/device/pack.sh --tests --test gpu --test bevy_plugin
#   mv .device .device-tests
#   PERDIX_FEATURES=cuda,bevy ../shared/device/pack.sh --bins --example headless_stress
# There (device call with carry [".device", ".device-tests"]):
#   scripts/multi-gpu-device.sh
# Logs go to $OUT (or ./gpu-out); the last lines printed are short summaries.
set -uo pipefail
# On the GPU machine a GPU test that would skip (no device, no libnvrtc) fails instead.
export PERDIX_REQUIRE_GPU=1
cd "$(dirname "$0")/.."
source .device/env.sh
# NVLink multicast stays off on the shared multi-GPU hosts (we never use it).
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
out=${OUT:-gpu-out}
mkdir -p "$out"
B=.device/bin
T=.device-tests/bin
{
  date -u
  nproc
  nvidia-smi --query-gpu=index,name,pci.bus_id,memory.total,driver_version --format=csv
  nvidia-smi topo -m
  lscpu | grep -E 'Model name|NUMA|Socket'
} >"$out/machine.txt" 2>&1
step() {
  local name=$1
  shift
  local t0=$SECONDS
  "$@" >"$out/$name.txt" 2>"$out/$name.err"
  echo "$name rc=$? $((SECONDS - t0))s" | tee -a "$out/steps.txt"
}
step bench_multi $B/benchmark --devices all --seconds 10 --sizes 224,32 --consumers 2,4,8 --latency-seconds 0
step hs60_all $B/headless_stress --seconds 60 --devices all
step hs10_one $B/headless_stress --seconds 10 --devices 0
step test_gpu $T/gpu-* --ignored --test-threads 1 every_device producer_set stress_on
step test_bevy $T/bevy_plugin-* --ignored --test-threads 1 gpu_stress
head -12 "$out/machine.txt"
cat "$out/steps.txt" "$out/bench_multi.txt"
tail -12 "$out/hs60_all.txt"
tail -6 "$out/hs10_one.txt"
grep -E "test result|FAILED|panicked" "$out"/test_*.txt | head
