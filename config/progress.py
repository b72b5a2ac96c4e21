"""A dependency-free progress bar for management commands: a redrawn line on a terminal,
plain log lines otherwise (cron, CI, pipes)."""

from __future__ import annotations

import shutil
from datetime import datetime
from typing import TextIO

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from django.utils.dateparse import parse_datetime

WIDTH = 30


class ProgressBar:
    def __init__(self, out: TextIO, *, label: str, total: int, tty: bool) -> None:
        self.out, self.label, self.total, self.tty = out, label, max(total, 0), tty

    def __call__(self, done: int) -> None:
        if not self.tty:
            self.out.write(f"{self.label}: {done}/{self.total}\n")
        else:
            total = max(self.total, done, 1)
            filled = int(WIDTH * done / total)
            line = f"{self.label} [{'#' * filled}{'-' * (WIDTH - filled)}] {done}/{self.total}"
            self.out.write("\r" + line[: shutil.get_terminal_size((80, 20)).columns - 1])
        self.out.flush()

    def close(self) -> None:
        if self.tty:
            self.out.write("\n")
            self.out.flush()


class ReconcileCommand(BaseCommand):
    """``manage.py <job> [--now ISO] [--batch-size N]``: a reconciliation beat job by hand, with a progress bar
    over what is due. A subclass names its ``label``, the ``due(now)`` queryset and the ``job`` function."""

    label = ""

    def due(self, now: datetime):
        raise NotImplementedError

    def job(self, *, now: datetime, size: int, progress) -> dict:
        raise NotImplementedError

    def add_arguments(self, parser):
        parser.add_argument("--now", help="Reconcile as of this ISO time (default: now).")
        parser.add_argument("--batch-size", type=int, default=100)

    def handle(self, *args, now=None, batch_size=100, **options):
        moment = parse_datetime(now) if now else timezone.now()
        if moment is None:
            raise CommandError("--now must be an ISO date-time, e.g. 2026-01-01T10:00:00+08:00")
        bar = ProgressBar(self.stdout, label=self.label, total=self.due(moment).count(), tty=self.stdout.isatty())
        result = self.job(now=moment, size=batch_size, progress=bar)
        bar.close()
        self.stdout.write(" ".join(f"{k}={v}" for k, v in result.items()))
