#!/usr/bin/env bash
# djgc next to dj.gc (datajoint 2.3.5) and next to the I/O floors, on one
# DataJoint-format file store in MariaDB.
#
#   scripts/bench-vs-dj.sh              # 1M objects, 3 runs of each
#   OBJECTS=200000 RUNS=5 scripts/bench-vs-dj.sh
#
# Makes the fixture once (kept in $BENCH_DIR and reused while its settings
# are the same), warms the page cache, then runs, alternating, several times:
#   djgc   `djgc scan` (dry run, the default)
#   dj.gc  `dj.gc.GarbageCollector(schema, store="main").collect(dry_run=True)`
#   find   a single-threaded walk with sizes: `find -type f -printf '%s %T@\n'`
#   client reading every codec column with the `mariadb` client
# and prints wall, CPU (user + system) and peak RSS of each (median over the
# runs) and the ratios the performance targets are stated in.
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
python=$(scripts/python-env.sh)
need_gnu_time
cargo build --release --locked --bins --example djgc-fixture >&2

file_store_fixture "$bench" "$schema" "$objects"
cd "$bench"
files=$(find store -type f | wc -l)

columns="SELECT data FROM $schema.\`#hash_item\`; SELECT arr FROM $schema.\`_npy_item\`;"
rm -f djgc.runs djgc_gc.runs find.runs client.runs
find store -type f -printf '%s %T@\n' > /dev/null # warm the cache
for run in $(seq "$runs"); do
    echo "bench: run $run of $runs" >&2
    measure djgc.runs "$target/release/djgc" scan "$schema" --min-age 0s --json
    cp run.out djgc.json
    measure djgc_gc.runs "$python" "$repo/scripts/bench/dj_gc_scan.py" "$schema"
    cp run.out dj_gc.json
    measure find.runs find store -type f -printf '%s %T@\n'
    measure client.runs mariadb -h 127.0.0.1 -u djgc -pdjgc -N -e "$columns"
done

echo
machine
echo "store: $files files in $bench/store ($fixture_args); $runs runs each, median (range)"
printf '%-8s %-22s %-18s %s\n' tool "wall s" "cpu s" "peak RSS MB"
for tool in djgc djgc_gc find client; do
    name=$tool; [ "$tool" = djgc_gc ] && name=dj.gc
    printf '%-8s %-22s %-18s %s\n' "$name" \
        "$(median $tool.runs 1) ($(range $tool.runs 1))" \
        "$(median $tool.runs 2)" \
        "$(median $tool.runs 3 | awk '{printf "%.0f", $1/1024}')"
done
djgc_wall=$(median djgc.runs 1)
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
floor=$(printf '%s\n%s\n' "$(median find.runs 1)" "$(median client.runs 1)" | sort -g | tail -1)
echo
echo "dj.gc wall / djgc wall:        $(ratio "$(median djgc_gc.runs 1)" "$djgc_wall")x   (target >= 5)"
echo "djgc peak RSS / dj.gc peak RSS: $(ratio "$(median djgc.runs 3)" "$(median djgc_gc.runs 3)")   (target <= 0.10)"
echo "djgc wall / find wall:          $(ratio "$djgc_wall" "$(median find.runs 1)")   (target <= 0.70)"
echo "djgc wall / larger floor:       $(ratio "$djgc_wall" "$floor")"
"$python" "$repo/scripts/bench/same_figures.py" djgc.json dj_gc.json
