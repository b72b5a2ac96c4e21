"""Database helpers for hot paths.

``prepared_cursor()``: Django's PostgreSQL cursors bind parameters on the client (the SQL text is sent with
its values in it, parsed and planned by the server every time). A hot statement run through this cursor is
bound on the server (psycopg 3's extended protocol), and psycopg prepares it once the connection has run it
``prepare_threshold`` times (5, set in ``DATABASES["default"]["OPTIONS"]`` by config/settings.py: Django
sets None when OPTIONS do not say): from then on the server skips parsing and planning it. For raw SQL
whose text does not change with its values (the notification path); the ORM keeps Django's cursors. Behind
a pooler in transaction mode (PgBouncer before 1.21) prepared statements must be off:
``DB_PREPARED_STATEMENTS=false`` sets ``prepare_threshold`` None; the binding stays.
"""

from __future__ import annotations

import psycopg
from django.db import connection
from django.db.backends.postgresql.psycopg_any import register_tzloader


def prepared_cursor():
    """A cursor of the default connection that binds on the server, wrapped like Django's own (query logging,
    ``execute_wrapper``s, database errors as Django's). Use it as a context manager."""
    with connection.wrap_database_errors:
        connection.close_if_health_check_failed()
        connection.ensure_connection()
    cursor = psycopg.Cursor(connection.connection)
    tz_loader = connection.connection.adapters.get_loader(
        psycopg.adapters.types["timestamptz"].oid, psycopg.pq.Format.TEXT
    )
    if connection.timezone != tz_loader.timezone:
        register_tzloader(connection.timezone, cursor)
    return connection._prepare_cursor(cursor)
