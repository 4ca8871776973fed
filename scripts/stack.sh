#!/usr/bin/env bash
# The production stack on one machine: PostgreSQL + Redis, a Celery worker and beat, two ASGI server
# processes (portal, websockets) and two WSGI ones (the REST API on API_PORT, default PORT + 1).
# Ctrl-C stops everything this script started.
set -euo pipefail
cd "$(dirname "$0")/.."

export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/suanwang}"
export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379/0}"
HOST="${HOST:-127.0.0.1}"
PORT="${PORT:-8000}"
WEB_WORKERS="${WEB_WORKERS:-2}"
API_PORT="${API_PORT:-$((PORT + 1))}"
API_WORKERS="${API_WORKERS:-$WEB_WORKERS}"
API_THREADS="${API_THREADS:-4}"
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
# No permessage-deflate: it would compress every delta once per connection (docs/websockets.md).
$VENV/bin/uvicorn portal.asgi:application --host "$HOST" --port "$PORT" --workers "$WEB_WORKERS" \
  --ws websockets-sansio --ws-per-message-deflate false --no-access-log & pids+=($!)
# The REST API for institutions' systems under a WSGI server, which measures faster for it than the ASGI
# one (bench/api_submit.py: less server CPU per request; see README). The portal, its websockets and the
# browser's own /api calls stay on uvicorn above.
$VENV/bin/gunicorn portal.wsgi:application --bind "$HOST:$API_PORT" --workers "$API_WORKERS" \
  --worker-class gthread --threads "$API_THREADS" --log-level warning & pids+=($!)

echo
echo "  Suanwang production stack: http://$HOST:$PORT/  (PostgreSQL $db_name, Redis, $WEB_WORKERS ASGI workers, simulated centres in run_sites)"
echo "  REST API for institutions' systems: http://$HOST:$API_PORT/api/v1/  ($API_WORKERS gunicorn workers x $API_THREADS threads)"
echo
wait -n
