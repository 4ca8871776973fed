#!/usr/bin/env bash
# Make sure PostgreSQL (127.0.0.1:5432, trust auth for user postgres) and Redis (127.0.0.1:6379)
# run on this machine. Starts them if installed, installs them from Debian's packages if not.
# Idempotent: does nothing when both answer. Needs root only when something must be installed.
set -euo pipefail

pg_up() { (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null; }
redis_up() { (exec 3<>/dev/tcp/127.0.0.1/6379 && printf 'PING\r\n' >&3 && head -c5 <&3 | grep -q PONG) 2>/dev/null; }

apt_install() {
  if ! command -v apt-get >/dev/null; then
    echo "services.sh: $* missing and this is not a Debian/Ubuntu machine; install it yourself." >&2
    exit 1
  fi
  [ -n "${_APT_UPDATED:-}" ] || { apt-get update -qq; _APT_UPDATED=1; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

if ! pg_up; then
  if ! command -v pg_ctlcluster >/dev/null; then
    echo "installing PostgreSQL..."
    apt_install postgresql
  fi
  version=$(ls /etc/postgresql | sort -V | tail -1)
  conf=/etc/postgresql/$version/main
  # Local development/CI database: trust on loopback, as the project's DATABASE_URL expects.
  if ! grep -q "suanwang-trust" "$conf/pg_hba.conf"; then
    sed -i '1i host all all 127.0.0.1/32 trust # suanwang-trust\nhost all all ::1/128 trust # suanwang-trust' \
      "$conf/pg_hba.conf"
  fi
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  for _ in $(seq 50); do pg_up && break; sleep 0.2; done
  pg_up || { echo "PostgreSQL did not start" >&2; exit 1; }
fi
echo "PostgreSQL: up on 127.0.0.1:5432"

if ! redis_up; then
  command -v redis-server >/dev/null || { echo "installing Redis..."; apt_install redis-server; }
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/suanwang.log
  for _ in $(seq 50); do redis_up && break; sleep 0.1; done
  redis_up || { echo "Redis did not start" >&2; exit 1; }
fi
echo "Redis: up on 127.0.0.1:6379"
