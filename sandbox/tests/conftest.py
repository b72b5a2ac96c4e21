"""Fixtures of the sandbox's own tests: one sandbox server for the session (temp folder), its faults
cleared after each test, and a receiver of its notifications."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from sandbox.testing import SandboxHandle, running_sandbox


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxHandle]:
    data_dir = tmp_path_factory.mktemp("sandbox-data")
    with running_sandbox(data_dir=data_dir, notify_scale=0.001, refund_settle_seconds=0) as handle:
        yield handle


@pytest.fixture(autouse=True)
def _clear_faults(sandbox: SandboxHandle) -> Iterator[None]:
    yield
    sandbox.control("faults", method="DELETE")


@pytest.fixture
def uid() -> str:
    return uuid.uuid4().hex[:20].upper()


class Receiver:
    """Tiny local HTTP server that records notifications and answers with scripted replies."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.replies: list[tuple[int, bytes]] = []  # consumed in order, then `default`
        self.default: tuple[int, bytes] = (204, b"")
        self.lock = threading.Lock()
        receiver = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver.lock:
                    receiver.requests.append({"path": self.path, "headers": dict(self.headers.items()), "body": body})
                    status, reply = receiver.replies.pop(0) if receiver.replies else receiver.default
                self.send_response(status)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def received(self, path: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [r for r in self.requests if path is None or r["path"] == path]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def key_text(sandbox: SandboxHandle, rel: str) -> str:
    return Path(sandbox.data_dir, rel).read_text()
