#!/usr/bin/env bash
# Reading an S3 Inventory instead of listing: the same ROWS objects (default
# 1,000,000) as one CSV.gz data file and as one Parquet (Snappy) data file
# written by pyarrow in AWS's schema, each read as `--inventory` reads it
# (examples/inventory_rate.rs, release build), objects per second printed.
# No server is needed: the manifests are local.
#
#   scripts/bench-inventory.sh
#   ROWS=5000000 scripts/bench-inventory.sh
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${ROWS:-1000000}
python=$(scripts/python-env.sh)
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
# shellcheck source=scripts/bench/lib.sh
. scripts/bench/lib.sh

"$python" - "$dir" "$rows" <<'PY'
import gzip, json, os, sys, time
import pyarrow as pa, pyarrow.parquet as pq

out, rows = sys.argv[1], int(sys.argv[2])
bucket = "inventory-bench"
json.dump({"database.host": "127.0.0.1", "stores": {"default": "main", "main": {
    "protocol": "s3", "endpoint": "127.0.0.1:1", "bucket": bucket, "location": "lab",
    "access_key": "x", "secret_key": "x"}}}, open(f"{out}/datajoint.json", "w"))
keys = [f"lab/_schema/bench/recording/id={i}/raw_{i:08x}.npy" for i in range(rows)]
now = int(time.time() * 1000) - 86_400_000
for fmt in ("csv", "parquet"):
    os.makedirs(f"{out}/{fmt}")
    if fmt == "csv":
        name = "part-0.csv.gz"
        with gzip.open(f"{out}/{fmt}/{name}", "wt", compresslevel=6) as f:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(now / 1000))
            for key in keys:
                f.write(f'"{bucket}","{key}","4096","{stamp}"\n')
        schema = "Bucket, Key, Size, LastModifiedDate"
    else:
        name = "part-0.parquet"
        table = pa.table({
            "bucket": pa.array([bucket] * rows),
            "key": pa.array(keys),
            "size": pa.array([4096] * rows, pa.int64()),
            "last_modified_date": pa.array([now] * rows, pa.timestamp("ms", tz="UTC")),
        })
        pq.write_table(table, f"{out}/{fmt}/{name}", compression="snappy")
        schema = "message s3.inventory { required binary bucket (UTF8); required binary key (UTF8); optional int64 size; optional int64 last_modified_date (TIMESTAMP_MILLIS); }"
    json.dump({"sourceBucket": bucket, "fileFormat": fmt.upper() if fmt == "csv" else "Parquet",
               "fileSchema": schema, "creationTimestamp": str(now + 3_600_000),
               "files": [{"key": f"x/data/{name}"}]}, open(f"{out}/{fmt}/manifest.json", "w"))
PY
ls -l "$dir"/csv "$dir"/parquet | awk '/part-/ {print "bench: " $9 ": " $5 " bytes"}'
cargo build -q ${PROFILE_FLAG:---release} --example inventory_rate
machine
"${CARGO_TARGET_DIR:-target}/${PROFILE_DIR:-release}/examples/inventory_rate" "$dir/datajoint.json" bench \
  "$dir/csv/manifest.json" "$dir/parquet/manifest.json" | tee "$dir/rates"
# Every row was read and routed, or the rates mean nothing.
if [ "$(grep -c ": $rows objects in" "$dir/rates")" -ne 2 ]; then
  echo "bench: a manifest did not give all $rows objects" >&2
  exit 1
fi
