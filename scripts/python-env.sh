#!/usr/bin/env bash
# Creates the Python environment of the compatibility test: datajoint 2.3.5
# (the reference collector) with the clients it writes stores through (s3fs;
# gcsfs 2025.3.0, the last that speaks the JSON API to the GCS emulator rather
# than trying gRPC; adlfs), PyYAML (to read the Kubernetes example), pyarrow
# (to write S3 Inventory reports in Parquet) and maturin (to build djgc's wheel) from PyPI, in .venv-compat/ unless DJGC_VENV
# says where. Installs python3 and its venv module with apt-get where absent.
# Prints the environment's python path. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${DJGC_VENV:-$PWD/.venv-compat}

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
if ! command -v python3 >/dev/null || ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
  echo "python-env: installing python3 and python3-venv" >&2
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv >/dev/null
fi

if ! "$venv/bin/python" -c 'import datajoint, s3fs, gcsfs, adlfs, yaml, pyarrow, maturin, sys; sys.exit(datajoint.__version__ != "2.3.5")' 2>/dev/null; then
  echo "python-env: installing datajoint 2.3.5 into $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check \
    datajoint==2.3.5 pymysql psycopg2-binary numpy s3fs gcsfs==2025.3.0 adlfs pyyaml pyarrow \
    'maturin>=1.5,<2' >&2
fi
echo "$venv/bin/python"
