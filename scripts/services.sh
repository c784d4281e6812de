#!/usr/bin/env bash
# Starts MariaDB and PostgreSQL on 127.0.0.1 for djgc's tests and demo,
# installing them with apt-get where absent, and creates the test account
# (user djgc, password djgc, on both servers; PostgreSQL database djgc).
# Idempotent: running it again changes nothing and returns once both answer.
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
GRANT ALL PRIVILEGES ON *.* TO 'djgc'@'127.0.0.1';
GRANT ALL PRIVILEGES ON *.* TO 'djgc'@'localhost';
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

# Both must answer as the test user over TCP, the way the tests connect.
mariadb -h127.0.0.1 -P3306 -udjgc -pdjgc -e 'SELECT 1' >/dev/null
PGPASSWORD=djgc psql -h 127.0.0.1 -p 5432 -U djgc -d djgc -qtc 'SELECT 1' >/dev/null
log "MariaDB on 127.0.0.1:3306 and PostgreSQL on 127.0.0.1:5432 are up (user djgc)"
