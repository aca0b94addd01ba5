#!/usr/bin/env bash
# GStreamer compatibility check for the wsjpegsink plugin.
#
# The plugin must load on GStreamer releases older than the one on the build
# machine (Jetson JetPack 5 ships 1.16, JetPack 6 ships 1.20). This script
# proves it against Debian 11 "bullseye" (GStreamer 1.18, glibc 2.31):
#
#   1. debootstrap a minimal bullseye root, then apt-get the GStreamer dev
#      packages, the tools, plugins base/good, pkg-config and gcc into it
#      (cached under $WSJPEG_COMPAT_CACHE, reused on later runs);
#   2. build `-p gst-plugin-wsjpeg` *inside* that root, against bullseye's
#      GStreamer headers/.pc files and glibc, using this machine's Rust
#      toolchain and cargo registry (bind-mounted, nothing is downloaded twice);
#   3. inside the root, run `gst-inspect-1.0 wsjpegsink` and a short live
#      `videotestsrc ! jpegenc ! wsjpegsink port=0` pipeline; fail if either fails.
#
# Needs root (debootstrap, mount, chroot) and access to a Debian mirror the
# first time. All mounts live in a private mount namespace (unshare -m), so
# nothing stays mounted when the script ends, even on failure.
#
# Environment:
#   WSJPEG_COMPAT_CACHE    cache dir (default /var/cache/wsjpeg-compat)
#   WSJPEG_COMPAT_SUITE    Debian suite (default bullseye)
#   WSJPEG_COMPAT_MIRROR   Debian mirror (default http://deb.debian.org/debian)
#   WSJPEG_COMPAT_PROFILE  cargo profile to build (default dev; "release" works too)
#   WSJPEG_COMPAT_OPTIONAL=1  exit 0 with a SKIP line instead of failing when
#                          the check *cannot run* here (not root, no
#                          debootstrap, no mirror). A build or pipeline failure
#                          always fails.
#   WSJPEG_COMPAT_REBUILD=1   throw the cached root away and bootstrap again.
#   WSJPEG_COMPAT_LAUNCHER=0  skip the launcher. By default (when launcher/ exists)
#                          wsjpeg-launcher is built in the root too and run
#                          (--test-pattern, healthcheck, snapshot, SIGTERM).
#
# Exit status: 0 = plugin built, inspected and streamed on the old GStreamer;
# 1 = a real failure; 2 = usage error; 0 with "SKIP" when optional and unable.
set -euo pipefail

