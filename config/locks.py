"""Short exclusive locks between processes, kept in the cache: Redis with ``REDIS_URL``, else the
database cache.

Money never depends on these: every state change locks its database row (``select_for_update``)
and periodic jobs share work with ``select_for_update(skip_locked=True)``. A cache lock is for
"only one process should do this now" (one bill download per gateway and day, one sweep at a
time), where a rare second run is wasteful but harmless.

``cache.add`` is atomic on Redis (``SET NX PX``) and on the database cache (a primary-key insert).
The lock expires after ``timeout`` seconds even if its holder dies; pick a timeout longer than the
work. Release deletes the key only while it still holds this holder's token. On the database
cache, the lock row is written through the default connection: take it outside
``transaction.atomic()`` blocks, or other processes will not see it until the commit.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Iterator

from django.core.cache import cache

PREFIX = "lock:"


def lock_acquire(name: str, *, timeout: float = 60, wait: float = 0, poll: float = 0.1) -> str | None:
    """Take the lock ``name``; the token to release it with, or ``None`` if it is held elsewhere.

    ``wait`` seconds are spent retrying before giving up (0: one attempt).
    """
    token = secrets.token_hex(16)
    deadline = time.monotonic() + wait
    while True:
        if cache.add(PREFIX + name, token, timeout=timeout):
            return token
        if time.monotonic() >= deadline:
            return None
        time.sleep(poll)


def lock_release(name: str, token: str) -> bool:
    """Release the lock if this token still holds it (after an expiry another holder may have it)."""
    key = PREFIX + name
    if cache.get(key) != token:
        return False
    cache.delete(key)
    return True


@contextlib.contextmanager
def cache_lock(name: str, *, timeout: float = 60, wait: float = 0) -> Iterator[bool]:
    """``with cache_lock("bill:wechat:2026-11-21", timeout=600) as acquired: if acquired: ...``"""
    token = lock_acquire(name, timeout=timeout, wait=wait)
    try:
        yield token is not None
    finally:
        if token is not None:
            lock_release(name, token)
