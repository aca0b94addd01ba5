#!/usr/bin/env bash
# 100 viewers at 720p30 (software-encoded test pattern), with and without an MJPEG recording.
set -u
cd "$(dirname "$0")/.."
cargo build --release -p wsjpeg-launcher -p wsjpeg-bench
L=$PWD/target/release/wsjpeg-launcher
B=$PWD/target/release/wsjpeg-bench
SRC="videotestsrc is-live=true pattern=circular ! video/x-raw,width=1280,height=720,framerate=30/1 ! jpegenc quality=85"
for round in 1 2; do
  for mode in plain record; do
    rm -rf /tmp/recbench; port=$((3900 + round * 2)); [[ $mode == record ]] && port=$((port + 1))
    extra=(); [[ $mode == record ]] && extra=(--record /tmp/recbench --record-segment 60 --record-max-bytes 20G)
    RUST_LOG=warn $L --pipeline "$SRC" --address 127.0.0.1 --port $port --max-clients 1000 --always-on "${extra[@]}" & pid=$!
    sleep 3
    echo "=== round $round, $mode"
    $B load --url ws://127.0.0.1:$port/stream --viewers 100 --server-pid $pid --duration 10 --json /tmp/recbench-$mode-$round.json 2>&1 | tail -12
    kill -TERM $pid; wait $pid
    [[ $mode == record ]] && du -sh /tmp/recbench
  done
done
