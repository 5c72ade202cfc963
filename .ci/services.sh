#!/usr/bin/env bash
# Make sure PostgreSQL and Redis answer on 127.0.0.1 (5432, 6379); install and start them if they do not.
# Installs Debian's `postgresql` and `redis-server` only when their programs are missing, creates a cluster only when
# there is none, and never touches an existing server's data. Every wait is bounded.
set -euo pipefail

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

apt_install() {
  echo "installing Debian packages: $*"
  as_root apt-get update -q
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@"
}

wait_for() {  # wait_for <seconds> <command...>
  local seconds=$1; shift
  for _ in $(seq 1 "$seconds"); do "$@" >/dev/null 2>&1 && return 0; sleep 1; done
  "$@"
}

# --- PostgreSQL --------------------------------------------------------------------------------------------------
pg_ready() { pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; }

if ! pg_ready; then
  if ! command -v pg_ctlcluster >/dev/null 2>&1 || ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
    apt_install postgresql postgresql-contrib
  fi
  version=$(ls /usr/lib/postgresql | sort -V | tail -1)
  if [ -z "$(ls /etc/postgresql 2>/dev/null)" ]; then
    # No cluster at all: make one that the test suite can use (trust on loopback, as on the development machines).
    echo "creating PostgreSQL cluster $version/main"
    as_root pg_createcluster "$version" main -- --auth-local=trust --auth-host=trust
  fi
  cluster_version=$(ls /etc/postgresql | sort -V | tail -1)
  echo "starting PostgreSQL $cluster_version/main"
  as_root pg_ctlcluster --skip-systemctl-redirect "$cluster_version" main start || true
fi
wait_for 30 pg_ready
pg_isready -h 127.0.0.1 -p 5432

# --- Redis -------------------------------------------------------------------------------------------------------
redis_ready() { redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; }

if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
  redis_ready || apt_install redis-server
fi
if ! redis_ready; then
  echo "starting Redis"
  as_root mkdir -p /var/lib/redis /var/log/redis
  as_root redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
fi
wait_for 30 redis_ready
redis-cli -h 127.0.0.1 -p 6379 ping
