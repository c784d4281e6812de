#!/usr/bin/env bash
# Listing and deleting on the GCS and Azure emulators (fake-gcs-server,
# Azurite) with every request waiting DELAY_MS (default 20) in a proxy
# (examples/latency_proxy.rs), as a distant bucket would: one stream of
# listing requests next to djgc's split listing, then every object deleted
# in batches (examples/cloud_rate.rs).
#
#   scripts/bench-cloud.sh                     # 100,000 objects, 20 ms
#   OBJECTS=20000 DELAY_MS=50 PROTOCOLS=azure scripts/bench-cloud.sh
#
# The fixture is uploaded directly (not through the proxy) before each
# protocol's run, since the run deletes it.
#
# The emulators, not djgc, set the pace here: fake-gcs-server's filesystem
# backend reads every object of the bucket for each LIST request (4-17 s a
# page at 115,000 objects, measured), and Azurite answered no List Blobs
# request within several minutes at 100,000 blobs; at 10,000 objects GCS's
# listing ran at the server's own rate whatever the concurrency. The figures
# measure the emulators' limits, not a cloud provider's.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
target=${CARGO_TARGET_DIR:-$repo/target}
objects=${OBJECTS:-100000}
delay=${DELAY_MS:-20}
concurrency=${LIST_CONCURRENCY:-32}
protocols=${PROTOCOLS:-gcs azure}
bench=${BENCH_DIR:-/var/tmp/djgc-bench}/cloud
schema=djgc_cloudbench
# shellcheck source=scripts/bench/lib.sh
. scripts/bench/lib.sh

scripts/services.sh >&2
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
echo
machine
echo "servers: emulators on the same machine, +$delay ms per request through the proxy"
for protocol in $protocols; do
    case $protocol in
        gcs) port=4443 ;;
        azure) port=10000 ;;
        *) echo "bench: unknown protocol $protocol" >&2; exit 2 ;;
    esac
    proxy_port=$((port + 1))
    mkdir -p "$protocol/direct" "$protocol/slow"
    config "$protocol" "$port" > "$protocol/direct/datajoint.json"
    config "$protocol" "$proxy_port" > "$protocol/slow/datajoint.json"
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
        "$target/release/examples/cloud_rate" datajoint.json "$schema" "$concurrency") | sed 's/^/  /'
    kill "$proxy" 2>/dev/null
    wait "$proxy" 2>/dev/null || true
done
