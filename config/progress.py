"""A dependency-free progress bar for management commands: a redrawn line on a terminal,
plain log lines otherwise (cron, CI, pipes)."""

from __future__ import annotations

import shutil
from typing import TextIO

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
