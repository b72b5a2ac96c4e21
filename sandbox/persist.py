"""The sandbox's memory on disk: a small SQLite database of its own (`state.sqlite3` in the data folder).

A real gateway never forgets, so neither does the sandbox: trades, refunds, bill files, notification
deliveries (with their retry schedule), the id sequences and the fault plan are written through on every
change (WAL, one statement per change), and read back when the process starts. A restart, even a
`kill -9`, is then a fault a test injects, not a loss of data. Standard library only.

One process per data folder: the database is held with an exclusive `flock` (released by the OS when the
process dies), and a second sandbox on the same folder refuses to start.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

FILENAME = "state.sqlite3"
SCHEMA = (
    "CREATE TABLE IF NOT EXISTS records (kind TEXT NOT NULL, key TEXT NOT NULL, data TEXT NOT NULL, "
    "PRIMARY KEY (kind, key))",
    "CREATE TABLE IF NOT EXISTS blobs (token TEXT PRIMARY KEY, content_type TEXT NOT NULL, data BLOB NOT NULL)",
)


class DataDirInUse(RuntimeError):
    pass


class Persist:
    """Write-through key/value records (JSON) and blobs. Thread-safe; every call is one committed statement."""

    def __init__(self, data_dir: Path) -> None:
        data_dir = Path(data_dir)
        data_dir.mkdir(parents=True, exist_ok=True)
        self._lock_file = open(data_dir / (FILENAME + ".lock"), "a+")  # noqa: SIM115 - held for the process's life
        try:
            fcntl.flock(self._lock_file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock_file.close()
            raise DataDirInUse(f"another sandbox is running on {data_dir}") from None
        self.path = data_dir / FILENAME
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")  # survives a killed process; only an OS crash loses the tail
        for statement in SCHEMA:
            self._conn.execute(statement)
        os.chmod(self.path, 0o600)

    # ------------------------------------------------------------------ records
    def put(self, kind: str, key: str, data: dict[str, Any]) -> None:
        text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
        with self._lock:
            self._conn.execute("INSERT OR REPLACE INTO records (kind, key, data) VALUES (?, ?, ?)", (kind, key, text))

    def delete(self, kind: str, key: str) -> None:
        with self._lock:
            self._conn.execute("DELETE FROM records WHERE kind = ? AND key = ?", (kind, key))

    def get(self, kind: str, key: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._conn.execute("SELECT data FROM records WHERE kind = ? AND key = ?", (kind, key)).fetchone()
        return json.loads(row[0]) if row else None

    def all(self, kind: str) -> Iterator[tuple[str, dict[str, Any]]]:
        with self._lock:
            rows = self._conn.execute("SELECT key, data FROM records WHERE kind = ? ORDER BY rowid", (kind,)).fetchall()
        for key, text in rows:
            yield key, json.loads(text)

    # ------------------------------------------------------------------ blobs
    def put_blob(self, token: str, content_type: str, data: bytes) -> None:
        with self._lock:
            self._conn.execute(
                "INSERT OR REPLACE INTO blobs (token, content_type, data) VALUES (?, ?, ?)", (token, content_type, data)
            )

    def get_blob(self, token: str) -> tuple[str, bytes] | None:
        with self._lock:
            row = self._conn.execute("SELECT content_type, data FROM blobs WHERE token = ?", (token,)).fetchone()
        return (row[0], bytes(row[1])) if row else None

    # ------------------------------------------------------------------ everything
    def clear(self, *kinds: str) -> None:
        """Forget the records of `kinds` (all records and blobs when none are named)."""
        with self._lock:
            if kinds:
                self._conn.executemany("DELETE FROM records WHERE kind = ?", [(k,) for k in kinds])
            else:
                self._conn.execute("DELETE FROM records")
                self._conn.execute("DELETE FROM blobs")

    def close(self) -> None:
        with self._lock:
            self._conn.close()
        self._lock_file.close()
