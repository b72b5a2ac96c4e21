#!/usr/bin/env bash
# Start the whole system in the foreground: sandbox gateways, web (gunicorn), Celery worker and beat.
# Each part is supervised: if it dies (a crash, kill -9) it is named and started again after
# RESTART_DELAY_SECONDS; a part that dies RESTART_GIVE_UP times in a row within a minute of starting
# (a port taken, a broken setting) stops everything with its name. Ctrl-C stops them all. The
# embedded PostgreSQL keeps running (`make stop` stops it).
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
WEB_ADDR=${WEB_ADDR:-127.0.0.1:8000}
SANDBOX_PORT=${SANDBOX_PORT:-8100}
RESTART_DELAY_SECONDS=${RESTART_DELAY_SECONDS:-2}
RESTART_GIVE_UP=${RESTART_GIVE_UP:-5}
mkdir -p var/log

pids=()
stop_all() {
    trap - INT TERM EXIT
    echo "stopping..."
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap stop_all INT TERM EXIT

supervise() {  # name, command...: runs in its own subshell; TERM stops the part and the loop
    local name=$1; shift
    local child=0 quick=0 started rc
    trap 'kill "$child" 2>/dev/null; wait "$child" 2>/dev/null; exit 0' TERM INT
    while true; do
        started=$SECONDS
        "$@" &
        child=$!
        wait "$child"; rc=$?
        if (( SECONDS - started < 60 )); then quick=$((quick + 1)); else quick=1; fi
        if (( quick >= RESTART_GIVE_UP )); then
            echo "$name exited (status $rc) $quick times within a minute of starting: giving up"
            exit 1
        fi
        echo "$name exited (status $rc); starting it again in ${RESTART_DELAY_SECONDS}s"
        sleep "$RESTART_DELAY_SECONDS"
    done
}

start() {  # name, command...
    local name=$1
    supervise "$@" > >(sed -u "s/^/[$name] /") 2>&1 &
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
wait -n "${pids[@]}"  # a part gave up: stop the rest
echo "a part could not be kept running (see its last lines above); stopping the others"
exit 1