SUITE=${WSJPEG_COMPAT_SUITE:-bullseye}
MIRROR=${WSJPEG_COMPAT_MIRROR:-http://deb.debian.org/debian}
CACHE=${WSJPEG_COMPAT_CACHE:-/var/cache/wsjpeg-compat}
PROFILE=${WSJPEG_COMPAT_PROFILE:-dev}
ARCH=$(dpkg --print-architecture 2>/dev/null || echo amd64)
ROOT="$CACHE/$SUITE-$ARCH"
STAMP="$ROOT/.wsjpeg-compat-ready"
# Keep in sync with docs/deploy.md ("Compatibility check").
PACKAGES=(
    libgstreamer1.0-dev
    libgstreamer-plugins-base1.0-dev
    libgstrtspserver-1.0-dev
    gstreamer1.0-tools
    gstreamer1.0-plugins-base
    gstreamer1.0-plugins-good
    pkg-config
    gcc
    libc6-dev
    ca-certificates
)

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
log() { printf '[compat-check] %s\n' "$*" >&2; }
die() { printf '[compat-check] FAIL: %s\n' "$*" >&2; exit 1; }
cannot_run() {
    if [[ ${WSJPEG_COMPAT_OPTIONAL:-0} == 1 ]]; then
        printf '[compat-check] SKIP: %s\n' "$*" >&2
        exit 0
    fi
    die "$*"
}

# ---------------------------------------------------------------------------
# Inner part: runs as `unshare -m` child with a private mount namespace.
# ---------------------------------------------------------------------------
# Whether / is a mount point. It is not inside a plain chroot (some CI and container setups),
# and then its propagation cannot be changed: the root of the build is made a mount of its own.
root_is_a_mount() { awk '$5 == "/" { found = 1 } END { exit !found }' /proc/self/mountinfo; }
if root_is_a_mount; then PROPAGATION=private; else PROPAGATION=unchanged; fi

if [[ ${1:-} == --inside-namespace ]]; then
    MODE=$2
    if root_is_a_mount; then
        mount --make-rprivate /
    else
        mount --bind "$ROOT" "$ROOT"
        mount --make-rprivate "$ROOT"
    fi
    mount -t proc proc "$ROOT/proc"
    mount --rbind /sys "$ROOT/sys"
    mount --rbind /dev "$ROOT/dev"
    cp -L /etc/resolv.conf "$ROOT/etc/resolv.conf" 2>/dev/null || true

    if [[ $MODE == apt ]]; then
        # This machine's apt reaches the mirror with settings the new root lacks: a proxy,
        # or, on a mirror snapshot older than the clock, no Valid-Until check.
        apt-config dump 2>/dev/null |
            grep -E '^Acquire::(Check-Valid-Until|Check-Date|Max-ValidTime|[A-Za-z]+::Proxy)' \
            >"$ROOT/etc/apt/apt.conf.d/90host-acquire" || true
        # debootstrap's own resolver cannot pick providers of virtual packages
        # (dconf-service needs "dbus-session-bus"), so the real package set is
        # installed by apt inside the fresh root.
        exec chroot "$ROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
            DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8 /bin/sh -euc "
                apt-get update -qq
                apt-get install -y -qq --no-install-recommends ${PACKAGES[*]} >/dev/null
                apt-get clean
                rm -rf /var/lib/apt/lists/*"
    fi

    SYSROOT=$3 CARGO_DIR=$4
    mkdir -p "$ROOT/src" "$ROOT/opt/rust" "$ROOT/root/.cargo"
    mount --bind "$REPO" "$ROOT/src"
    mount -o remount,bind,ro "$ROOT/src"
    mount --bind "$SYSROOT" "$ROOT/opt/rust"
    mount -o remount,bind,ro "$ROOT/opt/rust"
    # The whole CARGO_HOME (not just registry/) so that cargo's package-cache
    # lock is shared with builds running on the host at the same time.
    mount --bind "$CARGO_DIR" "$ROOT/root/.cargo"

    case $PROFILE in dev | test) OUTDIR=debug ;; *) OUTDIR=$PROFILE ;; esac
    LAUNCHER=${WSJPEG_COMPAT_LAUNCHER:-$([[ -f $REPO/launcher/Cargo.toml ]] && echo 1 || echo 0)}
    exec chroot "$ROOT" /usr/bin/env -i \
        HOME=/root \
        PATH=/opt/rust/bin:/usr/local/bin:/usr/bin:/bin \
        CARGO_HOME=/root/.cargo \
        CARGO_TARGET_DIR=/var/tmp/wsjpeg-target \
        CARGO_TERM_COLOR=never \
        CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}" \
        GST_REGISTRY=/var/tmp/wsjpeg-target/gst-registry.bin \
        GST_PLUGIN_PATH="/var/tmp/wsjpeg-target/$OUTDIR" \
        PROFILE="$PROFILE" \
        WSJPEG_COMPAT_LAUNCHER="$LAUNCHER" \
        LANG=C.UTF-8 \
        /bin/bash /src/packaging/compat-inside.sh
fi

# ---------------------------------------------------------------------------
# Outer part.
# ---------------------------------------------------------------------------
[[ $# -eq 0 ]] || { echo "usage: $0   (configure with WSJPEG_COMPAT_* variables)" >&2; exit 2; }
[[ $(id -u) -eq 0 ]] || cannot_run "must run as root (debootstrap, mount and chroot need it)"
command -v unshare >/dev/null || cannot_run "unshare (util-linux) not found"

# rustc from PATH, else rustup's default place (CI may run with a bare PATH).
RUSTC=$(command -v rustc || echo "${CARGO_HOME:-$HOME/.cargo}/bin/rustc")
SYSROOT=$("$RUSTC" --print sysroot 2>/dev/null) || cannot_run "no Rust toolchain on this machine (no rustc on PATH or in ~/.cargo/bin)"
[[ -x $SYSROOT/bin/cargo ]] || cannot_run "toolchain at $SYSROOT has no cargo"
CARGO_DIR=${CARGO_HOME:-$HOME/.cargo}
mkdir -p "$CARGO_DIR/registry"

start=$(date +%s)
mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
flock 9 # one run at a time: they share the root and its target dir

want_stamp="suite=$SUITE arch=$ARCH packages=${PACKAGES[*]}"
if [[ ${WSJPEG_COMPAT_REBUILD:-0} == 1 && -d $ROOT ]]; then
    log "WSJPEG_COMPAT_REBUILD=1: removing $ROOT"
    rm -rf --one-file-system "$ROOT"
fi
if [[ -f $STAMP && $(cat "$STAMP") == "$want_stamp" ]]; then
    log "reusing cached $SUITE root at $ROOT"
elif [[ -f $STAMP ]]; then
    log "package list changed: updating cached root"
    unshare --mount --propagation "$PROPAGATION" -- "$0" --inside-namespace apt ||
        cannot_run "apt-get install in the cached root failed (no mirror?)"
    echo "$want_stamp" >"$STAMP"
else
    if ! command -v debootstrap >/dev/null; then
        if command -v apt-get >/dev/null; then
            log "installing debootstrap"
            apt-get install -y -qq debootstrap >/dev/null 2>&1 ||
                { apt-get update -qq && apt-get install -y -qq debootstrap >/dev/null; } ||
                cannot_run "debootstrap is missing and could not be installed"
        else
            cannot_run "debootstrap is missing and there is no apt-get to install it"
        fi
    fi
    tmp="$ROOT.partial"
    rm -rf --one-file-system "$tmp" "$ROOT"
    log "debootstrap $SUITE ($ARCH) from $MIRROR into $tmp (first run only; takes a few minutes)"
    if ! debootstrap --variant=minbase --arch="$ARCH" \
            "$SUITE" "$tmp" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1; then
        tail -n 30 "$CACHE/debootstrap.log" >&2
        if [[ -f $tmp/debootstrap/debootstrap.log ]]; then tail -n 30 "$tmp/debootstrap/debootstrap.log" >&2; fi
        if grep -qiE 'Failed getting release file|Couldn.t download|Temporary failure resolving|unable to fetch' \
                "$CACHE/debootstrap.log"; then
            rm -rf --one-file-system "$tmp"
            cannot_run "debootstrap could not reach $MIRROR"
        fi
        die "debootstrap failed (log: $CACHE/debootstrap.log)"
    fi
    mv "$tmp" "$ROOT"
    log "installing ${PACKAGES[*]} into the root"
    if ! unshare --mount --propagation "$PROPAGATION" -- "$0" --inside-namespace apt; then
        mv "$ROOT" "$tmp"
        cannot_run "apt-get install inside the new root failed (no mirror?)"
    fi
    echo "$want_stamp" >"$STAMP"
    log "root ready after $(($(date +%s) - start)) s"
fi

# Build and test inside the root, in a throwaway mount namespace.
unshare --mount --propagation "$PROPAGATION" -- "$0" --inside-namespace build "$SYSROOT" "$CARGO_DIR" ||
    die "plugin does not build or run on Debian $SUITE's GStreamer (see above)"
what="wsjpegsink builds, loads and streams"
if [[ ${WSJPEG_COMPAT_LAUNCHER:-$([[ -f $REPO/launcher/Cargo.toml ]] && echo 1 || echo 0)} == 1 ]]; then
    what="$what, wsjpeg-launcher runs"
fi
log "PASS: $what on Debian $SUITE ($(($(date +%s) - start)) s)"
