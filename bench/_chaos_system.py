"""The system under chaos, started the way ``make run`` starts it: the sandbox gateways, gunicorn, a Celery worker
and Celery beat, each its own process (group) that the chaos can kill and start again."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from bench._common import REPO_ROOT, Gunicorn, children_of


class Process:
    """One long-running command in its own process group (``start_new_session``), its output in a log file."""

    def __init__(self, name: str, argv: list[str], *, env: dict[str, str], log_path: Path) -> None:
        self.name, self.argv, self.env, self.log_path = name, argv, env, log_path
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.argv, cwd=REPO_ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    def kill(self) -> None:
        """``kill -9`` of the whole group (a Celery worker and its pool processes die together)."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.kill()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def celery_worker(env: dict[str, str], tmp: Path, *, concurrency: int) -> Process:
    argv = [sys.executable, "-m", "celery", "-A", "config", "worker", "--loglevel", "WARNING"]
    argv += ["--concurrency", str(concurrency), "--hostname", f"chaos-{os.getpid()}@%h"]
    return Process("worker", argv, env=env, log_path=tmp / "worker.log")


def celery_beat(env: dict[str, str], tmp: Path) -> Process:
    argv = [sys.executable, "-m", "celery", "-A", "config", "beat", "--loglevel", "WARNING"]
    argv += ["--scheduler", "django_celery_beat.schedulers:DatabaseScheduler", "--pidfile", str(tmp / "beat.pid")]
    return Process("beat", argv, env=env, log_path=tmp / "beat.log")


def kill_a_gunicorn_worker(gunicorn: Gunicorn, pick) -> int | None:
    """``kill -9`` one gunicorn worker (the master starts another): requests in flight on it are lost."""
    workers = children_of(gunicorn.proc.pid) if gunicorn.proc else []
    if not workers:
        return None
    victim = pick(sorted(workers))
    with contextlib.suppress(ProcessLookupError):
        os.kill(victim, signal.SIGKILL)
    return victim


def wait_gunicorn_workers(gunicorn: Gunicorn, count: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and gunicorn.proc and len(children_of(gunicorn.proc.pid)) < count:
        time.sleep(0.2)
