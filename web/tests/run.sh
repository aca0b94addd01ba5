#!/usr/bin/env bash
# Tests for the viewer page: unit tests of its modules (web/js/, modules.test.mjs) and browser
# tests of the page the element serves (web/index.html, web/viewer.css and web/js/ built into
# the server as they are), in headless Chromium against real wsjpegsink pipelines
# (viewer.test.mjs, and unbundled.test.mjs for the same files from document-root), and hls.js
# playing the LL-HLS origin under /hls/ (hls.test.mjs).
# Callable from any directory:
#
#   web/tests/run.sh                      # everything
#   web/tests/run.sh --test-name-pattern=phone   # extra arguments go to `node --test`
#   web/tests/run.sh --bench [--rounds 3] [--seconds 8] [--rates none,10mbit]
#                                         # the page's latency on its three paths (BENCHMARKS.md), as root
#   web/tests/run.sh --hls-bench [--rounds 3] [--seconds 15]
#                                         # hls.js's live latency, direct and through the nginx edge
#
# Installs what is missing (Debian's chromium, nodejs/npm, GStreamer tools, the npm packages
# from package-lock.json), builds the plugin, runs the tests, and leaves screenshots in
# <repo>/artifacts/ (viewer.png, viewer-phone.png, viewer-disconnected.png, viewer-recording.png,
# viewer-detections.png, viewer-h264.png, viewer-mse.png). Exits non-zero when a test fails.
# Environment: CHROMIUM_PATH (default /usr/bin/chromium).
set -euo pipefail

HERE="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd -- "$HERE/../.." && pwd)"
CHROMIUM="${CHROMIUM_PATH:-/usr/bin/chromium}"

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "root needed to run: $*"
    fi
}

# ---- System packages ------------------------------------------------------------------------
missing=()
[ -x "$CHROMIUM" ] || missing+=(chromium)
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
command -v gst-launch-1.0 >/dev/null 2>&1 || missing+=(gstreamer1.0-tools)
if command -v gst-inspect-1.0 >/dev/null 2>&1; then
    gst-inspect-1.0 --exists videotestsrc || missing+=(gstreamer1.0-plugins-base)
    gst-inspect-1.0 --exists jpegenc || missing+=(gstreamer1.0-plugins-good)
    # The H.264 tests: x264enc and h264parse.
    gst-inspect-1.0 --exists x264enc || missing+=(gstreamer1.0-plugins-ugly)
    gst-inspect-1.0 --exists h264parse || missing+=(gstreamer1.0-plugins-bad)
else
    missing+=(gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly gstreamer1.0-plugins-bad)
fi
if [ "${#missing[@]}" -gt 0 ]; then
    log "Installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    as_root apt-get update -qq
    as_root apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
[ -x "$CHROMIUM" ] || die "no Chromium at $CHROMIUM"
# package.json's "engines": node:test with --test-reporter arrived in 18.15; playwright-core is
# pinned to the last release line that runs on Debian 12's Node 18.
node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 18 || (a === 18 && b >= 15) ? 0 : 1)' \
    || die "Node.js 18.15 or newer is needed (found $(node --version))"

# ---- npm packages (playwright-core without its browser download, ws, hls.js) ----------------
stamp="$HERE/node_modules/.package-lock.json"
if [ ! -f "$stamp" ] || [ "$HERE/package-lock.json" -nt "$stamp" ]; then
    log "Installing npm packages"
    (cd "$HERE" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
fi

# ---- The plugin, with the page compiled in --------------------------------------------------
log "Building the plugin"
(cd "$ROOT" && cargo build -p gst-plugin-wsjpeg)
target_dir="$(cd "$ROOT" && cargo metadata --format-version 1 --no-deps \
    | node -e 'let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => console.log(JSON.parse(s).target_directory))')"
export WSJPEG_PLUGIN_DIR="$target_dir/debug"
[ -f "$WSJPEG_PLUGIN_DIR/libgstwsjpeg.so" ] || die "plugin not found in $WSJPEG_PLUGIN_DIR"
for element in wsjpegsink wsh264sink; do
    GST_PLUGIN_PATH="$WSJPEG_PLUGIN_DIR" gst-inspect-1.0 "$element" >/dev/null \
        || die "GStreamer cannot load $element from $WSJPEG_PLUGIN_DIR"
done

# ---- Run ------------------------------------------------------------------------------------
export WSJPEG_ARTIFACTS_DIR="$ROOT/artifacts"
export CHROMIUM_PATH="$CHROMIUM"
mkdir -p "$WSJPEG_ARTIFACTS_DIR"

# The tests start and stop their own gst-launch servers on free ports. They run in a process
# group of their own so that whatever happens (failure, Ctrl-C, timeout) nothing outlives us.
test_pgid=""
# shellcheck disable=SC2317  # called from the EXIT trap
cleanup() {
    if [ -n "$test_pgid" ]; then
        kill -TERM -- "-$test_pgid" 2>/dev/null || true
        sleep 0.5
        kill -KILL -- "-$test_pgid" 2>/dev/null || true
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

cd "$HERE"
if [ "${1:-}" = "--bench" ]; then
    shift
    log "Measuring the page's latency"
    exec node page-latency.mjs "$@"
fi
if [ "${1:-}" = "--hls-bench" ]; then
    shift
    # The edge half of the benchmark runs Debian's nginx with packaging/nginx's configuration.
    if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
        log "Installing nginx"
        export DEBIAN_FRONTEND=noninteractive
        as_root apt-get install -y -qq --no-install-recommends nginx
    fi
    log "Measuring hls.js's latency on the LL-HLS origin"
    exec node hls-latency.mjs "$@"
fi

log "Running the viewer's tests"
set -m
# The soak tests (WSJPEG_SOAK_SECONDS each: JPEG, MSE) run on top of the suite's own time.
budget=$((420 + 2 * ${WSJPEG_SOAK_SECONDS:-0}))
timeout --kill-after=10 "$budget" node --test --test-reporter=spec "$@" modules.test.mjs unbundled.test.mjs viewer.test.mjs hls.test.mjs &
test_pgid=$!
set +m
status=0
wait "$test_pgid" || status=$?

if [ "$status" -eq 0 ]; then
    log "Viewer tests passed; screenshots in $WSJPEG_ARTIFACTS_DIR (viewer.png, viewer-phone.png, viewer-disconnected.png, viewer-recording.png, viewer-detections.png, viewer-h264.png, viewer-mse.png)"
else
    log "Viewer tests FAILED (exit $status)"
fi
exit "$status"
