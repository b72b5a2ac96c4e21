#!/usr/bin/env bash
# Start the whole system in the foreground: sandbox gateways, web (gunicorn), Celery worker and beat.
# Ctrl-C stops them all. The embedded PostgreSQL keeps running (`make stop` stops it).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
WEB_ADDR=${WEB_ADDR:-127.0.0.1:8000}
SANDBOX_PORT=${SANDBOX_PORT:-8100}
mkdir -p var/log

pids=()
stop_all() {
    trap - INT TERM EXIT
    echo "stopping..."
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap stop_all INT TERM EXIT

start() {  # name, command...
    local name=$1; shift
    "$@" > >(sed -u "s/^/[$name] /") 2>&1 &
    pids+=($!)
}

if [ "${SANDBOX_ENABLED:-true}" != "false" ] && [ -f sandbox/__main__.py ]; then
    start sandbox "$BIN/python" -m sandbox --host 127.0.0.1 --port "$SANDBOX_PORT" --data-dir var/sandbox
fi
start web "$BIN/gunicorn" -c python:config.gunicorn config.wsgi --bind "$WEB_ADDR" --workers "${WEB_WORKERS:-2}" --threads 4 \
    --access-logfile - --timeout 30
start worker "$BIN/celery" -A config worker --loglevel INFO --concurrency "${WORKER_CONCURRENCY:-2}"
start beat "$BIN/celery" -A config beat --loglevel INFO \
    --scheduler django_celery_beat.schedulers:DatabaseScheduler --pidfile var/celerybeat.pid

echo "web on http://$WEB_ADDR/  (admin: /admin/, API docs: /api/docs/)  sandbox on http://127.0.0.1:$SANDBOX_PORT/"
wait -n "${pids[@]}"  # if any of them dies, stop the rest
echo "a process exited; stopping the others"
