#!/usr/bin/env bash
# Measures an earlier commit's wsjpegsink, this checkout's and the minimal relay in turn, one
# run each per round, so that all three see the same machine; prints the medians and the ratios
# to the relay. Extra arguments go to `wsjpeg-bench run`.
#
#   bench/side-by-side.sh OLD_COMMIT NAME ROUNDS [run arguments...]
#   bench/side-by-side.sh 710d865 600-64k 5 --viewers 600 --pattern ball --frame-size 65536
#
# Results: bench/results/side-by-side/NAME-{old,new,relay}-N.{txt,json} and NAME.summary.
# Needs python3 for the summary. Keep the machine otherwise idle.
set -euo pipefail
cd "$(dirname "$0")/.."
old_commit=$1 name=$2 rounds=$3
shift 3
out=bench/results/side-by-side
mkdir -p "$out"
old_tree=${OLD_TREE:-/tmp/wsjpeg-old-$old_commit}
old_target=${OLD_TARGET:-/tmp/wsjpeg-old-target}
if [[ ! -d $old_tree ]]; then
    git worktree add -f "$old_tree" "$old_commit" >/dev/null
fi
(cd "$old_tree" && CARGO_TARGET_DIR="$old_target" cargo build --release --locked -p wsjpeg-bench)
cargo build --release --locked -p wsjpeg-bench
new=$PWD/target/release/wsjpeg-bench
old=$old_target/release/wsjpeg-bench
for round in $(seq 1 "$rounds"); do
    for who in old new relay; do
        case $who in
            old) bin=$old server=wsjpeg ;;
            new) bin=$new server=wsjpeg ;;
            relay) bin=$new server=relay ;;
        esac
        "$bin" run --server "$server" --repeat 1 --ramp 2 --settle 1 --duration 10 \
            --quiet-below 30 --quiet-wait 60 "$@" \
            --json "$out/$name-$who-$round.json" >"$out/$name-$who-$round.txt" 2>&1 || true
    done
done
python3 - "$out" "$name" <<'PY' | tee "$out/$name.summary"
import glob, json, statistics, sys
folder, name = sys.argv[1], sys.argv[2]
rows, runs = {}, {}
for who in ("old", "new", "relay"):
    files = sorted(glob.glob(f"{folder}/{name}-{who}-*.json"))
    runs[who] = len(files)
    for path in files:
        medians = json.load(open(path))["medians"]["relay" if who == "relay" else "wsjpeg"]
        for figure, value in medians.items():
            rows.setdefault(figure, {}).setdefault(who, []).append(value)
print(f"{name}: medians of {runs['old']}/{runs['new']}/{runs['relay']} runs (old element, new element, relay), in turn")
print(f"{'figure':34s} {'old':>10s} {'new':>10s} {'relay':>10s}  old/relay new/relay")
for figure, values in rows.items():
    if len(values) < 3 or any(v is None for vs in values.values() for v in vs):
        continue
    m = {who: statistics.median(vs) for who, vs in values.items()}
    ratio = lambda v: v / m["relay"] if m["relay"] else float("nan")
    print(f"{figure:34s} {m['old']:10.3f} {m['new']:10.3f} {m['relay']:10.3f}  {ratio(m['old']):8.2f} {ratio(m['new']):8.2f}")
PY
