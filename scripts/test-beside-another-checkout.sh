#!/usr/bin/env bash
# Proves that `make test` passes while another checkout's `make run` is up on the same machine,
# as this user and (when run as root) as a normal user in a checkout of their own:
#
#   1. clones HEAD into a temp folder and starts its `make run` (embedded PostgreSQL, seed data,
#      web + worker + beat + sandbox) on free ports, sharing this checkout's .venv;
#   2. runs `make test` here (the working tree), beside it;
#   3. as root: creates the user $TEST_USER (default locker-ci) if needed, clones HEAD into its
#      home, and runs `make test` there as that user: a fresh clone, its own .venv and var/;
#   4. checks the other checkout still answers, then stops it and removes its folder.
#
# .ci/run calls it; run it yourself with `bash scripts/test-beside-another-checkout.sh`.
# The clones are of HEAD: commit first to test uncommitted changes in them.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
TEST_USER=${TEST_USER:-locker-ci}
PYTHON=${PYTHON:-python3}

make install >/dev/null
free_port() { "$ROOT/.venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
answers() {  # url: 0 when it answers 200 within 90 s
    "$ROOT/.venv/bin/python" - "$1" <<'EOF'
import sys, time, urllib.request
deadline = time.monotonic() + 90
while True:
    try:
        with urllib.request.urlopen(sys.argv[1], timeout=5) as response:
            if response.status == 200:
                sys.exit(0)
    except OSError:
        pass
    if time.monotonic() > deadline:
        sys.exit(f"{sys.argv[1]} did not answer in 90 s")
    time.sleep(1)
EOF
}

# --- 1. another checkout's `make run` ---------------------------------------------------------
workdir=$(mktemp -d)
other="$workdir/other-checkout"
git clone --quiet --no-hardlinks "$ROOT" "$other"
ln -s "$ROOT/.venv" "$other/.venv"
web_port=$(free_port)
sandbox_port=$(free_port)
other_pid=
stop_other() {
    if [ -n "$other_pid" ]; then
        kill "$other_pid" 2>/dev/null || true  # run-all.sh stops its web, worker, beat and sandbox
        wait "$other_pid" 2>/dev/null || true
        other_pid=
    fi
    (cd "$other" && .venv/bin/python -m core.embedded_pg stop >/dev/null 2>&1) || true
    rm -rf "$workdir"
}
trap stop_other EXIT
echo "beside: starting another checkout's \`make run\` in $other (web :$web_port, sandbox :$sandbox_port)"
(
    cd "$other"
    export WEB_ADDR="127.0.0.1:$web_port" SANDBOX_PORT="$sandbox_port" SANDBOX_BASE_URL="http://127.0.0.1:$sandbox_port"
    # the steps of `make run` (its `install` step is this checkout's .venv)
    .venv/bin/python manage.py migrate --noinput >"$workdir/other.log" 2>&1
    .venv/bin/python manage.py seed_demo >>"$workdir/other.log" 2>&1
    exec ./scripts/run-all.sh >>"$workdir/other.log" 2>&1
) &
other_pid=$!
answers "http://127.0.0.1:$web_port/healthz" || { tail -n 40 "$workdir/other.log"; exit 1; }
echo "beside: the other checkout answers on http://127.0.0.1:$web_port/"

# --- 2. `make test` here, as this user ----------------------------------------------------------
echo "beside: make test in $ROOT as $(id -un)"
make test

# --- 3. as root: `make test` as a normal user, in a fresh clone of theirs -----------------------
if [ "$(id -u)" = 0 ]; then
    if ! id "$TEST_USER" >/dev/null 2>&1; then
        useradd --create-home --shell /bin/bash "$TEST_USER"
    fi
    home=$(getent passwd "$TEST_USER" | cut -d: -f6)
    theirs="$home/locker-payments-$$"
    git clone --quiet --no-hardlinks "$ROOT" "$theirs"
    chown -R "$TEST_USER:" "$theirs"
    echo "beside: make test in $theirs as $TEST_USER (its own .venv, made with its own $PYTHON)"
    status=0
    runuser -u "$TEST_USER" -- env -i HOME="$home" USER="$TEST_USER" LANG=C.UTF-8 \
        PATH=/usr/local/bin:/usr/bin:/bin TEST_FAIL_ON_SKIP="${TEST_FAIL_ON_SKIP:-}" \
        make -C "$theirs" test PYTHON="$PYTHON" || status=$?
    (cd "$theirs" && runuser -u "$TEST_USER" -- .venv/bin/python -m core.embedded_pg stop >/dev/null 2>&1) || true
    rm -rf "$theirs"
    [ "$status" = 0 ] || { echo "beside: make test as $TEST_USER failed" >&2; exit "$status"; }
fi

# --- 4. the other checkout was not disturbed ----------------------------------------------------
answers "http://127.0.0.1:$web_port/healthz" || { tail -n 40 "$workdir/other.log"; exit 1; }
echo "beside: the other checkout still answers; stopping it"
