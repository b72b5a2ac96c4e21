"""The embedded PostgreSQL: clear messages instead of tracebacks when it cannot start."""

import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

from django.conf import settings
from django.core.management import call_command

BASE = Path(settings.BASE_DIR)


def test_lock_file_of_another_user_gives_a_clear_message():
    # given a stale lock file in the temp folder that this user cannot use
    tmp_path = Path(tempfile.mkdtemp(prefix="pglock-", dir="/tmp"))
    tmp_path.chmod(0o777)
    lock = tmp_path / ".lockfile"
    lock.write_text("")
    lock.chmod(0o600 if os.geteuid() == 0 else 0o000)  # as root: owned by root, used by "nobody" below
    script = textwrap.dedent(f"""
        import os, sys
        from pathlib import Path
        # import what needs the interpreter's own folders before dropping privileges
        import fasteners, hashlib, json, platformdirs, psutil, psycopg, shutil, socket, subprocess, tempfile
        from config.embedded_pg import EmbeddedPostgresError, ensure_server
        if os.geteuid() == 0:
            os.setgid(65534); os.setuid(65534)  # become "nobody"
        try:
            ensure_server(Path({str(tmp_path / "pg")!r}))
        except EmbeddedPostgresError as exc:
            print("MESSAGE:", exc)
            sys.exit(3)
    """)
    env = {k: v for k, v in os.environ.items() if k != "XDG_RUNTIME_DIR"} | {"TMPDIR": str(tmp_path)}

    try:
        # when the embedded server is asked for
        result = subprocess.run(
            [sys.executable, "-c", script], cwd=BASE, env=env, capture_output=True, text=True, timeout=60
        )

        # then it stops with a sentence that names the file and the fixes, before touching anything
        assert result.returncode == 3, result.stderr
        assert f"lock file {lock}" in result.stdout
        assert "XDG_RUNTIME_DIR" in result.stdout and "DATABASE_URL" in result.stdout
        assert not (tmp_path / "pg").exists()
    finally:
        shutil.rmtree(tmp_path, ignore_errors=True)


def test_manage_py_prints_a_sentence_not_a_traceback(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    env = os.environ | {"EMBEDDED_PG_DIR": str(blocker / "pgdata")}
    env.pop("DATABASE_URL", None)
    result = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--check"],
        cwd=BASE,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("error: The embedded PostgreSQL")
    assert "Traceback" not in result.stderr


def test_no_missing_migrations(db):
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)  # SystemExit(1) if a model changed
