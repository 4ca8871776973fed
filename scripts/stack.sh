#!/usr/bin/env bash
# The production stack on one machine: PostgreSQL + Redis, a Celery worker and beat, and two
# ASGI server processes. Ctrl-C stops everything this script started.
set -euo pipefail
cd "$(dirname "$0")/.."

export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/suanwang}"
export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379/0}"
HOST="${HOST:-127.0.0.1}"
PORT="${PORT:-8000}"
WEB_WORKERS="${WEB_WORKERS:-2}"
VENV=.venv

db_name="${DATABASE_URL##*/}"
db_server="${DATABASE_URL%/*}/postgres"
$VENV/bin/python - "$db_server" "$db_name" <<'PY'
import sys

import psycopg

server, name = sys.argv[1], sys.argv[2]
with psycopg.connect(server, autocommit=True) as conn:
    if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
        conn.execute(f'CREATE DATABASE "{name}"')
        print(f"created database {name}")
PY

$VENV/bin/python manage.py migrate --noinput
$VENV/bin/python manage.py seed_demo

mkdir -p var
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

$VENV/bin/celery -A portal worker -l info --concurrency 2 & pids+=($!)
$VENV/bin/celery -A portal beat -l info --schedule var/celerybeat-schedule & pids+=($!)
$VENV/bin/python manage.py run_sites & pids+=($!)
$VENV/bin/uvicorn portal.asgi:application --host "$HOST" --port "$PORT" --workers "$WEB_WORKERS" \
  --ws websockets-sansio --no-access-log & pids+=($!)

echo
echo "  Suanwang production stack: http://$HOST:$PORT/  (PostgreSQL $db_name, Redis, $WEB_WORKERS ASGI workers, simulated centres in run_sites)"
echo
wait -n
