#!/usr/bin/env bash
# Runs *inside* the Debian root prepared by packaging/compat-check.sh (the repo
# is bind-mounted read-only at /src). Not meant to be run directly.
#
# Builds the plugin against the root's GStreamer, then proves that it
#   1. loads: gst-inspect-1.0 wsjpegsink;
#   2. streams: videotestsrc num-buffers=60 is-live=true ! jpegenc ! wsjpegsink port=0
#      runs to EOS;
#   3. serves: with a live pipeline on a free port, GET /healthz answers 200 and
#      GET /snapshot.jpg answers 200 image/jpeg starting with FF D8 (plain bash
#      /dev/tcp, no curl in the root);
#   4. with WSJPEG_COMPAT_LAUNCHER=1, the launcher works too: --test-pattern on a
#      free port, `wsjpeg-launcher healthcheck` exits 0, /snapshot.jpg wakes the
#      pattern and answers a JPEG, SIGTERM ends it with status 0 within 3 s.
set -euo pipefail
say() { printf '[compat-check] %s\n' "$*"; }
fail() { printf '[compat-check] FAIL: %s\n' "$*" >&2; exit 1; }
W=/var/tmp/wsjpeg-target
GSTV=$(gst-inspect-1.0 --version | sed -n 2p)

# shellcheck disable=SC1091
say "inside: $(. /etc/os-release; echo "$PRETTY_NAME"), $(ldd --version | head -1)"
say "inside: $GSTV, $(rustc --version)"
cd /src
say "cargo build --locked --profile $PROFILE -p gst-plugin-wsjpeg"
cargo build --locked --profile "$PROFILE" -p gst-plugin-wsjpeg
so="$GST_PLUGIN_PATH/libgstwsjpeg.so"
[[ -f $so ]] || fail "$so not built"

rm -f "$GST_REGISTRY"
say "gst-inspect-1.0 wsjpegsink"
if ! gst-inspect-1.0 wsjpegsink >"$W/inspect.txt" 2>&1; then
    cat "$W/inspect.txt" >&2
    gst-inspect-1.0 -b >&2 || true
    fail "gst-inspect-1.0 wsjpegsink: the plugin does not load on $GSTV"
fi
grep -E "^  (Long-name|Klass|Version) " "$W/inspect.txt" | sed "s/^/    /" || true

say "gst-launch-1.0 videotestsrc num-buffers=60 is-live=true ! jpegenc ! wsjpegsink port=0"
if ! timeout 60 gst-launch-1.0 -q videotestsrc num-buffers=60 is-live=true \
        ! video/x-raw,width=320,height=240,framerate=30/1 \
        ! jpegenc ! wsjpegsink port=0 address=127.0.0.1 >"$W/launch.txt" 2>&1; then
    cat "$W/launch.txt" >&2
    fail "pipeline did not run to EOS on $GSTV"
fi
say "pipeline reached EOS"

# 3. HTTP from the running element.
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
port=
for _ in 1 2 3 4 5 6 7 8; do
    p=$((20000 + RANDOM % 30000))
    if port_free "$p"; then port=$p; break; fi
done
[[ -n $port ]] || fail "no free port found"
http_get() { # path outfile -> writes the raw response
    local fd
    exec {fd}<>"/dev/tcp/127.0.0.1/$port" || return 1
    printf 'GET %s HTTP/1.1\r\nHost: 127.0.0.1:%s\r\nConnection: close\r\n\r\n' "$1" "$port" >&"$fd"
    timeout 10 cat <&"$fd" >"$2" || true
    exec {fd}>&-
}
say "HTTP check on 127.0.0.1:$port: /healthz and /snapshot.jpg"
gst-launch-1.0 -q videotestsrc num-buffers=300 is-live=true \
    ! video/x-raw,width=320,height=240,framerate=30/1 \
    ! jpegenc ! wsjpegsink port="$port" address=127.0.0.1 >"$W/launch-http.txt" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null || true' EXIT
