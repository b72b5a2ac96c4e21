"""Shared fixtures for gateway adapter tests: published test vectors (see vectors/README.md)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from core.errors import DomainError

from .stub_http import StubRequest, StubResponse, stub_server

VECTORS = Path(__file__).resolve().parent / "vectors"


def vector_text(name: str) -> str:
    return (VECTORS / name).read_text(encoding="utf-8")


def vector_json(name: str) -> Any:
    return json.loads(vector_text(name))


@pytest.fixture
def vectors() -> Path:
    return VECTORS


# --------------------------------------------------------------------------- sandbox end-to-end support


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One sandbox process for the session (sandbox/testing.py), notifications retried fast."""
    testing = pytest.importorskip("sandbox.testing")
    with testing.running_sandbox(data_dir=tmp_path_factory.mktemp("sandbox-data"), notify_scale=0.01) as handle:
        yield handle


@dataclass
class Receiver:
    """Our notify endpoint: parses each delivery with the adapter and answers with its reply."""

    url: str
    gateway: Any = None
    parsed: list[Any] = field(default_factory=list)  # Notification or the DomainError raised

    def wait(self, count: int = 1, timeout: float = 10.0) -> list[Any]:
        deadline = time.monotonic() + timeout
        while len(self.parsed) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"expected {count} notification(s), got {self.parsed!r}")
            time.sleep(0.02)
        return list(self.parsed)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    holder: dict[str, Receiver] = {}

    def handle(request: StubRequest) -> StubResponse:
        rec = holder["receiver"]
        try:
            rec.parsed.append(rec.gateway.parse_notification(request.headers, request.body))
            reply = rec.gateway.notification_reply(ok=True)
        except DomainError as exc:
            rec.parsed.append(exc)
            reply = rec.gateway.notification_reply(ok=False, message=exc.code)
        return StubResponse(reply.status, reply.body, {"Content-Type": reply.content_type})

    with stub_server(handle) as stub:
        holder["receiver"] = Receiver(url=f"{stub.base_url}/notify/")
        yield holder["receiver"]
