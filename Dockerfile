# syntax=docker/dockerfile:1
#
# wsjpeg for NVIDIA Jetson (JetPack 6 / L4T r36, arm64, Ubuntu 22.04, GStreamer 1.20).
#
#   build stage    GStreamer dev packages + a pinned Rust toolchain; compiles the
#                  dependencies first from a stub copy of the workspace (cached
#                  until a Cargo.toml/Cargo.lock changes), then our crates.
#   runtime stage  GStreamer runtime plugins, libgstwsjpeg.so in GStreamer's plugin
#                  directory, wsjpeg-launcher on PATH, non-root user in group video.
#
# Used as-is by `wendy run` (see docs/deploy.md). Plain Docker on a Jetson:
#   docker build -t wsjpeg .
#   docker run --rm --runtime nvidia --network host --device /dev/video0 wsjpeg
# packaging/check-dockerfile.sh keeps this file in step with the crates.

ARG BASE_IMAGE=nvcr.io/nvidia/l4t-jetpack:r36.4.0

# ---------------------------------------------------------------------------
FROM ${BASE_IMAGE} AS toolchain
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# The workspace needs rustc >= 1.92 (rust-version in Cargo.toml); pin what CI uses.
ARG RUST_VERSION=1.95.0
ENV DEBIAN_FRONTEND=noninteractive
# Distribution packages follow the base image's (pinned) release; not pinned here.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
        build-essential pkg-config curl ca-certificates \
        libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev libgstrtspserver-1.0-dev \
 && rm -rf /var/lib/apt/lists/*
ENV RUSTUP_HOME=/usr/local/rustup \
    CARGO_HOME=/usr/local/cargo \
    PATH=/usr/local/cargo/bin:$PATH \
    CARGO_TERM_COLOR=never
RUN curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs \
      | sh -s -- -y --no-modify-path --profile minimal --default-toolchain "${RUST_VERSION}" \
 && rustc --version && cargo --version

# ---------------------------------------------------------------------------
# Reduce the workspace to manifests + stub sources. Only this stage sees every
# source change; the builder copies its output, which changes only with the
# manifests, so the dependency layer below stays cached across code edits.
FROM ${BASE_IMAGE} AS planner
WORKDIR /src
COPY . .
RUN bash packaging/docker/recipe.sh /src /recipe

# ---------------------------------------------------------------------------
FROM toolchain AS builder
# Same package selection in both builds: cargo unifies features per selection,
# and a different one would rebuild the dependencies.
ARG CARGO_PACKAGES="-p gst-plugin-wsjpeg -p wsjpeg-launcher"
WORKDIR /src
COPY --from=planner /recipe/ ./
# Dependencies only (our crates are stubs here).
RUN cargo build --release --locked ${CARGO_PACKAGES}
COPY . .
# The real workspace crates; touch so cargo sees them as newer than the stubs.
RUN bash packaging/docker/recipe.sh --touch /src \
 && cargo build --release --locked ${CARGO_PACKAGES}
# Fail the build here, not on the device, if the plugin directory guess is wrong.
ARG GST_PLUGINS_DIR=/usr/lib/aarch64-linux-gnu/gstreamer-1.0
RUN test "$(pkg-config --variable=pluginsdir gstreamer-1.0)" = "${GST_PLUGINS_DIR}" \
 && mkdir -p /out \
 && install -m 0755 target/release/wsjpeg-launcher /out/wsjpeg-launcher \
 && install -m 0644 target/release/libgstwsjpeg.so /out/libgstwsjpeg.so \
 && strip --strip-unneeded /out/wsjpeg-launcher /out/libgstwsjpeg.so

# ---------------------------------------------------------------------------
FROM ${BASE_IMAGE} AS runtime
ARG GST_PLUGINS_DIR=/usr/lib/aarch64-linux-gnu/gstreamer-1.0
ENV DEBIAN_FRONTEND=noninteractive
# base: videoconvert/videoscale/videorate/videotestsrc; good: v4l2src, jpegenc;
# bad: jpegparse (MJPEG passthrough), h264parse; libgstrtspserver: the RTSP server. nvjpegenc/nvvidconv come from the L4T
# multimedia libraries that the NVIDIA runtime mounts from the host (gpu entitlement).
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
        gstreamer1.0-tools \
        gstreamer1.0-plugins-base \
        gstreamer1.0-plugins-good \
        gstreamer1.0-plugins-bad \
        libgstrtspserver-1.0-0 \
        v4l-utils \
 && rm -rf /var/lib/apt/lists/*

COPY --from=builder /out/libgstwsjpeg.so ${GST_PLUGINS_DIR}/libgstwsjpeg.so
COPY --from=builder /out/wsjpeg-launcher /usr/local/bin/wsjpeg-launcher

# Prove in the image that the element loads and the launcher runs.
RUN GST_REGISTRY=/tmp/gst-registry.bin gst-inspect-1.0 wsjpegsink > /dev/null \
 && wsjpeg-launcher --help > /dev/null \
 && rm -f /tmp/gst-registry.bin

# Non-root; group video (GID 44 on Ubuntu, the GID WendyOS grants for cameras)
# opens /dev/video*. By name so that the runtime also applies the supplementary
# group from /etc/group.
RUN useradd --system --uid 10001 --user-group --create-home --home-dir /home/wsjpeg \
        --shell /usr/sbin/nologin --groups video wsjpeg
# hadolint ignore=DL3066
USER wsjpeg
WORKDIR /home/wsjpeg

ENV WSJPEG_PORT=3003 \
    RUST_LOG=info
# 8554: RTSP (--rtsp-port); RTP over UDP needs host networking, else clients use TCP.
EXPOSE 3003 8554
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
    CMD ["wsjpeg-launcher", "healthcheck"]
CMD ["wsjpeg-launcher"]

LABEL org.opencontainers.image.title="wsjpeg" \
      org.opencontainers.image.description="Low-latency USB webcam to browser streaming (GStreamer wsjpegsink + launcher)" \
      org.opencontainers.image.source="https://github.com/wsjpeg/wsjpeg" \
      org.opencontainers.image.licenses="MIT"
