#!/usr/bin/env bash
# Programs the test suite uses when they exist: a redis-server binary for config/tests/test_redis.py
# (the test starts its own throwaway server on a free port; without the binary it skips), and promtool
# (Debian's prometheus package) for config/tests/test_monitoring.py (checks deploy/prometheus/alerts.yml).
# Installs with apt-get when running as root on a Debian/Ubuntu machine; otherwise says what to do.
set -euo pipefail

if command -v promtool >/dev/null 2>&1; then
    echo "ci-services: $(promtool --version 2>&1 | head -n 1)"
elif [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "ci-services: installing prometheus (for promtool) with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends prometheus >/dev/null
    # the package may start a Prometheus service on :9090; the tests only run promtool, so stop it
    if command -v service >/dev/null 2>&1; then service prometheus stop >/dev/null 2>&1 || true; fi
    echo "ci-services: $(promtool --version 2>&1 | head -n 1)"
else
    echo "ci-services: promtool is missing and this is not root with apt-get;" \
        "install it (apt-get install prometheus) or the alert rule checks are skipped" >&2
fi

if command -v redis-server >/dev/null 2>&1; then
    echo "ci-services: $(redis-server --version | head -n 1)"
    exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "ci-services: installing redis-server with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends redis-server >/dev/null
    # the package may start a system service on :6379; the tests start their own server, so stop it
    if command -v service >/dev/null 2>&1; then service redis-server stop >/dev/null 2>&1 || true; fi
    echo "ci-services: $(redis-server --version | head -n 1)"
else
    echo "ci-services: redis-server is missing and this is not root with apt-get;" \
        "install it (apt-get install redis-server) or the Redis test is skipped" >&2
fi
