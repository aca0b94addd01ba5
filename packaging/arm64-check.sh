#!/usr/bin/env bash
# ARM64 check: the plugin and the launcher cross-build for aarch64 (the Jetson's
# architecture) and the ARM64 launcher serves, run under qemu user-mode emulation.
#
#   1. install what is missing: the aarch64 cross compiler and C library
#      (gcc-aarch64-linux-gnu, libc6-dev-arm64-cross), qemu-user-static, and, through
#      multiarch (dpkg --add-architecture arm64), Debian's arm64 GStreamer runtime with
#      plugins base and good; `rustup target add aarch64-unknown-linux-gnu`. Multiarch keeps
#      both copies of a shared library at one version, so this may upgrade amd64 libraries to
#      the archive's current ones; it never removes a package (checked before installing);
#   2. unpack the arm64 GStreamer and GLib -dev packages (.pc files, headers, .so links)
#      into a sysroot of their own under $WSJPEG_ARM64_CACHE (apt-get download + dpkg -x;
#      cached, reused on later runs). They are never apt-get installed: the arm64
#      libgstreamer-plugins-base1.0-dev is not co-installable with the amd64 one, and
#      installing it would remove the native build's;
#   3. cargo build -p gst-plugin-wsjpeg -p wsjpeg-launcher --target aarch64-unknown-linux-gnu,
#      with pkg-config pointed at the sysroot and aarch64-linux-gnu-gcc linking against the
#      arm64 libraries multiarch installed; `file` must say "ARM aarch64" for both;
#   4. run the ARM64 launcher under qemu-aarch64-static with the test pattern on a free
#      port of 127.0.0.1: /healthz answers 200, /snapshot.jpg is a whole 640x360 JPEG, a
#      WebSocket client on /stream receives a binary message that is a whole JPEG; SIGTERM
#      ends it with status 0 within 30 s.
#
# Every wait has a deadline, so a broken build fails instead of hanging; on failure the
# launcher's log is printed. The launcher listens on 127.0.0.1 only, and only that is talked to.
#
# Environment:
#   WSJPEG_ARM64_CACHE    sysroot, downloaded .debs, the arm64 GStreamer registry, logs
#                         (default /var/cache/wsjpeg-arm64 as root, else ~/.cache/wsjpeg-arm64)
#   WSJPEG_ARM64_PROFILE  cargo profile to build (default dev: on two cores a cold release
#                         build, thin LTO, takes about 250 s against 160 s for dev, and the
#                         emulated debug launcher still answers within a second; "release" works)
#   WSJPEG_ARM64_REBUILD=1  throw the cached sysroot away and unpack it again
#   CARGO_TARGET_DIR      cargo's target dir as usual; the arm64 files land in its
#                         aarch64-unknown-linux-gnu/ subdirectory, next to the native ones
#   CI                    when set, a check that cannot run is a failure, not a skip
#
# Exit status: 0 = built for ARM64 and served under qemu ("arm64 check passed"); 1 = a real
# failure, or under CI a check that cannot run; 2 = usage error; 0 with
# "SKIP: arm64 check: <why>" when it cannot run here (not root and something to install, no
# mirror, not an amd64 Debian machine).
set -euo pipefail

TARGET=aarch64-unknown-linux-gnu
MULTIARCH=aarch64-linux-gnu
PROFILE=${WSJPEG_ARM64_PROFILE:-dev}
if [[ $(id -u) -eq 0 ]]; then
    CACHE=${WSJPEG_ARM64_CACHE:-/var/cache/wsjpeg-arm64}
else
    CACHE=${WSJPEG_ARM64_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/wsjpeg-arm64}
