# Sourced by the scripts/gpu-issue*.sh scripts on the GPU machine:
#   source scripts/device-steps.sh STAGED NAME DEFAULT_DEADLINE STEP
# sources STAGED/env.sh, makes $OUT/STEP (or /tmp/NAME/STEP) the log folder `$logs` with its
# `$sum` and the GPU's identity in gpu.txt, and defines `run`, the timed step.
# shellcheck shell=bash
source "$1/env.sh"
export RUST_LOG=${RUST_LOG:-warn} PERDIX_PTX_CACHE=/tmp/perdix-ptx PERDIX_REQUIRE_GPU=1
step=$4
out=${OUT:-/tmp/$2}
logs=$out/$step
mkdir -p "$logs"
sum=$logs/summary.txt
: >"$sum"
nvidia-smi --query-gpu=name,driver_version,pcie.link.gen.current,pcie.link.width.current \
  --format=csv,noheader >"$logs/gpu.txt" 2>&1
# The whole call stays under DEADLINE seconds: a step gets what is left, and none starts with
# less than 15 s.
deadline=${DEADLINE:-$3}
# run NAME LIMIT CMD...: one timed step, its log, one summary line (test counts, skips).
run() {
  local name=$1 limit=$2 start=$SECONDS
  shift 2
  local left=$((deadline - SECONDS))
  if [ "$left" -lt 15 ]; then echo "$name not run: out of time" >>"$sum"; return; fi
  [ "$limit" -le "$left" ] || limit=$left
  timeout "$limit" "$@" >"$logs/$name.log" 2>&1
  local rc=$?
  echo "$name rc=$rc $((SECONDS - start))s $(grep -E '^test result' "$logs/$name.log" | tail -1 |
    sed 's/; finished.*//') skipped=$(grep -c '^skipped' "$logs/$name.log")" >>"$sum"
}
