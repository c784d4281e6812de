#!/usr/bin/env bash
# The README's second command, and what CI runs: the whole test suite against
# real MariaDB and PostgreSQL servers and datajoint 2.3.5, plus format and lint.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/services.sh
DJGC_PYTHON=$(scripts/python-env.sh)
export DJGC_PYTHON

cargo fmt --check
cargo clippy --locked --all-targets -- -D warnings
cargo test --locked --lib --bins --tests
