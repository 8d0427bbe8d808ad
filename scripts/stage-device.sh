#!/usr/bin/env bash
# Stage release executables for the GPU machine (no cargo there) into one ignored folder:
#   scripts/stage-device.sh DIR [--tests] [--bins] [--bench NAME]... [--example NAME]...
# Test and bench executables lose their hash (gpu-1a2b... -> gpu). Built with features
# ${PERDIX_FEATURES:-cuda,bevy}; CARGO_TARGET_DIR is honoured (share one between worktrees).
# DIR/env.sh sets the CUDA library path there; DIR is added to .git/info/exclude.
set -euo pipefail
dir=$1
shift
root=$(git rev-parse --show-toplevel)
cd "$root"
exclude=$(git rev-parse --git-path info/exclude)
mkdir -p "$(dirname "$exclude")"
grep -qxF "/$dir/" "$exclude" 2>/dev/null || echo "/$dir/" >>"$exclude"
mkdir -p "$dir/bin"
features=${PERDIX_FEATURES:-cuda,bevy}
stage() { # cargo args...: build, copy every executable into $dir/bin without its hash
  cargo "$@" --features "$features" --message-format=json-render-diagnostics |
    python3 -c '
import json, os, re, shutil, sys
d = sys.argv[1]
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    exe = m.get("executable") if m.get("reason") == "compiler-artifact" else None
    if exe:
        name = re.sub(r"-[0-9a-f]{16}$", "", os.path.basename(exe))
        if m["target"]["kind"] == ["lib"] or "lib" in m["target"]["kind"]:
            name = "perdix_transport"
        shutil.copy2(exe, os.path.join(d, name))
        print("staged", name)
' "$dir/bin"
}
bins=() benches=() examples=()
tests=0
while [ $# -gt 0 ]; do
  case "$1" in
    --tests) tests=1 ;;
    --tests-lib) tests=lib ;;
    --bins) bins=(--bins) ;;
    --bench) benches+=(--bench "$2"); shift ;;
    --example) examples+=(--example "$2"); shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
case $tests in
  1) stage test --release --no-run --workspace ;;
  lib) stage test --release --no-run --lib ;;
esac
[ ${#bins[@]} -eq 0 ] && [ ${#examples[@]} -eq 0 ] || stage build --release --workspace "${bins[@]}" "${examples[@]}"
[ ${#benches[@]} -eq 0 ] || stage bench --no-run "${benches[@]}"
strip "$dir"/bin/* 2>/dev/null || true
cat >"$dir/env.sh" <<'ENV'
# CUDA driver and NVRTC locations on the GPU machine
export LD_LIBRARY_PATH=/usr/local/nvidia/lib64:/usr/local/cuda/targets/x86_64-linux/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
export PATH=/usr/local/cuda/bin:$PATH
ENV
echo "staged $dir: $(du -sm "$dir" | cut -f1) MiB"
