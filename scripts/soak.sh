#!/usr/bin/env bash
# Soak test of wsjpegsink: serves a live test pattern for N minutes to a mix of viewers and
# prints what the server process used, then PASS or FAIL.
#
#   scripts/soak.sh [MINUTES] [options]        MINUTES defaults to 10
#
# The mix: 4 steady WebSocket viewers (?meta=1, answering pings), 1 steady MJPEG viewer, 1
# viewer that never reads (full TCP window), and 4 "churners" that keep coming and going
# (WebSocket closed cleanly, dropped, reset; MJPEG; snapshot; /status), a few visits a second
# each. The server runs in its own process, so /proc figures are the server's alone. A
# warm-up phase with the same mix comes first; the baseline is taken idle after it.
#
# Printed at the end: server RSS (start/end/max), open fds (start/end, both idle, and max),
# delivered fps of each steady viewer against the source rate, churn visits and failures, and
# a PASS/FAIL line. PASS needs: every steady viewer got >= 90 % of the frames, no visit failed,
# connected clients back to 0, fds back to start (+4), RSS back within 10 MB of the start.
# Exit status 0 on PASS, 1 on FAIL.
#
# Options (after MINUTES): --width W --height H --fps F (640x480 at 30), --steady N (4),
#   --churners N (4).
# Environment: SOAK_PROFILE=release (default) or dev, the cargo profile to build with.
#
# Examples:
#   scripts/soak.sh                  # 10 minutes
#   scripts/soak.sh 60 --width 1280 --height 720
#   SOAK_PROFILE=dev scripts/soak.sh 1
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=/dev/null
[[ -f "$HOME/.cargo/env" ]] && source "$HOME/.cargo/env"

minutes=10
if [[ $# -gt 0 && $1 != -* ]]; then
    minutes=$1
    shift
fi
if ! [[ $minutes =~ ^[0-9]+([.][0-9]+)?$ ]]; then
    echo "usage: $0 [MINUTES] [--width W --height H --fps F --steady N --churners N]" >&2
    exit 2
fi
profile=${SOAK_PROFILE:-release}

echo "==> building the soak runner ($profile)"
cargo build --quiet --profile "$profile" -p gst-plugin-wsjpeg --example soak
target_dir=$(cargo metadata --format-version 1 --no-deps |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
[[ $profile == dev ]] && profile_dir=debug || profile_dir=$profile
runner="$target_dir/$profile_dir/examples/soak"

echo "==> soaking for $minutes min"
exec "$runner" --minutes "$minutes" "$@"
