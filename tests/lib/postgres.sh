# Sourced by tests/run and the load scripts: a throwaway PostgreSQL on
# loopback, installed from Debian if missing, in a temp data directory.
# `start_postgres` exports WARRANT_TEST_POSTGRES_URL (an admin URL) and
# stops the server on exit.

start_postgres() {
  if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    echo "installing PostgreSQL (Debian package)"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql) >/dev/null
  fi
  local bin; bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
  PGTMP=$(mktemp -d /tmp/warrant-pg.XXXXXX)
  local as=()
  if [ "$(id -u)" = 0 ]; then chown postgres: "$PGTMP"; as=(runuser -u postgres --); fi
  "${as[@]}" "$bin/initdb" -D "$PGTMP/data" -A trust -U postgres >/dev/null
  local port; port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  "${as[@]}" "$bin/pg_ctl" -D "$PGTMP/data" -l "$PGTMP/log" -w -o "-p $port -k $PGTMP -c listen_addresses=127.0.0.1" start >/dev/null
  trap 'stop_postgres' EXIT
  export WARRANT_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$port/postgres"
  PG_CTL=("${as[@]}" "$bin/pg_ctl" -D "$PGTMP/data")
  echo "PostgreSQL $("$bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$port"
}
stop_postgres() {
  "${PG_CTL[@]}" -m fast stop >/dev/null 2>&1 || true
  rm -rf "$PGTMP"
}
