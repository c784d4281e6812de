#!/usr/bin/env bash
# Listing and deleting on the GCS and Azure emulators (fake-gcs-server,
# Azurite) with every request waiting DELAY_MS (default 20) in a proxy
# (examples/latency_proxy.rs), as a distant bucket would: one stream of
# listing requests next to djgc's split listing, then every object deleted
# in batches (examples/cloud_rate.rs).
#
#   scripts/bench-cloud.sh                     # 10,000 objects, 20 ms
#   OBJECTS=20000 DELAY_MS=50 PROTOCOLS=azure scripts/bench-cloud.sh
#   OBJECTS=100000 PROTOCOLS=azure LIST_ONLY=1 scripts/bench-cloud.sh
#
# Each protocol gets an emulator of its own for the run, keeping everything
# in memory (fake-gcs-server -backend memory, Azurite --inMemoryPersistence)
# on a spare port, stopped at the end: the tests' emulators and their data
# are not touched, and nothing is left on disk. The fixture is uploaded
# directly (not through the proxy), since the run deletes it.
#
# The emulators, not djgc, set the pace and the size (measured on 2 cores):
# fake-gcs-server's memory backend spends time in proportion to the bucket
# on every object written (120 uploads/s at 10,000 objects, 58/s at 13,000;
# preloading 100,000 with -data had not finished after 11 CPU minutes) and
# its filesystem backend reads every object for each LIST page (4-17 s a
# page at 115,000); Azurite deletes in time proportional to the container
# (10 ms a blob at 2,000 blobs, 57 ms at 10,000, one at a time; batched
# about the same).
# Hence 10,000 objects by default: at 100,000 a run takes hours. LIST_ONLY=1
# measures the listing and leaves the deletes out.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
target=${CARGO_TARGET_DIR:-$repo/target}
objects=${OBJECTS:-10000}
delay=${DELAY_MS:-20}
concurrency=${LIST_CONCURRENCY:-32}
protocols=${PROTOCOLS:-gcs azure}
bench=${BENCH_DIR:-/var/tmp/djgc-bench}/cloud
schema=djgc_cloudbench
tools=${DJGC_TOOLS:-/var/lib/djgc}
# shellcheck source=scripts/bench/lib.sh
. scripts/bench/lib.sh

scripts/services.sh >&2 # the databases, and the emulators installed
cargo build --release --locked --example djgc-fixture --example latency_proxy --example cloud_rate >&2

mkdir -p "$bench"
cd "$bench"
account_key="Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
config() { # $1: protocol, $2: port of the server or of its proxy
    local store
    case $1 in
        gcs) store="\"protocol\": \"gcs\", \"bucket\": \"djgc-tests\", \"token\": \"anon\"" ;;
        azure) store="\"protocol\": \"azure\", \"container\": \"djgc-tests\", \"connection_string\":
            \"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=$account_key;BlobEndpoint=http://127.0.0.1:$2/devstoreaccount1;\"" ;;
    esac
    cat <<JSON
{
  "database": {"host": "127.0.0.1", "port": 3306, "user": "djgc", "password": "djgc", "backend": "mysql"},
  "stores": {"default": "main",
             "main": {$store, "location": "cloudbench", "subfolding": [2, 2]}}
}
JSON
}

fixture_args="--hash-rows $objects --rows-per-content 2 --npy-rows $((objects / 2)) \
--folder-rows 0 --deleted-fraction 0.2 --young-fraction 0"
# An emulator of its own for protocol $1 on 127.0.0.1:$2, in memory; its
# pid in $emulator. Azurite may ignore SIGTERM while busy: stopped with -9.
emulator=
stop_emulator() { [ -z "$emulator" ] || { kill -9 "$emulator" 2>/dev/null || true; wait "$emulator" 2>/dev/null || true; emulator=; }; }
proxy=
trap 'stop_emulator; [ -z "$proxy" ] || kill "$proxy" 2>/dev/null || true' EXIT
start_emulator() {
    if (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null; then
        echo "bench: port $2 is taken; stop what listens there" >&2
        exit 1
    fi
    case $1 in
        gcs) exec "$(find "$tools/fakegcs-venv" -name 'fake-gcs-server-linux-amd64' | head -n1)" \
                -scheme http -host 127.0.0.1 -port "$2" -backend memory -log-level error ;;
        azure) exec "$tools/azurite/node_modules/.bin/azurite-blob" --blobHost 127.0.0.1 \
                --blobPort "$2" --inMemoryPersistence --skipApiVersionCheck --silent \
                --disableTelemetry ;;
    esac > "$1/emulator.log" 2>&1 < /dev/null &
    emulator=$!
    for _ in $(seq 100); do
        python3 "$repo/scripts/emulator-bucket.py" "$1" "$2" 2>/dev/null && return
        sleep 0.2
    done
    echo "bench: the $1 emulator did not start; see $bench/$1/emulator.log" >&2
    exit 1
}

echo
machine
echo "servers: emulators in memory on the same machine, +$delay ms per request through the proxy"
for protocol in $protocols; do
    case $protocol in
        gcs) port=4453 ;;
        azure) port=10010 ;;
        *) echo "bench: unknown protocol $protocol" >&2; exit 2 ;;
    esac
    proxy_port=$((port + 1))
    mkdir -p "$protocol/direct" "$protocol/slow"
    config "$protocol" "$port" > "$protocol/direct/datajoint.json"
    config "$protocol" "$proxy_port" > "$protocol/slow/datajoint.json"
    start_emulator "$protocol" "$port"
    echo "bench: uploading the fixture to $protocol ($fixture_args)" >&2
    started=$(date +%s)
    # shellcheck disable=SC2086
    (cd "$protocol/direct" && STORAGE_EMULATOR_HOST=http://127.0.0.1:$port \
        "$target/release/examples/djgc-fixture" "$schema" $fixture_args >&2)
    echo "bench: uploaded in $(( $(date +%s) - started )) s" >&2

    "$target/release/examples/latency_proxy" "127.0.0.1:$proxy_port" "127.0.0.1:$port" "$delay" \
        2> "$protocol/proxy.log" &
    proxy=$!
    for _ in $(seq 50); do
        (exec 3<>"/dev/tcp/127.0.0.1/$proxy_port") 2>/dev/null && break
        sleep 0.1
    done
    echo "$protocol:"
    (cd "$protocol/slow" && STORAGE_EMULATOR_HOST=http://127.0.0.1:$proxy_port \
        "$target/release/examples/cloud_rate" datajoint.json "$schema" "$concurrency" \
        ${LIST_ONLY:+--list-only}) | sed 's/^/  /'
    kill "$proxy" 2>/dev/null
    wait "$proxy" 2>/dev/null || true
    proxy=
    stop_emulator
done
