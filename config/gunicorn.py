"""gunicorn settings (``gunicorn -c python:config.gunicorn config.wsgi``): the request metrics of
every worker in one ``/metrics`` answer.

prometheus_client's multiprocess mode: each worker writes its counters and histograms to files in
``PROMETHEUS_MULTIPROC_DIR`` and ``finance.metrics`` sums them at scrape time. The folder is the
checkout's own (``var/prometheus`` by default, never the machine-wide temp folder, so checkouts side by
side never mix); the master empties it when it starts (a restart begins from zero, as Prometheus
expects of counters) and forgets a worker's live gauges when the worker exits.

prometheus_client reads ``PROMETHEUS_MULTIPROC_DIR`` when it is first imported, so it is set here,
in the master, before any worker imports the application. Command-line options still win over this
file's defaults.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

MULTIPROC_DIR = Path(
    os.environ.get("PROMETHEUS_MULTIPROC_DIR") or Path(__file__).resolve().parent.parent / "var" / "prometheus"
)
os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(MULTIPROC_DIR)

# no control socket: its default (~/.gunicorn/gunicorn.ctl) is one per user, shared by every checkout
control_socket_disable = True


def on_starting(server) -> None:
    """Start every run with an empty metrics folder (the files of a previous run are stale)."""
    shutil.rmtree(MULTIPROC_DIR, ignore_errors=True)
    MULTIPROC_DIR.mkdir(parents=True, exist_ok=True)


def child_exit(server, worker) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid, str(MULTIPROC_DIR))
