#!/usr/bin/env bash
# Start Debian's PostgreSQL (installed by .ci/run) and print a SQLAlchemy URL for the tests.
set -euo pipefail
ver=$(ls /usr/lib/postgresql | sort -n | tail -1)
if ! pg_lsclusters -h | grep -q .; then
  pg_createcluster "$ver" main >/dev/null
fi
cluster=$(pg_lsclusters -h | head -1 | awk '{print $1" "$2}')
port=$(pg_lsclusters -h | head -1 | awk '{print $3}')
pg_ctlcluster $cluster start >/dev/null 2>&1 || true
for _ in $(seq 1 50); do pg_isready -q -h 127.0.0.1 -p "$port" && break; sleep 0.2; done
su postgres -c "psql -q -p $port -tc \"SELECT 1 FROM pg_roles WHERE rolname='jakinib'\" | grep -q 1 || psql -q -p $port -c \"CREATE ROLE jakinib LOGIN SUPERUSER PASSWORD 'jakinib'\"" >/dev/null
su postgres -c "psql -q -p $port -tc \"SELECT 1 FROM pg_database WHERE datname='jakinib_test'\" | grep -q 1 || createdb -p $port -O jakinib jakinib_test" >/dev/null
echo "postgresql+psycopg://jakinib:jakinib@127.0.0.1:$port/jakinib_test"
