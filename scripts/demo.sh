#!/usr/bin/env bash
# The README's first command: builds djgc, starts the databases, writes a
# small DataJoint-format demo (MariaDB schema djgc_demo, file store in
# demo/store, some rows deleted) and runs `djgc scan --min-age 0s` on it.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
target=${CARGO_TARGET_DIR:-$repo/target}

scripts/services.sh
cargo build --release --locked --bins --example djgc-fixture

demo=$repo/demo
mkdir -p "$demo/store"
cat > "$demo/datajoint.json" <<JSON
{
  "database": {"host": "127.0.0.1", "port": 3306, "user": "djgc", "password": "djgc", "backend": "mysql"},
  "stores": {
    "default": "main",
    "main": {"protocol": "file", "location": "$demo/store", "subfolding": [2, 2]}
  }
}
JSON

cd "$demo"
"$target/release/examples/djgc-fixture" djgc_demo --hash-rows 4000 --npy-rows 2000 --folder-rows 200
echo
echo "\$ djgc scan djgc_demo --min-age 0s        (in $demo, which holds datajoint.json)"
"$target/release/djgc" scan djgc_demo --min-age 0s
echo
echo "The demo store was written a moment ago, and djgc ages an object from its arrival"
echo "in the store: with the default --min-age (24h) every orphan here is still young."
echo "To delete: (cd demo && $target/release/djgc collect djgc_demo --min-age 0s --delete)"