fi
SYSROOT="$CACHE/sysroot"
STAMP="$SYSROOT/.wsjpeg-arm64-ready"
WIDTH=640 HEIGHT=360
START_DEADLINE=120 # s until /healthz answers (the first run also scans the arm64 plugins)
CHECK_DEADLINE=60  # s for the snapshot and for the first WebSocket frame
STOP_DEADLINE=30   # s from SIGTERM to exit
# amd64 tools: the command that proves each is there, and its package.
TOOLS=(
    "$MULTIARCH-gcc:gcc-$MULTIARCH"
    "qemu-aarch64-static:qemu-user-static"
    "file:file"
    "python3:python3"
)
CROSS_LIBC=libc6-dev-arm64-cross # /usr/aarch64-linux-gnu: crt files, libc.so for the linker
# arm64 runtime, installed through multiarch: what the launcher loads under qemu (the test
# pattern needs videotestsrc, videoconvert, videoscale from base; jpegenc, videobalance from good).
RUNTIME=(
    libgstreamer1.0-0:arm64
    libgstreamer-plugins-base1.0-0:arm64
    libglib2.0-0:arm64
    gstreamer1.0-plugins-base:arm64
    gstreamer1.0-plugins-good:arm64
)
# arm64 runtime that cannot be installed beside the amd64 one (Debian 12's gst-rtsp-server
# library is not Multi-Arch: same; installing it would remove the native build's): unpacked
# into the sysroot for linking and into a folder of its own that the launcher under qemu loads
# it from (LD_LIBRARY_PATH).
UNPACKED_RUNTIME=(libgstrtspserver-1.0-0)
# arm64 -dev packages for the sysroot; the -dev packages they depend on come along (but
# not libc6-dev: libc6-dev-arm64-cross is the C library the cross linker uses).
DEV_ROOTS=(libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev libgstrtspserver-1.0-dev libglib2.0-dev)
# What the crates ask pkg-config for (gstreamer-rs and glib -sys crates).
PC_MODULES=(gstreamer-1.0 gstreamer-base-1.0 gstreamer-video-1.0 gstreamer-app-1.0 glib-2.0 gobject-2.0 gio-2.0
    gstreamer-rtsp-server-1.0 gstreamer-rtsp-1.0 gstreamer-sdp-1.0 gstreamer-net-1.0)

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
log() { printf '[arm64-check] %s\n' "$*" >&2; }
die() { printf '[arm64-check] FAIL: %s\n' "$*" >&2; exit 1; }
cannot_run() {
    if [[ -n ${CI:-} ]]; then
        die "arm64 check cannot run, and under CI that is a failure: $*"
    fi
    printf 'SKIP: arm64 check: %s\n' "$*"
    exit 0
}

