#!/usr/bin/env bash
# Builds wsjpeg and serves the camera (or the moving test pattern when there is none) on
# http://<this machine>:3003/. Extra arguments go to wsjpeg-launcher, e.g. scripts/run.sh --port 8080
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
[[ -f "$HOME/.cargo/env" ]] && source "$HOME/.cargo/env"
cargo build --release --locked -p wsjpeg-launcher
args=("$@")
has_source=0
for a in "${args[@]}"; do
    case "$a" in --device|--device=*|--test-pattern|--pipeline|--pipeline=*) has_source=1 ;; esac
done
if [[ $has_source == 0 && ! -e /dev/video0 && -z "${WSJPEG_DEVICE:-}${WSJPEG_PIPELINE:-}" ]]; then
    echo "No camera at /dev/video0: serving the test pattern"
    args+=(--test-pattern)
fi
exec target/release/wsjpeg-launcher "${args[@]}"
