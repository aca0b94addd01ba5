#!/usr/bin/env bash
# Installs what a fresh Debian 12 / Ubuntu machine lacks to build, run and test wsjpeg.
#   scripts/install-deps.sh            build + run dependencies
#   scripts/install-deps.sh --test     also the browser-test and packaging-check tools
set -euo pipefail

want_test=0
[[ "${1:-}" == "--test" ]] && want_test=1

packages=(
    pkg-config gcc curl ca-certificates
    libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev libgstrtspserver-1.0-dev
    gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
    gstreamer1.0-tools gstreamer1.0-plugins-ugly
)
if [[ $want_test == 1 ]]; then
    # python3: the packaging checks; procps: kill(1) and ps in the launcher tests;
    # gstreamer1.0-libav: avdec_h264 behind qtdemux, reading the fragmented MP4.
    # vlc-bin, vlc-plugin-base: VLC as an HLS player (cvlc).
    packages+=(chromium nodejs npm nginx ffmpeg gstreamer1.0-opencv opencv-data systemd iproute2
        python3 procps gstreamer1.0-libav vlc-bin vlc-plugin-base)
fi

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Debian's nodejs may be absent while another node (nvm, NodeSource) is on PATH: keep that one.
if command -v node >/dev/null && command -v npm >/dev/null; then
    filtered=()
    for p in "${missing[@]}"; do [[ $p == nodejs || $p == npm ]] || filtered+=("$p"); done
    missing=("${filtered[@]}")
fi

if ((${#missing[@]})); then
    sudo=""
    [[ $(id -u) != 0 ]] && sudo="sudo"
    echo "Installing: ${missing[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null; then
    if [[ -x "$HOME/.cargo/bin/cargo" ]]; then
        echo "cargo is in ~/.cargo/bin: add it to PATH (source ~/.cargo/env)"
    else
        echo "Installing the Rust toolchain with rustup"
        curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal --component clippy,rustfmt
    fi
fi
