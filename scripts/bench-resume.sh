#!/usr/bin/env bash
# Stop and go on at scale: a `djgc apply PLAN --delete` of a DataJoint file
# store (MariaDB) is stopped at random points, by SIGTERM and by SIGKILL in
# turn (KILLS times, default 10), each time going on from the plan's
# progress file, until a run finishes. Then checks that every orphan is gone,
# that every other file is still there, and that the last report counts each
# orphan once.
#
#   scripts/bench-resume.sh                    # 1M objects
#   OBJECTS=100000 KILLS=6 scripts/bench-resume.sh
#
# The store is written afresh each time (the run deletes from it), under
# $BENCH_DIR/resume.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
target=${CARGO_TARGET_DIR:-$repo/target}
objects=${OBJECTS:-1000000}
kills=${KILLS:-10}
bench=${BENCH_DIR:-/var/tmp/djgc-bench}/resume
schema=djgc_resume
# shellcheck source=scripts/bench/lib.sh
. scripts/bench/lib.sh

scripts/services.sh >&2
cargo build --release --locked --bins --example djgc-fixture >&2
rm -rf "$bench"
file_store_fixture "$bench" "$schema" "$objects"
cd "$bench"
djgc="$target/release/djgc"

"$djgc" scan "$schema" --min-age 0s --plan plan.jsonl --orphans-out orphans.txt --quiet
sort orphans.txt > orphans.sorted
(cd store && find . -type f | sed 's|^\./||' | sort) > before.sorted
comm -23 before.sorted orphans.sorted > live.sorted
echo "bench: $(wc -l < before.sorted) files, $(wc -l < orphans.sorted) orphans" >&2
machine

# Every third stop lands at a random point before the run deletes (it lists
# the store again and re-reads the database first), the others a random
# 0-3 s after its first deletion.
seed=${SEED:-$$}
for round in $(seq "$kills"); do
    signal=TERM
    [ $((round % 2)) -eq 0 ] && signal=KILL
    seed=$(( (seed * 1103515245 + 12345) % 2147483648 ))
    "$djgc" apply plan.jsonl --min-age 0s --delete --report "round-$round.json" -v \
        > /dev/null 2> "round-$round.err" &
    pid=$!
    if [ $((round % 3)) -eq 0 ]; then
        wait_ms=$(( seed % 4000 ))
        when="$wait_ms ms after its start"
    else
        while kill -0 "$pid" 2>/dev/null && ! grep -q '^deleted ' "round-$round.err"; do
            sleep 0.05
        done
        wait_ms=$(( seed % 3000 ))
        when="$wait_ms ms after its first deletion"
    fi
    sleep "$(printf '%d.%03d' $((wait_ms / 1000)) $((wait_ms % 1000)))"
    sent=$(date +%s.%N)
    kill -"$signal" "$pid" 2>/dev/null || true
    code=0
    wait "$pid" 2>/dev/null || code=$?
    ended=$(date +%s.%N)
    left=$(comm -12 orphans.sorted <(cd store && find . -type f | sed 's|^\./||' | sort) | wc -l)
    printf 'round %2d: SIG%s %s: exit %3s, ended %.2f s after the signal, %d orphans left\n' \
        "$round" "$signal" "$when" "$code" "$(echo "$ended - $sent" | bc)" "$left"
    if [ "$signal" = TERM ] && [ "$code" = 1 ] && ! grep -q '"partial":true' "round-$round.json"; then
        echo "bench: round $round: exit 1 after SIGTERM but no partial report" >&2
        exit 1
    fi
    [ "$left" -eq 0 ] && break
done
"$djgc" apply plan.jsonl --min-age 0s --delete --json > last.json || echo "bench: the last run exited $?" >&2
(cd store && find . -type f | sed 's|^\./||' | sort) > after.sorted
orphans_left=$(comm -12 orphans.sorted after.sorted | wc -l)
live_lost=$(comm -23 live.sorted after.sorted | wc -l)
python3 - "$(wc -l < orphans.sorted)" "$orphans_left" "$live_lost" <<'PY'
import json, sys
orphans, left, lost = map(int, sys.argv[1:])
r = json.load(open("last.json"))
counted = r["deleted"] + r["already_gone"] + r["changed_skipped"]
print(f"last run: deleted {r['deleted']} (earlier runs disposed of {r['resumed_after']}), "
      f"already gone {r['already_gone']}, found gone after a SIGKILL {r['changed_skipped']}, "
      f"errors {r['errors']}, unverified {r['unverified']}")
print(f"orphans {orphans}: counted once each: {counted == orphans}; left in the store: {left}; "
      f"live files lost: {lost}")
sys.exit(0 if (counted == orphans and left == 0 and lost == 0 and r["errors"] == 0) else 1)
PY
