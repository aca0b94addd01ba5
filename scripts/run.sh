#!/usr/bin/env bash
# Builds wsjpeg and serves a camera (or the test pattern when there is none) on port 3003.
# Extra arguments go to the program, e.g. scripts/run.sh --port 8080
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
[[ -f "$HOME/.cargo/env" ]] && source "$HOME/.cargo/env"
cargo build --release --locked -p gst-plugin-wsjpeg
export GST_PLUGIN_PATH="$PWD/target/release${GST_PLUGIN_PATH:+:$GST_PLUGIN_PATH}"
port=3003
if [[ -e /dev/video0 ]]; then
    source="v4l2src device=/dev/video0 ! decodebin ! videoconvert ! jpegenc quality=85"
else
    echo "No camera at /dev/video0: serving the test pattern"
    source="videotestsrc is-live=true pattern=ball ! video/x-raw,width=1280,height=720,framerate=30/1 ! jpegenc quality=85"
fi
echo "Open http://$(hostname -f 2>/dev/null || hostname):$port/"
# shellcheck disable=SC2086
exec gst-launch-1.0 -e $source ! wsjpegsink port=$port "$@"
