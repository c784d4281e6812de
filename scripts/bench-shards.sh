#!/usr/bin/env bash
# What one shard of a sharded run costs: the share of the keys it lists and
# of the references it holds, its wall time and peak RSS, next to one
# unsharded run, on the file store of scripts/bench-vs-dj.sh (reused when
# that script made it).
#
#   scripts/bench-shards.sh                 # 1M objects, N = 8
#   OBJECTS=200000 SHARDS=4 scripts/bench-shards.sh
#
# The shards run one after another, so each has the machine to itself; in a
# job array they run at once on separate nodes. Checks that the merged
# report equals the single run's. The targets: each shard lists and holds
# about 1/N (the largest share at most 1.5/N).
#
# Then the same N shards judged by one reference snapshot (`djgc refs
# snapshot`, then `scan --refs`), and the rows each way reads from the
# database (MariaDB's Rows_sent, so nothing else may use the server
# meanwhile). The target: a snapshot and its N shards read at most twice
# the rows of one run, where N shards reading for themselves read N times.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
target=${CARGO_TARGET_DIR:-$repo/target}
objects=${OBJECTS:-1000000}
shards=${SHARDS:-8}
bench=${BENCH_DIR:-/var/tmp/djgc-bench}
schema=djgc_bench
# shellcheck source=scripts/bench/lib.sh
. scripts/bench/lib.sh

scripts/services.sh >&2
need_gnu_time
cargo build --release --locked --bins --example djgc-fixture >&2
file_store_fixture "$bench" "$schema" "$objects"
cd "$bench"
rm -rf shards && mkdir shards
find store -type f -printf '%s\n' > /dev/null # warm the cache

djgc=$target/release/djgc
rows_sent() { mariadb -h 127.0.0.1 -u root -N -e "SHOW GLOBAL STATUS LIKE 'Rows_sent'" | awk '{print $2}'; }
# measure, and the rows the database sent meanwhile appended to $1.rows.
measure_rows() {
    local before
    before=$(rows_sent)
    measure "$@"
    echo $(($(rows_sent) - before)) >> "$1.rows"
}
# The whole store as shard 0 of 1: the same run, and its report has the
# shard figures (references held, their memory) to compare with.
measure_rows shards/whole.time "$djgc" scan "$schema" --min-age 0s --quiet --shard 0/1 \
    --report shards/whole.json
for k in $(seq 0 $((shards - 1))); do
    echo "bench: shard $k/$shards" >&2
    measure_rows "shards/$k.time" "$djgc" scan "$schema" --min-age 0s --quiet \
        --shard "$k/$shards" --run-id bench --report "shards/shard-$k.json"
done
"$djgc" merge-reports shards/shard-*.json --out shards/merged.json
echo "bench: a reference snapshot for $shards shards" >&2
measure_rows shards/snapshot.time "$djgc" refs snapshot "$schema" --shards "$shards" \
    --out shards/refs
for k in $(seq 0 $((shards - 1))); do
    echo "bench: shard $k/$shards by the snapshot" >&2
    measure_rows "shards/snap-$k.time" "$djgc" scan "$schema" --min-age 0s --quiet \
        --shard "$k/$shards" --refs shards/refs --run-id bench-refs --report "shards/snap-$k.json"
done
"$djgc" merge-reports shards/snap-*.json --out shards/merged-refs.json

echo
machine
echo "store: $(find store -type f | wc -l) files in $bench/store ($fixture_args)"
python3 - "$shards" <<'PY'
import json, sys
shards = int(sys.argv[1])
load = lambda name: json.load(open(f"shards/{name}"))
whole = load("whole.json")
listed = lambda r: sum(s["stored"] + s["ignored"] for s in r["sections"])
time = lambda name: [float(x) for x in open(f"shards/{name}.time").read().split()]
wall, _, rss = time("whole")
print(f"{'run':<8} {'listed':>9} {'share':>7} {'refs held':>10} {'share':>7} {'ref set MB':>11} {'wall s':>7} {'peak RSS MB':>12}")
def line(name, r, w, m):
    held = r["shard"]["references_held"]
    l_share = listed(r) / listed(whole)
    h_share = held / whole["shard"]["references_held"]
    mb = r["shard"]["reference_set_bytes"] / 1e6
    print(f"{name:<8} {listed(r):>9} {l_share:>7.1%} {held:>10} {h_share:>7.1%} {mb:>11.1f} {w:>7.2f} {m / 1024:>12.0f}")
    return l_share, h_share
line("whole", whole, wall, rss)
worst_listed = worst_held = 0.0
for k in range(shards):
    w, _, m = time(str(k))
    l_share, h_share = line(f"{k}/{shards}", load(f"shard-{k}.json"), w, m)
    worst_listed, worst_held = max(worst_listed, l_share), max(worst_held, h_share)
print()
print(f"largest listing share x N:   {worst_listed * shards:.2f}   (target <= 1.5)")
print(f"largest reference share x N: {worst_held * shards:.2f}   (target <= 1.5)")
same = lambda r: {k: v for k, v in r.items() if k not in ("seconds", "started", "finished", "shard", "run_id")}
merged = load("merged.json")
by_refs = load("merged-refs.json")
print("merged report equals the single run's:", "yes" if same(merged) == same(whole) else "NO")
print("merged report of the snapshot's shards equals it:", "yes" if same(by_refs) == same(whole) else "NO")
rows = lambda name: sum(int(x) for x in open(f"shards/{name}.time.rows").read().split())
one = rows("whole")
own = sum(rows(str(k)) for k in range(shards))
snap = rows("snapshot")
snap_shards = sum(rows(f"snap-{k}") for k in range(shards))
walls = [time(f"snap-{k}")[0] for k in range(shards)]
swall, _, srss = time("snapshot")
print()
print(f"rows read from the database: one run {one:,}")
print(f"  {shards} shards reading for themselves: {own:,} ({own / one:.2f} x one run)")
print(f"  snapshot {snap:,} ({swall:.2f} s, peak RSS {srss / 1024:.0f} MB) + its {shards} shards {snap_shards:,}:"
      f" {(snap + snap_shards) / one:.2f} x one run   (target <= 2)")
print(f"  each shard by the snapshot: {min(walls):.2f}-{max(walls):.2f} s")
if same(merged) != same(whole) or same(by_refs) != same(whole):
    sys.exit(1)
PY
