#!/usr/bin/env bash
# Runs the benchmark cases of BENCHMARKS.md: wsjpegsink and the reference relay, alternating,
# 3 runs each, medians. About 12 minutes on a 2-core machine; loopback only.
#   bench/run-suite.sh [output-dir]       (default: bench/results/<date>)
# Environment: BIN=path/to/wsjpeg-bench (skip the build), REPEAT (3), DURATION (10 s),
# QUIET (30: a run during which other processes used more than this % of a core is redone,
# RETRIES times (3); each run first waits up to QUIET_WAIT seconds (120) for the machine to
# calm down; QUIET=off runs regardless and only reports the other processes' share).
# Keep the machine otherwise idle while it runs: other processes on the same cores change
# the figures (each report says how busy the machine was before and during the window).
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -z ${BIN:-} ]]; then
    cargo build --release --locked -p wsjpeg-bench
fi
bin=${BIN:-target/release/wsjpeg-bench}
out=${1:-bench/results/$(date +%Y-%m-%d)}
mkdir -p "$out"
{
    date -u
    git log -1 --format='commit %H %s' 2>/dev/null || true
    uptime
    uname -srm
    lscpu | grep -E '^(Model name|CPU\(s\)|Thread|Core|L2|L3)'
    free -m | head -2
    gst-inspect-1.0 --version 2>/dev/null | head -2 || true
} >"$out/machine.txt"

common=(--repeat "${REPEAT:-3}" --ramp 2 --settle 1 --duration "${DURATION:-10}")
if [[ ${QUIET:-30} != off ]]; then
    common+=(--quiet-below "${QUIET:-30}" --quiet-wait "${QUIET_WAIT:-120}" --retries "${RETRIES:-3}")
fi
run_case() {
    local name=$1
    shift
    echo "==> $name: $*"
    "$bin" run "${common[@]}" "$@" --json "$out/$name.json" | tee "$out/$name.txt" || true
}

run_case v1 --server both --viewers 1
run_case v100 --server both --viewers 100
run_case v300 --server both --viewers 300
run_case v600 --server both --viewers 600
run_case stalled --server both --viewers 10 --stalled 2
run_case mjpeg --server wsjpeg --viewers 100 --mjpeg 20

for server in wsjpeg relay; do
    for i in 1 2 3; do
        "$bin" idle --server "$server" --warmup 3 --duration 10 --json "$out/idle-$server-$i.json" |
            tee -a "$out/idle.txt"
    done
done
launcher=target/release/wsjpeg-launcher
if [[ -x $launcher ]]; then
    for i in 1 2 3; do
        "$bin" idle --warmup 3 --duration 10 --json "$out/idle-launcher-$i.json" -- \
            "$launcher" --test-pattern --address 127.0.0.1 --port "$((3900 + i))" |
            tee -a "$out/idle.txt"
    done
fi
echo "results in $out"
