#!/usr/bin/env bash
# Regenerates the README screenshots in assets/ under Xvfb with Mesa's software GL (llvmpipe):
#   assets/dashboard.png               the dashboard example at 1 M msg/s, policy block
#   assets/dashboard-backpressure.png  unlimited rate on a 256-slot ring, policy drop-newest
#   assets/overlay.png                 the panel and Bevy's diagnostics overlay inside a Bevy window
#                                      (needs the `overlay` feature)
#
# Usage: scripts/screenshots.sh [--no-overlay | --overlay-only]
# Needs: Xvfb and Mesa's software drivers: llvmpipe (GL) for eframe's glow renderer, lavapipe
# (Vulkan) for Bevy's wgpu renderer, e.g.
#   apt-get install -y xvfb libgl1-mesa-dri libegl1 libxkbcommon-x11-0 mesa-vulkan-drivers libvulkan1
set -euo pipefail
cd "$(dirname "$0")/.."

overlay=1
dashboards=1
[[ "${1:-}" == "--no-overlay" ]] && overlay=0
[[ "${1:-}" == "--overlay-only" ]] && dashboards=0

command -v Xvfb >/dev/null || { echo "Xvfb not found (apt-get install xvfb)" >&2; exit 1; }

# A free display number.
display=99
while [[ -e "/tmp/.X11-unix/X${display}" || -e "/tmp/.X${display}-lock" ]]; do
  display=$((display + 1))
done
Xvfb ":${display}" -screen 0 1600x1000x24 -nolisten tcp >/dev/null 2>&1 &
xvfb_pid=$!
trap 'kill "${xvfb_pid}" 2>/dev/null || true' EXIT
for _ in $(seq 50); do
  [[ -e "/tmp/.X11-unix/X${display}" ]] && break
  sleep 0.1
done

export DISPLAY=":${display}"
export LIBGL_ALWAYS_SOFTWARE=1
export RUST_LOG="${RUST_LOG:-warn}"

if [[ "${dashboards}" == 1 ]]; then
  dash=(cargo run --release --no-default-features --features dashboard --example dashboard --)
  "${dash[@]}" --rate 1000000 --size 64 --capacity 4096 --policy block \
    --window 1280x760 --screenshot-after 15 --screenshot assets/dashboard.png
  "${dash[@]}" --rate 0 --size 128 --capacity 256 --policy drop-newest \
    --window 1280x760 --screenshot-after 15 --screenshot assets/dashboard-backpressure.png
fi

if [[ "${overlay}" == 1 ]]; then
  # A debug build: a release build of Bevy's render stack takes far longer on 2 cores.
  cargo run --features overlay --example simulation_overlay -- \
    --screenshot assets/overlay.png --screenshot-after 12
fi
ls -l assets/*.png
