#!/usr/bin/env bash
# S3 listing and deletion at a server's limit. The local SeaweedFS is
# CPU-bound (about 270 ms of its CPU per 1,000 keys listed), so this uses
# Garage, which lists far faster, on 127.0.0.1:3900: a bucket of OBJECTS keys
# (a DataJoint-format fixture, default 1M) is listed directly and through
# examples/latency_proxy.rs adding DELAY_MS (default 100) to every request,
# and DELETES objects (default 100,000) are written and deleted each way.
#
#   scripts/bench-garage.sh
#   OBJECTS=200000 DELAY_MS=50 scripts/bench-garage.sh
#
# Garage is built once by `cargo install garage` into /var/tmp/garage-install
# (10-20 minutes on 2 cores; GARAGE=path uses another binary). A benchmark
# only: CI does not run it. The server is left running for the next run.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
target=${CARGO_TARGET_DIR:-$repo/target}
objects=${OBJECTS:-1000000}
delay=${DELAY_MS:-100}
deletes=${DELETES:-100000}
list_concurrency=${LIST_CONCURRENCY:-32}
delete_concurrency=${DELETE_CONCURRENCY:-8}
bench=${BENCH_DIR:-/var/tmp/djgc-bench}/garage
garage=${GARAGE:-/var/tmp/garage-install/bin/garage}
schema=djgc_garage
bucket=djgc-bench
proxy_port=3910
# Fixed test credentials (Garage's format: GK + 24 hex digits, 64 hex digits).
key_id=GK0123456789abcdef01234567
secret=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
# shellcheck source=scripts/bench/lib.sh
. scripts/bench/lib.sh

scripts/services.sh >&2
if [ -n "${GARAGE:-}" ] && [ ! -x "$garage" ]; then
    echo "bench: GARAGE=$garage is not an executable file" >&2
    exit 1
fi
if [ ! -x "$garage" ]; then
    echo "bench: building Garage 2.5.0 (cargo install garage) into /var/tmp/garage-install" >&2
    cargo install garage --version 2.5.0 --locked --root /var/tmp/garage-install >&2
fi
cargo build --release --locked --example djgc-fixture --example latency_proxy \
    --example s3_list_rate --example s3_delete_rate >&2

mkdir -p "$bench/meta" "$bench/data" "$bench/direct" "$bench/slow"
cd "$bench"
cat > garage.toml <<TOML
metadata_dir = "$bench/meta"
data_dir = "$bench/data"
db_engine = "lmdb"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:3901"
rpc_public_addr = "127.0.0.1:3901"
rpc_secret = "$secret"

[s3_api]
s3_region = "us-east-1"
api_bind_addr = "127.0.0.1:3900"
root_domain = ".s3.garage.localhost"
TOML
g() { "$garage" -c "$bench/garage.toml" "$@"; }
up() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
if ! up 3900; then
    echo "bench: starting Garage on 127.0.0.1:3900" >&2
    RUST_LOG=garage=warn setsid "$garage" -c "$bench/garage.toml" server \
        > garage.log 2>&1 < /dev/null &
    echo $! > garage.pid
    for _ in $(seq 100); do up 3900 && up 3901 && break; sleep 0.2; done
    up 3900 && up 3901 || { echo "bench: Garage did not start; see $bench/garage.log" >&2; exit 1; }
    echo "bench: Garage runs on (stop it with: kill \$(cat $bench/garage.pid))" >&2
fi
if ! g layout show 2>/dev/null | grep -q "^Current cluster layout version: [1-9]"; then
    node=$(g node id -q 2>/dev/null | cut -d@ -f1)
    g layout assign -z dc1 -c 20G "$node" >&2
    g layout apply --version 1 >&2
fi
g key info "$key_id" > /dev/null 2>&1 || g key import --yes -n djgc-bench "$key_id" "$secret" >&2
g bucket info "$bucket" > /dev/null 2>&1 || g bucket create "$bucket" >&2
g bucket allow --read --write --owner "$bucket" --key "$key_id" > /dev/null

config() { s3_config "$1" "$bucket" bench "$key_id" "$secret"; }
config 127.0.0.1:3900 > direct/datajoint.json
config 127.0.0.1:$proxy_port > slow/datajoint.json

fixture_args="--hash-rows $objects --rows-per-content 2 --npy-rows $((objects / 2)) \
--folder-rows 0 --deleted-fraction 0.2 --young-fraction 0"
if [ "$(cat fixture.args 2>/dev/null)" != "$fixture_args" ]; then
    rm -f fixture.args
    echo "bench: uploading the fixture ($fixture_args)" >&2
    start=$(date +%s)
    # shellcheck disable=SC2086
    (cd direct && "$target/release/examples/djgc-fixture" "$schema" $fixture_args >&2)
    echo "bench: uploaded in $(( $(date +%s) - start )) s" >&2
    echo "$fixture_args" > fixture.args
fi

if up $proxy_port; then
    echo "bench: port $proxy_port is taken (a proxy left from an earlier run?)" >&2
    exit 1
fi
"$target/release/examples/latency_proxy" 127.0.0.1:$proxy_port 127.0.0.1:3900 "$delay" \
    2> proxy.log &
proxy=$!
trap 'kill $proxy 2>/dev/null' EXIT
trap 'exit 130' INT TERM HUP
for _ in $(seq 50); do up $proxy_port && break; sleep 0.1; done
kill -0 "$proxy" 2>/dev/null || { cat proxy.log >&2; exit 1; }

list() { "$target/release/examples/s3_list_rate" "$1/datajoint.json" "$schema" "$list_concurrency"; }
remove() { "$target/release/examples/s3_delete_rate" direct/datajoint.json "$1/datajoint.json" \
    "$deletes" "$delete_concurrency"; }
list direct > list.direct
list slow > list.slow
remove direct > delete.direct
remove slow > delete.slow

rate() { grep "^$2" "$1" | sed -E 's/.* ([0-9]+) (keys|objects)\/s.*/\1/'; }
echo
machine
echo "server: Garage $("$garage" --version 2>/dev/null | head -n 1 | awk '{print $2}' | sed 's/^cargo://') on the same machine; slow = +$delay ms per request (examples/latency_proxy.rs)"
echo "bucket: $(grep -o '^single stream: [0-9]* keys' list.direct | awk '{print $3}') keys listed ($fixture_args)"
printf '%-44s %12s %12s %8s\n' "" "direct" "+${delay} ms" "ratio"
row() { awk -v a="$2" -v b="$3" -v l="$1" 'BEGIN {printf "%-44s %12s %12s %7.2f\n", l, a, b, b / a}'; }
row "single ListObjectsV2 stream, keys/s" "$(rate list.direct 'single stream')" "$(rate list.slow 'single stream')"
row "djgc listing, sections in turn, keys/s" "$(rate list.direct 'sections one after another')" "$(rate list.slow 'sections one after another')"
row "djgc listing ($list_concurrency parts at once), keys/s" "$(rate list.direct 'djgc listing')" "$(rate list.slow 'djgc listing')"
row "djgc deletes ($delete_concurrency x 1,000 keys in flight), objects/s" "$(rate delete.direct 'deleted')" "$(rate delete.slow 'deleted')"
echo "targets: djgc's listing and deletes through +$delay ms at >= 0.75 of their direct rate"
