#!/usr/bin/env bash
# How many training steps per second one PostgreSQL can store: each step of a job is the two
# fenced transactions gan-server commits (server/postgres_job_store.cc): lock the job's row, insert
# the metric event (EVENT_BYTES of protobuf) and notify, commit; then the fenced progress update,
# commit; both with synchronous_commit off, as the server sends them (a step's writes do not wait
# for the disk; the checkpoint's and the job's end do). Starts a throwaway cluster (fsync on), lets gan-server create its schema, then runs
# pgbench with CLIENTS connections, each playing one running job, for SECONDS.
#   bench/store_write_rate.sh [CLIENTS=1] [SECONDS=20] [EVENT_BYTES=600]
# Prints pgbench's summary and the step rate (each pgbench transaction is one training step).
set -euo pipefail
cd "$(dirname "$0")/.."
clients=${1:-1} seconds=${2:-20} event_bytes=${3:-600}
work=$(mktemp -d /tmp/gan-store-rate-XXXXXX)
server=
source bench/pg_cluster.sh
cleanup() {
  if [[ -n $server ]]; then kill -TERM "$server" 2>/dev/null || true; wait "$server" || true; fi
  pg_cluster_stop "$work"
  rm -rf "$work"
}
trap cleanup EXIT
pg_cluster_start "$work"

# The schema as gan-server creates it: start one replica until it is ready, then stop it.
build/bin/gan-server --listen 127.0.0.1:0 --metrics_listen= --data_dir "$work/data" \
  --job_store "$PG_URL" >"$work/server.out" 2>"$work/server.log" &
server=$!
for _ in $(seq 300); do grep -q "(port " "$work/server.out" && break; sleep 0.1; done
grep -q "(port " "$work/server.out" || { cat "$work/server.log"; exit 1; }
kill -TERM "$server"; wait "$server" || true; server=

psql() { as_pg "$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -q -v ON_ERROR_STOP=1 "$@"; }
psql -c "INSERT INTO jobs (job_id, spec, state, create_time_us, replica, lease_epoch)
         SELECT 'job-' || c, '', 2, 0, 'bench', 1 FROM generate_series(1, $clients) AS c"
cat >"$work/step.sql" <<SQL
BEGIN;
SET LOCAL synchronous_commit = off;
SELECT replica, lease_epoch, state FROM jobs WHERE job_id = 'job-' || :client_id + 1 FOR UPDATE;
INSERT INTO metric_events (job_id, step, event)
  VALUES ('job-' || :client_id + 1, 1, decode(repeat('ab', $event_bytes), 'hex'));
SELECT pg_notify('gan_events', 'job-' || :client_id + 1);
COMMIT;
BEGIN;
SET LOCAL synchronous_commit = off;
UPDATE jobs SET step = step + 1
  WHERE job_id = 'job-' || :client_id + 1 AND replica = 'bench' AND lease_epoch = 1;
COMMIT;
SQL
chmod 644 "$work/step.sql"
as_pg "$PG_BIN/pgbench" -h 127.0.0.1 -p "$PG_PORT" -U postgres -n -c "$clients" -j "$clients" \
  -T "$seconds" -f "$work/step.sql" postgres 2>&1 | grep -E "clients|transactions actually|latency average|tps"
echo "($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), $(nproc) CPUs; one" \
  "transaction = one training step's two commits)"
