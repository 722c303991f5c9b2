#!/usr/bin/env bash
# Builds the gan-server container image and proves the runtime image works.
#
# Usage: scripts/build_image.sh [--tag gan-server:dev] [--no-proof | --proof-only] [-- build args...]
#
# With a running Docker engine (`docker info` succeeds) it uses `docker build` and proves the image
# with `docker run`. Otherwise it uses podman as docs/development.md describes: installs podman and
# debootstrap when missing, makes docker.io/library/debian:bookworm-slim locally with debootstrap
# when no such image exists (no registry is reachable), builds with chroot isolation and
# --format docker (OCI would drop HEALTHCHECK), and, since `podman run` does not work there, mounts
# the image and runs its own gan-server and ganctl through chroot on the host loopback:
# health, a tiny training job, a sample PNG, Score calls (the image's ganctl and the host's
# build/bin/ganctl when present), /metrics when the server has --metrics_listen.
# Prints the build time and the runtime image size. Needs root on the podman path.
set -euo pipefail

tag=gan-server:dev
proof=1
build=1
extra_args=()
while (($#)); do
  case "$1" in
    --tag) tag=$2; shift 2 ;;
    --no-proof) proof=0; shift ;;
    --proof-only) build=0; shift ;;
    --) shift; extra_args=("$@"); break ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "build_image: unknown argument $1" >&2; exit 2 ;;
  esac
done

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
base=docker.io/library/debian:bookworm-slim
log() { echo "build_image: $*" >&2; }

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null \
    || echo $((20000 + RANDOM % 20000))
}

if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
  engine=docker
else
  engine=podman
fi
log "engine: $engine"

start=$(date +%s)
if ((build == 0)); then
  size=$("$engine" image inspect --format '{{.Size}}' "$tag")
elif [[ $engine == docker ]]; then
  docker build -t "$tag" "${extra_args[@]}" .
  size=$(docker image inspect --format '{{.Size}}' "$tag")
