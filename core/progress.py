"""Progress of the management commands: tqdm's bar on a terminal (rate, elapsed time, ETA, redrawn in
place to the terminal's width), plain log lines otherwise (cron, CI, pipes)."""

from __future__ import annotations

import sys
from datetime import datetime
from typing import TextIO

from django.core.management.base import BaseCommand, CommandError, OutputWrapper
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from tqdm import tqdm


def terminal(out: OutputWrapper | TextIO) -> tuple[TextIO, bool]:
    """The stream under a command's ``self.stdout`` (tqdm redraws with ``\\r``, which Django's wrapper would
    end with a newline) and whether it is a terminal."""
    stream = getattr(out, "_out", out) or sys.stdout
    return stream, bool(getattr(stream, "isatty", lambda: False)())


class Bars:
    """One tqdm bar per step (``key``) on a terminal, each kept on its own line when the next begins."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.key: str | None = None
        self.bar: tqdm | None = None

    def show(self, key: str, done: int, total: int) -> None:
        if key != self.key:
            self.close()
            self.key = key
            self.bar = tqdm(desc=key, total=total, file=self.out, ascii=True, dynamic_ncols=True, mininterval=0.1)
        assert self.bar is not None
        if self.bar.total != total:
            self.bar.total = total
        self.bar.n = done  # absolute counts: the jobs report how far they are, not how much they added
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        self.bar, self.key = None, None


class ProgressBar:
    """``progress(done)`` for a job of ``total`` items: a bar on a terminal, ``label: done/total`` lines
    otherwise."""

    def __init__(self, out: TextIO, *, label: str, total: int, tty: bool) -> None:
        self.out, self.label, self.total, self.tty = out, label, max(total, 0), tty
        self.bars = Bars(out)

    def __call__(self, done: int) -> None:
        if self.tty:
            self.bars.show(self.label, done, max(self.total, done))
        else:
            self.out.write(f"{self.label}: {done}/{self.total}\n")
            self.out.flush()

    def close(self) -> None:
        self.bars.close()


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
        out, tty = terminal(self.stdout)
        bar = ProgressBar(out, label=self.label, total=self.due(moment).count(), tty=tty)
        try:
            result = self.job(now=moment, size=batch_size, progress=bar)
        finally:
            bar.close()
        self.stdout.write(" ".join(f"{k}={v}" for k, v in result.items()))
