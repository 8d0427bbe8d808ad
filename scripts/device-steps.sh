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
# gpu_tests DIR SPEC...: each SPEC is NAME:LIMIT, the test binary DIR/NAME run with --ignored,
# one at a time ($SKIP, when set, is passed as --skip).
gpu_tests() {
  local dir=$1 spec
  shift
  for spec in "$@"; do
    run "${spec%%:*}" "${spec##*:}" "$dir/${spec%%:*}" --ignored --test-threads=1 --nocapture \
      ${SKIP:+--skip "$SKIP"}
  done
}
# hot_path NEW OLD ROUNDS: the hot path before (OLD) and after (NEW), alternating, ROUNDS times:
# the spsc bench pinned to two cores and the GPU benchmark at 224 B and 32 B with 8 consumers.
hot_path() {
  local r v d
  for r in $(seq 1 "$3"); do
    for v in before after; do
      d=$2; [ $v = after ] && d=$1
      run "spsc-$v-$r" 50 taskset -c 2,3 "$d/spsc" --bench '^(seed|throughput/perdix)' \
        --warm-up-time 0.5 --measurement-time 2
      run "gpu-$v-$r" 30 "$d/benchmark" --sizes 224,32 --consumers 8 --seconds 4 --latency-seconds 0
    done
  done
}
