#!/usr/bin/env bash
# djgc next to dj.gc (datajoint 2.3.5) on an S3 store whose every request
# waits DELAY_MS (default 20) in a proxy (examples/latency_proxy.rs) in front
# of the local SeaweedFS, as a distant bucket would.
#
#   scripts/bench-s3.sh                      # 20,000 objects, 20 ms, 1 run each
#   OBJECTS=100000 DELAY_MS=50 RUNS=3 scripts/bench-s3.sh
#
# The fixture is uploaded directly (not through the proxy) once into bucket
# djgc-bench and reused while its settings are the same. Then, through the
# proxy: `djgc scan` and dj.gc's dry run (alternating, RUNS times), and the
# listing rate of one paginated ListObjectsV2 stream next to djgc's split
# listing (examples/s3_list_rate.rs).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
target=${CARGO_TARGET_DIR:-$repo/target}
objects=${OBJECTS:-20000}
delay=${DELAY_MS:-20}
runs=${RUNS:-1}
concurrency=${LIST_CONCURRENCY:-32}
bench=${BENCH_DIR:-/var/tmp/djgc-bench}/s3
schema=djgc_s3bench
bucket=djgc-bench
proxy_port=8334
# shellcheck source=scripts/bench/lib.sh
. scripts/bench/lib.sh

scripts/services.sh >&2
python=$(scripts/python-env.sh)
cargo build --release --locked --bins --example djgc-fixture --example latency_proxy --example s3_list_rate >&2

mkdir -p "$bench"
cd "$bench"
config() { s3_config "$1" "$bucket" s3bench djgc-test djgc-test-secret; }
mkdir -p direct slow
config 127.0.0.1:8333 > direct/datajoint.json
config 127.0.0.1:$proxy_port > slow/datajoint.json

"$python" - "$bucket" <<'PY'
import sys, botocore.session
s3 = botocore.session.get_session().create_client(
    "s3", endpoint_url="http://127.0.0.1:8333", region_name="us-east-1",
    aws_access_key_id="djgc-test", aws_secret_access_key="djgc-test-secret")
if sys.argv[1] not in [b["Name"] for b in s3.list_buckets()["Buckets"]]:
    s3.create_bucket(Bucket=sys.argv[1])
PY

fixture_args="--hash-rows $objects --rows-per-content 2 --npy-rows $((objects / 2)) \
--folder-rows 0 --deleted-fraction 0.2 --young-fraction 0"
if [ "$(cat fixture.args 2>/dev/null)" != "$fixture_args" ]; then
    rm -f fixture.args
    echo "bench: uploading the fixture ($fixture_args)" >&2
    # shellcheck disable=SC2086
    (cd direct && "$target/release/examples/djgc-fixture" "$schema" $fixture_args >&2)
    echo "$fixture_args" > fixture.args
fi

"$target/release/examples/latency_proxy" 127.0.0.1:$proxy_port 127.0.0.1:8333 "$delay" \
    2> proxy.log &
proxy=$!
trap 'kill $proxy 2>/dev/null' EXIT
for _ in $(seq 50); do
    (exec 3<>/dev/tcp/127.0.0.1/$proxy_port) 2>/dev/null && break
    sleep 0.1
done

seconds() { # runs "$@" in slow/, output to $out; prints the wall time
    local start end
    start=$(date +%s.%N)
    (cd slow && "$@") > "$out"
    end=$(date +%s.%N)
    awk -v a="$start" -v b="$end" 'BEGIN {printf "%.2f", b - a}'
}
rm -f djgc.times dj_gc.times
for run in $(seq "$runs"); do
    echo "bench: run $run of $runs" >&2
    out=djgc.json seconds "$target/release/djgc" scan "$schema" --min-age 0s --json \
        --list-concurrency "$concurrency" >> djgc.times
    echo >> djgc.times
    out=dj_gc.json seconds "$python" "$repo/scripts/bench/dj_gc_scan.py" "$schema" >> dj_gc.times
    echo >> dj_gc.times
done
# The server's own CPU time over both listings shows when it, not the
# client, sets the pace (SeaweedFS is the server scripts/services.sh starts).
server=$(pgrep -f "weed mini" | head -n 1)
server_cpu() { awk '{print $14 + $15}' "/proc/$server/stat"; }
cpu_before=$(server_cpu)
(cd slow && "$target/release/examples/s3_list_rate" datajoint.json "$schema" "$concurrency") \
    > listing.out
cpu_after=$(server_cpu)

echo
machine
echo "server: SeaweedFS on the same machine, +$delay ms per request through the proxy"
echo "store: $objects objects in s3://$bucket/s3bench ($fixture_args); $runs run(s) each, median"
echo "djgc scan (--list-concurrency $concurrency): $(median djgc.times) s"
echo "dj.gc dry run:                   $(median dj_gc.times) s"
echo "dj.gc / djgc:                    $(awk -v a="$(median dj_gc.times)" -v b="$(median djgc.times)" 'BEGIN {printf "%.1f", a / b}')x   (target >= 50)"
cat listing.out
echo "                                 (target >= 20x)"
awk -v t="$(( cpu_after - cpu_before ))" -v hz="$(getconf CLK_TCK)" -v keys="$((2 * objects))" 'BEGIN {
    printf "server CPU during both listings: %.1f s, %.0f ms per 1,000 keys listed\n", t / hz, 1000 * t / hz / keys * 1000 }'
"$python" "$repo/scripts/bench/same_figures.py" djgc.json dj_gc.json
