# Sourced by scripts/test: make a real PostgreSQL reachable on 127.0.0.1 and export
# SMALLWINS_TEST_PG_URL. Order: a URL already given; the machine's server if it lets the
# postgres role in; otherwise a private throwaway cluster (installing PostgreSQL if missing).
# SMALLWINS_TEST_PG=private skips the machine's server and always uses the private cluster.
set -euo pipefail

pg_try() { psql "$1" -Atqc 'select 1' >/dev/null 2>&1; }

pg_bin_dir() {
  ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}

pg_install() {
  if [ -n "$(pg_bin_dir)" ] && command -v psql >/dev/null; then return; fi
  if [ "$(id -u)" != 0 ]; then
    echo "PostgreSQL is not installed and I am not root: install it, or set SMALLWINS_TEST_PG_URL" >&2
    exit 1
  fi
  echo "installing PostgreSQL from Debian's packages..." >&2
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
}

pg_private_cluster() {
  # A cluster of our own, trust auth, loopback only, port 55432. It lives under /tmp, which the
  # postgres user can reach even when the checkout sits in a private home directory.
  local bin base dir port=55432 owner
  bin=$(pg_bin_dir)
  base="${SMALLWINS_PG_DIR:-/tmp/smallwins-pg}"
  dir="$base/data"
  owner=$(id -un)
  if [ "$(id -u)" = 0 ]; then owner=postgres; fi  # initdb refuses to run as root
  run_as() { if [ "$owner" = "$(id -un)" ]; then "$@"; else su "$owner" -s /bin/sh -c "$(printf '%q ' "$@")"; fi; }
  mkdir -p "$base"
  chown "$owner" "$base"
  if [ ! -f "$dir/PG_VERSION" ]; then
    run_as "$bin/initdb" -D "$dir" -A trust -U postgres >/dev/null
  fi
  if ! run_as "$bin/pg_ctl" -D "$dir" status >/dev/null 2>&1; then
    run_as "$bin/pg_ctl" -D "$dir" -l "$base/log" -w \
      -o "-p $port -k $base -c listen_addresses=127.0.0.1" start >/dev/null
  fi
  PG_ADMIN_URL="postgresql://postgres@127.0.0.1:$port/postgres"
}

if [ -z "${SMALLWINS_TEST_PG_URL:-}" ]; then
  pg_install
  PG_ADMIN_URL="postgresql://postgres@127.0.0.1:5432/postgres"
  if [ "${SMALLWINS_TEST_PG:-}" = private ]; then
    pg_private_cluster
  elif ! pg_try "$PG_ADMIN_URL"; then
    if command -v pg_ctlcluster >/dev/null && [ "$(id -u)" = 0 ] && ls /etc/postgresql/*/main >/dev/null 2>&1; then
      pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -n 1)" main start >/dev/null 2>&1 || true
    fi
    pg_try "$PG_ADMIN_URL" || pg_private_cluster
  fi
  pg_try "$PG_ADMIN_URL" || { echo "PostgreSQL did not come up at $PG_ADMIN_URL" >&2; exit 1; }
  if [ "$(psql "$PG_ADMIN_URL" -Atqc "select 1 from pg_database where datname='smallwins_test'")" != 1 ]; then
    psql "$PG_ADMIN_URL" -qc 'create database smallwins_test' >/dev/null
  fi
  export SMALLWINS_TEST_PG_URL="${PG_ADMIN_URL%/postgres}/smallwins_test"
fi
echo "tests use PostgreSQL at $SMALLWINS_TEST_PG_URL" >&2