ok=
for _ in $(seq 1 50); do
    if http_get /healthz "$W/healthz.txt" 2>/dev/null && head -1 "$W/healthz.txt" | grep -q ' 200'; then ok=1; break; fi
    sleep 0.1
done
[[ -n $ok ]] || { cat "$W/launch-http.txt" >&2; fail "GET /healthz did not answer 200"; }
http_get /snapshot.jpg "$W/snapshot.txt" || fail "GET /snapshot.jpg: no connection"
head -1 "$W/snapshot.txt" | grep -q ' 200' || fail "GET /snapshot.jpg: $(head -1 "$W/snapshot.txt")"
grep -aqi '^content-type: image/jpeg' "$W/snapshot.txt" || fail "GET /snapshot.jpg: not image/jpeg"
# Body starts after the blank line: check the JPEG SOI marker.
body_soi=$(LC_ALL=C awk 'BEGIN { RS = "\r\n\r\n" } NR == 2 { printf "%s", substr($0, 1, 2); exit }' "$W/snapshot.txt" | od -An -tx1 | tr -d ' \n')
[[ $body_soi == ffd8 ]] || fail "GET /snapshot.jpg: body does not start with a JPEG SOI (got '$body_soi')"
say "HTTP /healthz 200, /snapshot.jpg 200 image/jpeg ($(stat -c %s "$W/snapshot.txt") bytes with headers)"
kill -INT "$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
trap - EXIT

[[ ${WSJPEG_COMPAT_LAUNCHER:-0} == 1 ]] || exit 0

say "cargo build --locked --profile $PROFILE -p wsjpeg-launcher"
cargo build --locked --profile "$PROFILE" -p wsjpeg-launcher
launcher="$(dirname "$so")/wsjpeg-launcher"
[[ -x $launcher ]] || fail "$launcher not built"
port=
for _ in 1 2 3 4 5 6 7 8; do
    p=$((20000 + RANDOM % 30000))
    if port_free "$p"; then port=$p; break; fi
done
[[ -n $port ]] || fail "no free port found"
say "wsjpeg-launcher --test-pattern on 127.0.0.1:$port"
RUST_LOG=info "$launcher" --test-pattern --address 127.0.0.1 --port "$port" >"$W/launcher.txt" 2>&1 &
lpid=$!
trap 'kill -KILL "$lpid" 2>/dev/null || true' EXIT
ok=
for _ in $(seq 1 50); do
    if "$launcher" healthcheck --port "$port" >/dev/null 2>&1; then ok=1; break; fi
    sleep 0.1
done
[[ -n $ok ]] || { cat "$W/launcher.txt" >&2; fail "wsjpeg-launcher healthcheck did not succeed"; }
http_get /snapshot.jpg "$W/lsnapshot.txt" || fail "launcher GET /snapshot.jpg: no connection"
head -1 "$W/lsnapshot.txt" | grep -q ' 200' || { cat "$W/launcher.txt" >&2; fail "launcher GET /snapshot.jpg: $(head -1 "$W/lsnapshot.txt")"; }
grep -aqi '^content-type: image/jpeg' "$W/lsnapshot.txt" || fail "launcher GET /snapshot.jpg: not image/jpeg"
kill -TERM "$lpid"
rc=
for _ in $(seq 1 30); do
    if ! kill -0 "$lpid" 2>/dev/null; then wait "$lpid" && rc=0 || rc=$?; break; fi
    sleep 0.1
done
[[ -n $rc ]] || { cat "$W/launcher.txt" >&2; fail "launcher still running 3 s after SIGTERM"; }
[[ $rc == 0 ]] || { cat "$W/launcher.txt" >&2; fail "launcher exited with status $rc after SIGTERM"; }
trap - EXIT
say "launcher: healthcheck 0, /snapshot.jpg 200 image/jpeg, SIGTERM -> exit 0"
