"""core.db.prepared_cursor: hot statements are prepared on the server after psycopg's prepare_threshold (5) runs
per connection, so PostgreSQL stops parsing and planning them (the notification path runs through it)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

from core.db import prepared_cursor

HOT = "SELECT %s::bigint + 1 AS prepared_cursor_probe"


def _prepared_on_the_server() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT statement FROM pg_prepared_statements WHERE statement LIKE %s", ["%prepared_cursor_probe%"]
        )
        return [row[0] for row in cursor.fetchall()]


@pytest.mark.django_db
def test_a_statement_run_again_is_prepared_once_and_answers_the_same():
    answers = []
    for value in range(8):
        with prepared_cursor() as cursor:
            cursor.execute(HOT, [value])
            answers.append(cursor.fetchone()[0])
        if value == 3:
            assert _prepared_on_the_server() == []  # 4 runs: below the threshold

    assert answers == [value + 1 for value in range(8)]
    assert _prepared_on_the_server() == ["SELECT $1::bigint + 1 AS prepared_cursor_probe"]


@pytest.mark.parametrize(("value", "threshold"), [("", "5"), ("false", "None"), ("true", "5")])
def test_prepared_statements_can_be_turned_off_for_a_pooler(value, threshold):
    env = {k: v for k, v in os.environ.items() if k != "DB_PREPARED_STATEMENTS"}
    if value:
        env["DB_PREPARED_STATEMENTS"] = value
    settings = subprocess.run(
        [
            sys.executable,
            "-c",
            "from config import settings; print(settings.DATABASES['default']['OPTIONS']['prepare_threshold'])",
        ],
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert settings.stdout.strip() == threshold
