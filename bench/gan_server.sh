# Sourced by the bench/ scripts that start one gan-server (build/bin, Release) of their own:
#   gan_server_start DIR [FLAGS...]   starts it on free loopback ports with --data_dir DIR/data,
#                                     the synthetic default dataset and FLAGS; waits for its
#                                     readiness lines; sets GAN_PID, GAN_PORT and (when metrics
#                                     are served) GAN_METRICS_PORT. Its log is DIR/server.log.
#   gan_server_stop                   SIGTERM and wait (safe to call when none runs).
GAN_PID=
gan_server_start() {
  local dir=$1
  shift
  mkdir -p "$dir/data"
  build/bin/gan-server --listen 127.0.0.1:0 --data_dir "$dir/data" --default_dataset synthetic \
    "$@" >"$dir/server.out" 2>>"$dir/server.log" &
  GAN_PID=$!
  GAN_PORT= GAN_METRICS_PORT=
  local metrics=1 arg
  for arg in "$@"; do [[ $arg == "--metrics_listen=" ]] && metrics=0; done
  for _ in $(seq 300); do
    GAN_PORT=$(sed -n 's/.*(port \([0-9]*\)).*/\1/p' "$dir/server.out")
    GAN_METRICS_PORT=$(sed -n 's/.*(metrics port \([0-9]*\)).*/\1/p' "$dir/server.out")
    [[ -n $GAN_PORT && ($metrics == 0 || -n $GAN_METRICS_PORT) ]] && break
    sleep 0.1
  done
  [[ -n $GAN_PORT ]] || { cat "$dir/server.log"; echo "gan-server did not start" >&2; return 1; }
}
gan_server_stop() {
  if [[ -n $GAN_PID ]]; then kill -TERM "$GAN_PID" 2>/dev/null || true; wait "$GAN_PID" || true; fi
  GAN_PID=
}
