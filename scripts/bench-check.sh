#!/usr/bin/env bash
# `djgc check` beside `djgc scan` on the 1M-object file store of
# scripts/bench-vs-dj.sh (reused when that script made it): both read the
# references once and list the store once, so check should cost about what
# a scan does. Then with damage: a thousand hash objects deleted, to time
# the second look and the reads that name the damaged rows.
#
#   scripts/bench-check.sh                  # 1M objects, 3 runs each
#   OBJECTS=200000 RUNS=1 scripts/bench-check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
target=${CARGO_TARGET_DIR:-$repo/target}
objects=${OBJECTS:-1000000}
runs=${RUNS:-3}
bench=${BENCH_DIR:-/var/tmp/djgc-bench}
schema=djgc_bench
# shellcheck source=scripts/bench/lib.sh
. scripts/bench/lib.sh

scripts/services.sh >&2
need_gnu_time
cargo build --release --locked --bins --example djgc-fixture >&2
file_store_fixture "$bench" "$schema" "$objects"
cd "$bench"
rm -rf check-bench && mkdir check-bench
find store -type f -printf '%s\n' > /dev/null # warm the cache
djgc=$target/release/djgc

for run in $(seq "$runs"); do
    echo "bench: run $run of $runs" >&2
    measure check-bench/scan.time "$djgc" scan "$schema" --min-age 0s --quiet
    # check exits 0 on an intact store
    measure check-bench/check.time "$djgc" check "$schema" --quiet
done
"$djgc" check "$schema" --json > check-bench/intact.json
stored=$(find store -type f | wc -l)

# Damage, undone afterwards: move a thousand hash objects aside (most of
# them referenced; the fixture's orphans among them are no damage).
mkdir -p check-bench/aside
find "store/_hash/$schema" -type f | awk 'NR <= 1000' > check-bench/moved.txt
restore() {
    while read -r file; do
        if [ -e "check-bench/aside/${file##*/}" ]; then mv "check-bench/aside/${file##*/}" "$file"; fi
    done < check-bench/moved.txt
}
trap restore EXIT
while read -r file; do mv "$file" check-bench/aside/; done < check-bench/moved.txt
/usr/bin/time -f "%e %U %S %M" -o check-bench/damaged.time \
    "$djgc" check "$schema" --json > check-bench/damaged.json || [ $? = 1 ]

echo
machine
echo "store: $stored files in $bench/store ($fixture_args)"
python3 - "$runs" <<'PY'
import json, statistics, sys
rows = lambda name: [[float(x) for x in line.split()] for line in open(f"check-bench/{name}.time")]
def line(name, label):
    r = rows(name)
    wall = statistics.median(x[0] for x in r)
    rss = max(x[2] for x in r) / 1024
    print(f"{label:<34} {wall:>7.2f} s  (runs {min(x[0] for x in r):.2f}-{max(x[0] for x in r):.2f})  peak RSS {rss:.0f} MB")
    return wall
scan = line("scan", "scan (dry run)")
check = line("check", "check, intact store")
intact = json.load(open("check-bench/intact.json"))
damaged = json.load(open("check-bench/damaged.json"))
# GNU time puts "Command exited with non-zero status 1" first: check's exit 1.
d = open("check-bench/damaged.time").read().strip().splitlines()[-1].split()
print(f"{'check, 1,000 hash objects gone':<34} {float(d[0]):>7.2f} s  peak RSS {int(d[3]) / 1024:.0f} MB:"
      f" {damaged['rows_damaged']} rows of {damaged['objects_damaged']} objects")
print(f"check / scan: {check / scan:.2f}   ({intact['references_checked']} references checked,"
      f" {intact['objects_listed']} objects listed, {intact['rows_damaged']} damaged)")
# Of the thousand moved, those some row references (the rest were orphans).
if intact["rows_damaged"] != 0 or not 0 < damaged["objects_damaged"] <= 1000:
    sys.exit("check found the wrong damage")
PY
