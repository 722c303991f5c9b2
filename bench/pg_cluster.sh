# Sourced by the bench/ scripts that need a throwaway PostgreSQL cluster:
#   pg_cluster_start DIR   initdb + pg_ctl in DIR on a free loopback port (as the `postgres` user
#                          when root: PostgreSQL refuses to run as root); fsync stays on, as in a
#                          real deployment. Sets PG_URL, PG_PORT and PG_BIN.
#   pg_cluster_stop DIR    stops it (the caller removes DIR).
as_pg() { if [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi; }

pg_cluster_start() {
  local dir=$1
  PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  [[ -n $PG_BIN ]] || { echo "no PostgreSQL server binaries (install postgresql)" >&2; return 1; }
  mkdir -p "$dir/pg"
  if [[ $(id -u) -eq 0 ]]; then chown postgres "$dir" "$dir/pg"; fi
  as_pg "$PG_BIN/initdb" -D "$dir/pg" --auth=trust -U postgres >/dev/null
  PG_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  as_pg "$PG_BIN/pg_ctl" -D "$dir/pg" -w -l "$dir/pg/log" \
    -o "-p $PG_PORT -k $dir/pg -c listen_addresses=127.0.0.1" start >/dev/null
  PG_URL="postgresql://postgres@127.0.0.1:$PG_PORT/postgres"
}

pg_cluster_stop() {
  as_pg "$PG_BIN/pg_ctl" -D "$1/pg" -m immediate -w stop >/dev/null 2>&1 || true
}
