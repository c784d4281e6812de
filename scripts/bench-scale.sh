#!/usr/bin/env bash
# How djgc's memory and time grow with the number of references: a dry-run
# scan of a MariaDB table of N npy rows against a synthetic listing of
# N * 1.1 keys (examples/synthetic_scan.rs; nothing on disk), for each N.
#
#   scripts/bench-scale.sh                  # N = 1M and 10M, 3 scans each
#   SIZES="1000000 3000000" RUNS=5 scripts/bench-scale.sh
#
# Each figure is the median of RUNS scans (the first scan after filling a
# table competes with the server flushing it).
# Prints peak RSS per reference (the target is <= 48 bytes at 10M) and the
# growth of wall time and peak RSS from the smallest N to the largest (the
# target is <= 11x for 10x the references).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
target=${CARGO_TARGET_DIR:-$repo/target}
sizes=${SIZES:-1000000 10000000}
runs=${RUNS:-3}
bench=${BENCH_DIR:-/var/tmp/djgc-bench}/scale
schema=djgc_scale
# shellcheck source=scripts/bench/lib.sh
. scripts/bench/lib.sh

scripts/services.sh >&2
need_gnu_time
cargo build --release --locked --example synthetic_scan >&2

mkdir -p "$bench/store"
cat > "$bench/datajoint.json" <<JSON
{
  "database": {"host": "127.0.0.1", "port": 3306, "user": "djgc", "password": "djgc", "backend": "mysql"},
  "stores": {"default": "main", "main": {"protocol": "file", "location": "$bench/store"}}
}
JSON
sql() { mariadb -h 127.0.0.1 -u djgc -pdjgc -N -e "$1"; }

machine
echo "median of $runs scans each"
printf '%-10s %-10s %-10s %-8s %-12s %s\n' references listed orphans "wall s" "peak RSS MB" "bytes/reference"
first=""
for n in $sizes; do
    # The table DataJoint would write for an <npy@main> attribute, filled by
    # the server itself (MariaDB's SEQUENCE engine) in one statement.
    sql "DROP DATABASE IF EXISTS $schema; CREATE DATABASE $schema; USE $schema;
         CREATE TABLE $schema.\`_npy_item\` (
           id int NOT NULL COMMENT ':int32:',
           arr longtext CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL COMMENT ':<npy@main>:',
           PRIMARY KEY (id)) ENGINE=InnoDB;
         SET SESSION unique_checks = 0;
         INSERT INTO $schema.\`_npy_item\`
           SELECT seq, CONCAT('{\"path\": \"_schema/$schema/npy_item/id=', seq,
                              '/arr.npy\", \"store\": \"main\", \"dtype\": \"float32\", \"shape\": [4]}')
           FROM seq_0_to_$((n - 1));"
    keys=$((n + n / 10))
    : > "$bench/runs"
    for _ in $(seq "$runs"); do
        /usr/bin/time -f "%e %M" -o "$bench/time.out" \
            "$target/release/examples/synthetic_scan" "$bench/datajoint.json" "$schema" "$keys" \
            > "$bench/scan.out"
        read -r _ refs _ listed _ orphans _ _ < "$bench/scan.out"
        if [ "$refs" != "$n" ] || [ "$orphans" != "$((keys - n))" ]; then
            echo "bench: wrong counts for N=$n: $(cat "$bench/scan.out")" >&2
            exit 1
        fi
        cat "$bench/time.out" >> "$bench/runs"
    done
    wall=$(median "$bench/runs" 1)
    rss_kb=$(median "$bench/runs" 2)
    printf '%-10s %-10s %-10s %-8s %-12s %s\n' "$refs" "$listed" "$orphans" "$wall" \
        "$((rss_kb / 1024))" "$(awk -v r="$rss_kb" -v n="$n" 'BEGIN {printf "%.1f", r * 1024 / n}')"
    if [ -z "$first" ]; then
        first="$n $wall $rss_kb"
    fi
    last="$n $wall $rss_kb"
done
sql "DROP DATABASE IF EXISTS $schema"
read -r n0 wall0 rss0 <<< "$first"
read -r n1 wall1 rss1 <<< "$last"
if [ "$n0" != "$n1" ]; then
    awk -v n0="$n0" -v n1="$n1" -v w0="$wall0" -v w1="$wall1" -v r0="$rss0" -v r1="$rss1" 'BEGIN {
        printf "growth from %d to %d references (%.0fx): wall %.1fx, peak RSS %.1fx (target <= %.1fx)\n",
            n0, n1, n1 / n0, w1 / w0, r1 / r0, 1.1 * n1 / n0 }'
fi