[[ $# -eq 0 ]] || { echo "usage: $0   (configure with WSJPEG_ARM64_* variables)" >&2; exit 2; }
if ! command -v dpkg >/dev/null || ! command -v apt-get >/dev/null; then
    cannot_run "not a Debian machine (no dpkg/apt-get to fetch the arm64 GStreamer)"
fi
host_arch=$(dpkg --print-architecture)
[[ $host_arch == amd64 ]] || cannot_run "this machine is $host_arch; the check cross-builds from amd64"
is_root() { [[ $(id -u) -eq 0 ]]; }
installed() { [[ $(dpkg-query -W -f='${db:Status-Abbrev}' "$1" 2>/dev/null) == "ii " ]]; }

start=$(date +%s)
mkdir -p "$CACHE" 2>/dev/null || cannot_run "cannot create $CACHE (set WSJPEG_ARM64_CACHE)"
exec 9>"$CACHE/.lock"
flock 9 # one run at a time: they share the sysroot and the registry
APT_LOG="$CACHE/apt.log"
: >"$APT_LOG"
# The native build needs the amd64 -dev package that an arm64 one would remove: checked at the end.
native_dev_before=0
if installed libgstreamer-plugins-base1.0-dev:amd64; then native_dev_before=1; fi

# ---------------------------------------------------------------------------
# 1. Packages and the Rust target.
# ---------------------------------------------------------------------------
# apt-get install that never removes a package (a removal would break the native build).
apt_install() {
    local sim
    if ! sim=$(apt-get install -s --no-install-recommends "$@" 2>&1); then
        log "apt-get update"
        apt-get update >>"$APT_LOG" 2>&1 || cannot_run "apt-get update failed (no mirror?), see $APT_LOG"
        sim=$(apt-get install -s --no-install-recommends "$@" 2>&1) ||
            cannot_run "apt cannot install $*: $(tail -n 2 <<<"$sim" | tr '\n' ' ')"
    fi
    if grep -q '^Remv ' <<<"$sim"; then
        die "installing $* would remove $(awk '$1 == "Remv" { printf "%s ", $2 }' <<<"$sim")- refusing"
    fi
    log "apt-get install $*"
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >>"$APT_LOG" 2>&1; then
        # Stale lists name versions the mirror no longer has: update once and retry.
        apt-get update >>"$APT_LOG" 2>&1 || cannot_run "apt-get update failed (no mirror?), see $APT_LOG"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >>"$APT_LOG" 2>&1 ||
            die "apt-get install $* failed (log: $APT_LOG)"
    fi
}

missing=()
for t in "${TOOLS[@]}"; do command -v "${t%%:*}" >/dev/null || missing+=("${t#*:}"); done
installed "$CROSS_LIBC" || missing+=("$CROSS_LIBC")
arm64_enabled=0
if dpkg --print-foreign-architectures | grep -qx arm64; then arm64_enabled=1; fi
for p in "${RUNTIME[@]}"; do
    if [[ $arm64_enabled == 0 ]] || ! installed "$p"; then missing+=("$p"); fi
done
if ((${#missing[@]})); then
    is_root || cannot_run "not root, so apt cannot install ${missing[*]}"
    if [[ $arm64_enabled == 0 ]]; then
        log "dpkg --add-architecture arm64"
        dpkg --add-architecture arm64
    fi
    apt_install "${missing[@]}"
fi

# In the repository: rust-toolchain.toml picks the toolchain that needs the target.
cd "$REPO"
RUSTUP=$(command -v rustup || echo "${CARGO_HOME:-$HOME/.cargo}/bin/rustup")
CARGO=$(command -v cargo || echo "${CARGO_HOME:-$HOME/.cargo}/bin/cargo")
[[ -x $CARGO ]] || cannot_run "no Rust toolchain (no cargo on PATH or in ~/.cargo/bin)"
if [[ ! -d $("${CARGO%/*}/rustc" --print target-libdir --target "$TARGET" 2>/dev/null || echo /nonexistent) ]]; then
    [[ -x $RUSTUP ]] || cannot_run "the Rust standard library for $TARGET is missing and there is no rustup to add it"
    log "rustup target add $TARGET"
    "$RUSTUP" target add "$TARGET" >&2 || cannot_run "rustup target add $TARGET failed (offline?)"
fi

# ---------------------------------------------------------------------------
# 2. The arm64 -dev sysroot.
# ---------------------------------------------------------------------------
# The -dev packages must match the arm64 runtime they link against: a runtime upgrade
# rebuilds the sysroot.
want_stamp="dev=${DEV_ROOTS[*]} unpacked=${UNPACKED_RUNTIME[*]} runtime=$(dpkg-query -W -f='${Package}=${Version} ' "${RUNTIME[@]:0:3}")"
if [[ ${WSJPEG_ARM64_REBUILD:-0} == 1 && -d $SYSROOT ]]; then
    log "WSJPEG_ARM64_REBUILD=1: removing $SYSROOT"
    rm -rf --one-file-system "$SYSROOT"
fi
# The -dev packages DEV_ROOTS depend on, transitively (one apt-cache call per level).
dev_closure() {
    local -A seen=()
    local level=("$@") next d
    for d in "${level[@]}"; do seen[$d]=1; done
    while ((${#level[@]})); do
        next=()
        while read -r d; do
            [[ -n $d && -z ${seen[$d]:-} && $d != libc6-dev ]] || continue
            seen[$d]=1
            next+=("$d")
        done < <(apt-cache depends --no-recommends --no-suggests --no-conflicts --no-breaks \
                --no-replaces --no-enhances "${level[@]/%/:arm64}" 2>/dev/null |
            awk '$1 == "Depends:" || $1 == "|Depends:" { sub(/:arm64$/, "", $2); print $2 }' |
            grep -E -- '-dev$' | sort -u)
        level=("${next[@]}")
    done
    printf '%s\n' "${!seen[@]}" | sort
}
if [[ -f $STAMP && $(cat "$STAMP") == "$want_stamp" ]]; then
    log "reusing the arm64 sysroot at $SYSROOT"
else
    # No arm64 package lists (cleaned away): the closure would be the roots alone.
    if ! apt-cache show "${DEV_ROOTS[0]}:arm64" >/dev/null 2>&1; then
        is_root || cannot_run "apt knows no arm64 packages, and only root can run apt-get update"
        apt-get update >>"$APT_LOG" 2>&1 || cannot_run "apt-get update failed (no mirror?), see $APT_LOG"
    fi
    mapfile -t dev < <(dev_closure "${DEV_ROOTS[@]}")
    log "unpacking ${#dev[@]} arm64 -dev packages into $SYSROOT"
    rm -rf --one-file-system "$CACHE/debs" "$SYSROOT.partial"
    mkdir -p "$CACHE/debs" "$SYSROOT.partial"
    # apt-get download as root cannot drop to _apt in a root-owned dir; the warning is harmless.
    if ! (cd "$CACHE/debs" && apt-get download "${dev[@]/%/:arm64}") >>"$APT_LOG" 2>&1; then
        apt-get update >>"$APT_LOG" 2>&1 || cannot_run "apt-get update failed (no mirror?), see $APT_LOG"
        (cd "$CACHE/debs" && apt-get download "${dev[@]/%/:arm64}") >>"$APT_LOG" 2>&1 ||
            cannot_run "apt-get download of the arm64 -dev packages failed (no mirror?), see $APT_LOG"
    fi
    if ! (cd "$CACHE/debs" && apt-get download "${UNPACKED_RUNTIME[@]/%/:arm64}") >>"$APT_LOG" 2>&1; then
        cannot_run "apt-get download of ${UNPACKED_RUNTIME[*]} (arm64) failed (no mirror?), see $APT_LOG"
    fi
    rm -rf --one-file-system "$CACHE/unpacked"
    mkdir -p "$CACHE/unpacked"
    for name in "${UNPACKED_RUNTIME[@]}"; do
        for deb in "$CACHE/debs/${name}_"*.deb; do dpkg -x "$deb" "$CACHE/unpacked"; done
    done
    for deb in "$CACHE"/debs/*.deb; do dpkg -x "$deb" "$SYSROOT.partial"; done
    # The .so links of the -dev packages point at runtime libraries the sysroot lacks:
    # point them at the arm64 ones multiarch installed.
    while IFS= read -r -d '' link; do
        [[ -e $link ]] && continue
        t=$(readlink "$link")
        [[ $t == /* ]] || t="$(dirname "${link#"$SYSROOT.partial"}")/$t"
        if [[ -e $t ]]; then ln -sfn "$t" "$link"; fi
    done < <(find "$SYSROOT.partial" -type l -name '*.so' -print0)
    rm -rf --one-file-system "$SYSROOT"
    mv "$SYSROOT.partial" "$SYSROOT"
    echo "$want_stamp" >"$STAMP"
fi
export PKG_CONFIG_ALLOW_CROSS=1
export PKG_CONFIG_SYSROOT_DIR="$SYSROOT"
export PKG_CONFIG_LIBDIR="$SYSROOT/usr/lib/$MULTIARCH/pkgconfig:$SYSROOT/usr/share/pkgconfig"
unset PKG_CONFIG_PATH
pc_err=$(pkg-config --cflags --libs "${PC_MODULES[@]}" 2>&1 >/dev/null) ||
    die "pkg-config cannot resolve the arm64 modules in $SYSROOT: $pc_err (try WSJPEG_ARM64_REBUILD=1)"
for lib in gstreamer-1.0 gstvideo-1.0 glib-2.0; do
    [[ -e $SYSROOT/usr/lib/$MULTIARCH/lib$lib.so ]] ||
        die "$SYSROOT/usr/lib/$MULTIARCH/lib$lib.so does not resolve to an arm64 library"
done

# ---------------------------------------------------------------------------
# 3. Cross-build.
# ---------------------------------------------------------------------------
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER="$MULTIARCH-gcc"
export CC_aarch64_unknown_linux_gnu="$MULTIARCH-gcc" AR_aarch64_unknown_linux_gnu="$MULTIARCH-ar"
case $PROFILE in dev | test) OUTDIR=debug ;; *) OUTDIR=$PROFILE ;; esac
TARGET_DIR=$("$CARGO" metadata --format-version 1 --no-deps --offline |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
OUT="$TARGET_DIR/$TARGET/$OUTDIR"
log "cargo build --locked --profile $PROFILE --target $TARGET -p gst-plugin-wsjpeg -p wsjpeg-launcher"
build_start=$(date +%s)
"$CARGO" build --locked --profile "$PROFILE" --target "$TARGET" -p gst-plugin-wsjpeg -p wsjpeg-launcher ||
    die "the cross-build for $TARGET failed (see above)"
log "built in $(($(date +%s) - build_start)) s"
launcher="$OUT/wsjpeg-launcher"
so="$OUT/libgstwsjpeg.so"
for f in "$launcher" "$so"; do
    [[ -f $f ]] || die "$f not built"
    what=$(file -b "$f")
    [[ $what == "ELF 64-bit LSB "*", ARM aarch64,"* ]] || die "$f is not an ARM aarch64 ELF: $what"
    log "$(basename "$f"): ${what%%, BuildID*}"
done
"$MULTIARCH-nm" -D --defined-only "$so" | grep -w gst_plugin_wsjpeg_get_desc >/dev/null ||
    die "$so does not export gst_plugin_wsjpeg_get_desc: GStreamer could not load it"

# ---------------------------------------------------------------------------
# 4. Run it under qemu.
# ---------------------------------------------------------------------------
RUN="$CACHE/run"
rm -rf --one-file-system "$RUN"
mkdir -p "$RUN"
LOG="$RUN/launcher.log"
# A clean environment: no WSJPEG_* setting of the caller's, no amd64 GST_PLUGIN_PATH, no
# QEMU_* option. No plugin scanner process (it would be an arm64 binary run without qemu).
qemu_env=(env -i PATH=/usr/bin:/bin HOME="$RUN" LANG=C.UTF-8
    GST_REGISTRY_FORK=no GST_REGISTRY="$CACHE/gst-registry-aarch64.bin" RUST_LOG=info
    LD_LIBRARY_PATH="$CACHE/unpacked/usr/lib/$MULTIARCH")
qemu=(qemu-aarch64-static -L /)
if ! out=$(timeout 120 "${qemu_env[@]}" "${qemu[@]}" "$launcher" --help 2>&1); then
    printf '%s\n' "$out" | tail -n 20 >&2
    die "the ARM64 launcher does not start under qemu (--help failed)"
fi
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
log "qemu-aarch64-static -L / wsjpeg-launcher --test-pattern --address 127.0.0.1 --port $port --width $WIDTH --height $HEIGHT"
"${qemu_env[@]}" "${qemu[@]}" "$launcher" --test-pattern --address 127.0.0.1 --port "$port" \
    --width "$WIDTH" --height "$HEIGHT" >"$LOG" 2>&1 &
lpid=$!
show_log() { log "launcher log ($LOG):"; sed 's/^/    /' "$LOG" >&2 || true; }
trap 'kill -KILL "$lpid" 2>/dev/null || true' EXIT

# /healthz, the snapshot and one WebSocket frame, each with a deadline. Standard library only;
# the WebSocket handshake is done by hand.
if ! python3 - "$port" "$lpid" "$RUN" "$WIDTH" "$HEIGHT" "$START_DEADLINE" "$CHECK_DEADLINE" <<'PY'; then
import base64, hashlib, http.client, os, socket, struct, sys, time

port, pid, run = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
width, height = int(sys.argv[4]), int(sys.argv[5])
start_deadline, check_deadline = float(sys.argv[6]), float(sys.argv[7])
HOST = "127.0.0.1"

def say(msg): print("[arm64-check] " + msg, file=sys.stderr, flush=True)
def fail(msg): say("FAIL: " + msg); sys.exit(1)

def alive():
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False

def get(path, timeout):
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Connection": "close"})
        r = conn.getresponse()
        return r.status, r.getheader("Content-Type", ""), r.read()
    finally:
        conn.close()

def jpeg_size(data):
    """(width, height) of a whole baseline or progressive JPEG, or a reason it is not one."""
    if data[:2] != b"\xff\xd8": return "does not start with FF D8 (got %s)" % data[:2].hex()
    if data[-2:] != b"\xff\xd9": return "does not end with FF D9 (got %s)" % data[-2:].hex()
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF: return "no marker at byte %d" % i
        m = data[i + 1]
        if m == 0xFF: i += 1; continue
        if m == 0x01 or 0xD0 <= m <= 0xD7: i += 2; continue
        (length,) = struct.unpack(">H", data[i + 2:i + 4])
        if 0xC0 <= m <= 0xCF and m not in (0xC4, 0xC8, 0xCC):
            h, w = struct.unpack(">HH", data[i + 5:i + 9])
            return (w, h)
        if m == 0xDA: break
        i += 2 + length
    return "no SOF marker before the scan"

def check_jpeg(what, data):
    size = jpeg_size(data)
    if isinstance(size, str): fail("%s: not a whole JPEG: %s (%d bytes)" % (what, size, len(data)))
    if size != (width, height): fail("%s: JPEG is %dx%d, not %dx%d" % (what, size[0], size[1], width, height))
    say("%s: JPEG %dx%d, %d bytes" % (what, size[0], size[1], len(data)))

t0 = time.monotonic()
# 1. /healthz: the server is up once it answers 200.
last = "no answer"
while True:
    if not alive(): fail("the launcher exited before /healthz answered (%s)" % last)
    try:
        status, _, _ = get("/healthz", 5)
        if status == 200: break
        last = "status %d" % status
    except OSError as e:
        last = str(e)
    if time.monotonic() - t0 > start_deadline: fail("/healthz did not answer 200 within %d s (%s)" % (start_deadline, last))
    time.sleep(0.5)
say("/healthz 200 after %.1f s" % (time.monotonic() - t0))

# 2. /snapshot.jpg wakes the test pattern; 503 (Retry-After) while it starts.
t1 = time.monotonic()
while True:
    if not alive(): fail("the launcher exited while the snapshot was asked for")
    try:
        status, ctype, body = get("/snapshot.jpg", 30)
        if status == 200: break
        last = "status %d" % status
    except OSError as e:
        last = str(e)
    if time.monotonic() - t1 > check_deadline: fail("/snapshot.jpg did not answer 200 within %d s (%s)" % (check_deadline, last))
    time.sleep(0.5)
if not ctype.startswith("image/jpeg"): fail("/snapshot.jpg: Content-Type %r" % ctype)
with open(os.path.join(run, "snapshot.jpg"), "wb") as f: f.write(body)
check_jpeg("/snapshot.jpg after %.1f s" % (time.monotonic() - t1), body)

# 3. WebSocket /stream: text messages (hello, status) may come first; the first binary
# message must be a whole JPEG.
t2 = time.monotonic()
sock = socket.create_connection((HOST, port), timeout=10)
key = base64.b64encode(os.urandom(16)).decode()
sock.sendall(("GET /stream HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % (HOST, port, key)).encode())
buf = b""

def recv_some():
    global buf
    left = check_deadline - (time.monotonic() - t2)
    if left <= 0: fail("/stream: no binary message within %d s" % check_deadline)
    sock.settimeout(min(left, 10))
    try:
        chunk = sock.recv(65536)
    except socket.timeout:
        return
    if not chunk: fail("/stream: the server closed the connection")
    buf += chunk

def take(n):
    global buf
    while len(buf) < n: recv_some()
    out, buf = buf[:n], buf[n:]
    return out

while b"\r\n\r\n" not in buf: recv_some()
head, buf = buf.split(b"\r\n\r\n", 1)
lines = head.decode("latin-1").split("\r\n")
if " 101 " not in lines[0] + " ": fail("/stream: no WebSocket upgrade: %s" % lines[0])
accept = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
headers = {l.split(":", 1)[0].strip().lower(): l.split(":", 1)[1].strip() for l in lines[1:] if ":" in l}
if headers.get("sec-websocket-accept") != accept: fail("/stream: wrong Sec-WebSocket-Accept")

def send(opcode, payload):  # client frames are masked
    mask = os.urandom(4)
    n = len(payload)
    hdr = bytes([0x80 | opcode]) + (bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + struct.pack(">H", n))
    sock.sendall(hdr + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

texts, message, message_op = 0, b"", None
while True:
    b0, b1 = take(2)
    op, n = b0 & 0x0F, b1 & 0x7F
    if b1 & 0x80: fail("/stream: the server masked a frame")
    if n == 126: (n,) = struct.unpack(">H", take(2))
    elif n == 127: (n,) = struct.unpack(">Q", take(8))
    payload = take(n)
    if op == 0x8: fail("/stream: closed by the server before a binary message: %r" % payload[:64])
    if op == 0x9: send(0xA, payload); continue
    if op == 0xA: continue
    if op != 0x0: message, message_op = b"", op
    message += payload
    if not b0 & 0x80: continue  # more fragments follow
    if message_op == 0x1: texts += 1; continue
    if message_op == 0x2: break
    fail("/stream: unexpected opcode %d" % message_op)
with open(os.path.join(run, "frame.jpg"), "wb") as f: f.write(message)
check_jpeg("/stream binary message after %.1f s (%d text messages first)" % (time.monotonic() - t2, texts), message)
send(0x8, struct.pack(">H", 1000))
sock.close()
PY
    show_log
    die "the ARM64 launcher did not serve (see above)"
fi

# SIGTERM: exit status 0, in time.
log "SIGTERM"
kill -TERM "$lpid"
stop_start=$SECONDS rc=
while ((SECONDS - stop_start <= STOP_DEADLINE)); do
    if ! kill -0 "$lpid" 2>/dev/null; then wait "$lpid" && rc=0 || rc=$?; break; fi
    sleep 0.2
done
[[ -n $rc ]] || { show_log; die "the ARM64 launcher still runs $STOP_DEADLINE s after SIGTERM"; }
[[ $rc == 0 ]] || { show_log; die "the ARM64 launcher exited with status $rc after SIGTERM"; }
trap - EXIT
log "SIGTERM -> exit 0 after $((SECONDS - stop_start)) s"

if [[ $native_dev_before == 1 ]] && ! installed libgstreamer-plugins-base1.0-dev:amd64; then
    die "the amd64 libgstreamer-plugins-base1.0-dev is gone: the native build is broken"
fi
log "PASS: built for $TARGET ($PROFILE), served /healthz, a ${WIDTH}x$HEIGHT snapshot and a WebSocket JPEG under qemu, SIGTERM -> 0 ($(($(date +%s) - start)) s)"
echo "arm64 check passed"
