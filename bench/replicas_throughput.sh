#!/usr/bin/env bash
# Jobs finished per hour by N gan-server replicas sharing one PostgreSQL job store and one data
# directory, on this machine: starts a throwaway PostgreSQL cluster (initdb + pg_ctl on a free
# loopback port, run as the `postgres` user when root; fsync on, as a real deployment), starts the
# replicas, submits JOBS jobs round-robin through them, waits for all to succeed and prints one
# line. Everything it started is stopped and removed on exit.
#   bench/replicas_throughput.sh [REPLICAS=1] [JOBS=12] [STEPS=100] [THREADS_PER_JOB=2]
# Jobs: seed-dcgan on `synthetic`, batch 32. Needs build/bin/gan-server and ganctl, postgresql.
set -euo pipefail
cd "$(dirname "$0")/.."
replicas=${1:-1} jobs=${2:-12} steps=${3:-100} threads=${4:-2}
work=$(mktemp -d /tmp/gan-replicas-XXXXXX)
pids=()
source bench/pg_cluster.sh
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  pg_cluster_stop "$work"
  rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$work/data"
pg_cluster_start "$work"
url=$PG_URL

ports=()
for ((r = 0; r < replicas; ++r)); do
  build/bin/gan-server --listen 127.0.0.1:0 --metrics_listen= --data_dir "$work/data" \
    --job_store "$url" --replica_id "replica-$r" --threads_per_job "$threads" \
    --max_queued_jobs 1000 >"$work/server-$r.out" 2>"$work/server-$r.log" &
  pids+=($!)
  for _ in $(seq 300); do
    port=$(sed -n 's/.*(port \([0-9]*\)).*/\1/p' "$work/server-$r.out")
    [[ -n $port ]] && break
    sleep 0.1
  done
  [[ -n ${port:-} ]] || { cat "$work/server-$r.log"; echo "replica $r did not start" >&2; exit 1; }
  ports+=("$port")
  port=
done

start=$(date +%s.%N)
ids=()
for ((j = 0; j < jobs; ++j)); do
  ids+=("$(build/bin/ganctl --server "127.0.0.1:${ports[j % replicas]}" submit --preset seed-dcgan \
    --dataset synthetic --steps "$steps" --batch 32 --seed $((j + 1)))")
done
for id in "${ids[@]}"; do
  build/bin/ganctl --server "127.0.0.1:${ports[0]}" watch "$id" >/dev/null
done
end=$(date +%s.%N)
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
python3 -c "import sys; r, j, s, t, a, b, cpu = sys.argv[1:]; sec = float(b) - float(a)
print(f'{r} replica(s), {j} jobs of {s} steps, {t} threads per job: {sec:.1f} s, '
      f'{3600 * int(j) / sec:.0f} jobs/hour ({cpu}, {__import__(\"os\").cpu_count()} CPUs)')" \
  "$replicas" "$jobs" "$steps" "$threads" "$start" "$end" "$cpu"