else
  if [[ $(id -u) -ne 0 ]]; then log "the podman path needs root (chroot, mounts)"; exit 1; fi
  if ! command -v podman >/dev/null || ! command -v debootstrap >/dev/null; then
    log "installing podman debootstrap"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o DPkg::Lock::Timeout=600 podman debootstrap
  fi
  if ! podman image exists "$base"; then
    mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
    mirror=${mirror:-http://deb.debian.org/debian}
    rootfs=$(mktemp -d /tmp/gan-rootfs.XXXXXX)
    log "making $base with debootstrap from $mirror (a few minutes)"
    debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >/tmp/gan-debootstrap.log 2>&1 \
      || { tail -20 /tmp/gan-debootstrap.log >&2; exit 1; }
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    tar -C "$rootfs" -c . | podman import - "$base"
    rm -rf "$rootfs"
  fi
  podman build --format docker --isolation=chroot --cgroup-manager=cgroupfs -t "$tag" \
    "${extra_args[@]}" .
  size=$(podman image inspect --format '{{.Size}}' "$tag")
fi
end=$(date +%s)
build_seconds=$((end - start))
log "build time: ${build_seconds}s"
log "runtime image size: ${size} bytes ($((size / 1024 / 1024)) MiB)"

if ((proof == 0)); then exit 0; fi

host_ganctl=""
if [[ -x "$repo/build/bin/ganctl" ]]; then host_ganctl="$repo/build/bin/ganctl"; fi
port=$(free_port)
mport=$(free_port)
work=$(mktemp -d /tmp/gan-proof.XXXXXX)
server_pid=""
img=()
in_image() { "${img[@]}" "$@"; }
# The image runs as it is deployed: TLS and bearer tokens from mounted secrets.
bash "$repo/scripts/make_secrets.sh" "$work/secrets" localhost 127.0.0.1 >/dev/null
chown -R 10001:10001 "$work/secrets"
secrets_in_image=/run/secrets/gan
token=$(cat "$work/secrets/token.admin")

if [[ $engine == docker ]]; then
  cid=$(docker run -d -p "127.0.0.1:$port:50051" -p "127.0.0.1:$mport:9464" \
    -v "$work/secrets:$secrets_in_image:ro" "$tag")
  cleanup() { docker rm -f "$cid" >/dev/null 2>&1 || true; rm -rf "$work"; }
  trap cleanup EXIT
  img=(docker exec "$cid")
  copy_in() { docker cp "$1" "$cid:$2"; }
  image_addr=localhost:50051
  data_in_image=/var/lib/gan
  copy_out() { docker cp "$cid:$1" "$2"; }
else
  mnt=$(podman image mount "$tag")
  log "image mounted at $mnt"
  mounts=()
  cleanup() {
    set +e
    if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then
      kill -TERM "$server_pid"
      for _ in $(seq 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.2; done
      kill -KILL "$server_pid" 2>/dev/null
      wait "$server_pid" 2>/dev/null
    fi
    for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do umount "${mounts[i]}"; done
    podman image unmount "$tag" >/dev/null
    rm -rf "$work"
  }
  trap cleanup EXIT
  # The image's file system may be read-only: the data dir is a host temp dir bind-mounted over
  # /var/lib/gan, /proc and /dev come from the host.
  mkdir -p "$work/data"
  chown 10001:10001 "$work/data"
  mount --bind "$work/data" "$mnt/var/lib/gan"; mounts+=("$mnt/var/lib/gan")
  mount -t proc proc "$mnt/proc"; mounts+=("$mnt/proc")
  mount --bind /dev "$mnt/dev"; mounts+=("$mnt/dev")
  # /run exists in the image; the secrets go over it, at the path the Dockerfile's CMD uses.
  mkdir -p "$work/run/secrets/gan"
  cp -a "$work/secrets/." "$work/run/secrets/gan/"
  mount --bind "$work/run" "$mnt/run"; mounts+=("$mnt/run")
  img=(chroot --userspec=10001:10001 "$mnt")
  copy_in() { install -o 10001 -g 10001 -m 0644 "$1" "$mnt$2"; }
  image_addr=localhost:$port
  data_in_image=/var/lib/gan
  copy_out() { cp "$mnt$1" "$2"; }
  server_args=(--listen "127.0.0.1:$port" --data_dir /var/lib/gan
               --tls_cert "$secrets_in_image/server.pem" --tls_key "$secrets_in_image/server.key"
               --auth_tokens "$secrets_in_image/tokens")
  server_help=$(in_image /usr/local/bin/gan-server --help 2>&1 || true)
  if [[ $server_help == *--metrics_listen* ]]; then
    server_args+=(--metrics_listen "127.0.0.1:$mport")
  else
    mport=""
    log "this gan-server has no --metrics_listen: /metrics not checked"
  fi
  log "starting the image's gan-server (uid 10001) on 127.0.0.1:$port"
  "${img[@]}" /usr/local/bin/gan-server "${server_args[@]}" >"$work/server.log" 2>&1 &  # no function: $! must be the server
  server_pid=$!
fi

ganctl_img() {
  in_image env GAN_TOKEN="$token" /usr/local/bin/ganctl --server "$image_addr" \
    --tls_ca "$secrets_in_image/ca.pem" --deadline_seconds 10 "$@"
}

ok=0
for _ in $(seq 60); do
  if in_image /usr/local/bin/ganctl --server "$image_addr" --tls_ca "$secrets_in_image/ca.pem" \
      --deadline_seconds 3 health >/dev/null 2>&1; then
    ok=1; break
  fi
  sleep 0.5
done
if ((ok == 0)); then
  log "FAIL: health never became SERVING"
  cat "$work/server.log" >&2 2>/dev/null || true
  exit 1
fi
echo "health (image ganctl, TLS): $(ganctl_img health 2>&1) exit=0"
if in_image /usr/local/bin/ganctl --server "$image_addr" --tls_ca "$secrets_in_image/ca.pem" \
    --deadline_seconds 5 list >/dev/null 2>&1; then
  log "FAIL: a call without a token was accepted"; exit 1
fi
echo "a call without a token is refused (UNAUTHENTICATED)"

job=$(ganctl_img submit --preset seed-dcgan --batch 8 --steps 2 --dataset synthetic)
echo "submitted job: $job"
if ! timeout 180 "${img[@]}" env GAN_TOKEN="$token" /usr/local/bin/ganctl --server "$image_addr" \
    --tls_ca "$secrets_in_image/ca.pem" watch "$job" >"$work/watch.log" 2>&1; then
  log "FAIL: job $job did not succeed"; cat "$work/watch.log" >&2; exit 1
fi
echo "job: $(ganctl_img get "$job" | tr '\n' ' ')"

ganctl_img sample "$job" --count 4 --out "$data_in_image/proof-samples.png" >/dev/null
echo "score (image ganctl, PNG in the image's data dir):"
ganctl_img score "$job" "$data_in_image/proof-samples.png"
# A 3-image IDX file (rows of a gradient) written on the host and read by the image's ganctl.
python3 -c '
import struct, sys
n, h, w = 3, 28, 28
body = bytes((i * 9 + r * 3 + c) % 256 for i in range(n) for r in range(h) for c in range(w))
sys.stdout.buffer.write(struct.pack(">IIII", 0x803, n, h, w) + body)' >"$work/proof.idx"
copy_in "$work/proof.idx" "$data_in_image/proof.idx"
echo "score (image ganctl, IDX):"
ganctl_img score "$job" "$data_in_image/proof.idx"
if [[ -n $host_ganctl ]]; then
  copy_out "$data_in_image/proof-samples.png" "$work/host-samples.png"
  echo "score (host build/bin/ganctl, same PNG from the host):"
  GAN_TOKEN="$token" "$host_ganctl" --server "localhost:$port" --tls_ca "$work/secrets/ca.pem" \
    --deadline_seconds 10 score "$job" "$work/host-samples.png"
fi

if [[ -n $mport ]]; then
  if curl -fsS "http://127.0.0.1:$mport/metrics" >"$work/metrics.txt"; then
    echo "metrics: $(grep -c '^gan_\|^grpc_server_\|^process_' "$work/metrics.txt") samples of gan_/grpc_server_/process_ on :$mport/metrics"
    grep -E '^(gan_jobs_submitted_total|gan_train_steps_total|gan_score_images_total|process_resident_memory_bytes)' "$work/metrics.txt" || true
  else
    log "WARN: GET /metrics on 127.0.0.1:$mport failed"
  fi
fi

echo "PROOF OK: engine=$engine tag=$tag build_seconds=$build_seconds size_bytes=$size"
