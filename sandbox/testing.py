"""Start a sandbox subprocess for tests: `with running_sandbox(data_dir=tmp) as sb: sb.base_url`."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

READY_PREFIX = "SANDBOX_READY "
READY_TIMEOUT = 20.0
PROJECT_ROOT = Path(__file__).resolve().parent.parent


class SandboxStartError(RuntimeError):
    pass


@dataclass
class SandboxHandle:
    base_url: str
    data_dir: Path
    credentials: dict[str, Any]
    process: subprocess.Popen[str]
    output: list[str] = field(default_factory=list)
    session: requests.Session = field(default_factory=requests.Session)
    argv: list[str] = field(default_factory=list)  # how it was started (`--port` last), for `restart`
    env: dict[str, str] = field(default_factory=dict)

    @property
    def alipay_gateway(self) -> str:
        return f"{self.base_url}/alipay/gateway.do"

    @property
    def wallyt_url(self) -> str:
        return f"{self.base_url}/wallyt/pay/gateway"

    @property
    def wallyt_bill_url(self) -> str:
        return f"{self.base_url}/wallyt/download/gateway"

    @property
    def port(self) -> int:
        return int(self.base_url.rsplit(":", 1)[1])

    def path(self, relative: str) -> Path:
        """A key file path inside data_dir, e.g. sb.path("wechat/merchant_private_key.pem")."""
        return self.data_dir / relative

    def read(self, relative: str) -> str:
        return self.path(relative).read_text()

    def control(self, path: str, json: Any = None, method: str | None = None, **params: Any) -> Any:
        """Call the control API: `control("wechat/transactions/T1/pay", json={...})`.

        POST when `json` is given (or method="POST"), GET otherwise. Raises on HTTP errors.
        """
        path = path.lstrip("/")
        if not path.startswith("control/") and path != "healthz":
            path = "control/" + path
        verb = method or ("POST" if json is not None else "GET")
        resp = self.session.request(verb, f"{self.base_url}/{path}", json=json, params=params or None, timeout=10)
        if resp.status_code >= 400:
            raise requests.HTTPError(f"{verb} /{path} -> {resp.status_code}: {resp.text}", response=resp)
        return resp.json() if resp.content else None

    def reset(self) -> None:
        self.control("reset", json={})

    def fault(self, target: str, kind: str, count: int = 1, **extra: Any) -> dict[str, Any]:
        return self.control("faults", json={"target": target, "kind": kind, "count": count, **extra})

    def notifications(self, **query: Any) -> list[dict[str, Any]]:
        return self.control("notifications", **query)["notifications"]

    def wait_for(self, predicate: Any, timeout: float = 10.0, interval: float = 0.02) -> Any:
        """Poll `predicate()` until it returns a truthy value (returned) or time out."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError("condition not met in time")
            time.sleep(interval)

    def restart(self, *, kill: bool = True) -> None:
        """Stop the sandbox (`kill`: SIGKILL, a crash; otherwise SIGTERM) and start it again on the same port
        and data folder. It remembers everything (`sandbox.persist`): a restart is a fault to inject."""
        stop_process(self.process, kill=kill)
        self.session.close()
        self.session = requests.Session()
        argv = [*self.argv[:-1], str(self.port)]
        self.process, self.base_url = start_process(argv, self.env, self.output, retry_bind_seconds=10)


def stop_process(proc: subprocess.Popen[str], *, kill: bool = False) -> None:
    if proc.poll() is not None:
        return
    if kill:
        proc.kill()
    else:
        proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


def start_process(
    argv: list[str], env: dict[str, str], output: list[str], *, retry_bind_seconds: float = 0
) -> tuple[subprocess.Popen[str], str]:
    """Start `python -m sandbox ...`; wait for its READY line. A fixed port still held by the process that
    just died is tried again for `retry_bind_seconds`."""
    deadline = time.monotonic() + retry_bind_seconds
    while True:
        try:
            return _start_once(argv, env, output)
        except SandboxStartError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.2)


def _start_once(argv: list[str], env: dict[str, str], output: list[str]) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(  # noqa: S603 - fixed argv, our own interpreter
        argv, cwd=str(PROJECT_ROOT), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    )
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            output.append(line)
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, name="sandbox-output", daemon=True).start()
    deadline = time.monotonic() + READY_TIMEOUT
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise SandboxStartError(f"sandbox not ready after {READY_TIMEOUT}s; output:\n{''.join(output)}")
            try:
                line = lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                proc.wait(timeout=5)
                raise SandboxStartError(
                    f"sandbox exited with code {proc.returncode} before ready; output:\n{''.join(output)}"
                )
            if line.startswith(READY_PREFIX):
                return proc, line[len(READY_PREFIX) :].strip()
    except BaseException:
        stop_process(proc, kill=True)
        raise


def sandbox_argv(*, data_dir: Path, port: int = 0, notify_scale: float, refund_settle_seconds: float) -> list[str]:
    """The command line of a sandbox process (`--port` last)."""
    return [
        sys.executable,
        "-m",
        "sandbox",
        "--host",
        "127.0.0.1",
        "--data-dir",
        str(data_dir),
        "--notify-scale",
        str(notify_scale),
        "--refund-settle-seconds",
        str(refund_settle_seconds),
        "--port",
        str(port),
    ]


def sandbox_env(extra_env: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH", "")]))
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra_env or {})
    return env


@contextmanager
def running_sandbox(
    *,
    data_dir: Path,
    notify_scale: float = 0.01,
    refund_settle_seconds: float = 0,
    extra_env: dict[str, str] | None = None,
) -> Iterator[SandboxHandle]:
    data_dir = Path(data_dir)
    env = sandbox_env(extra_env)
    argv = sandbox_argv(data_dir=data_dir, notify_scale=notify_scale, refund_settle_seconds=refund_settle_seconds)
    output: list[str] = []
    proc, base_url = start_process(argv, env, output)
    handle = None
    try:
        credentials = json.loads((data_dir / "credentials.json").read_text())
        handle = SandboxHandle(
            base_url=base_url,
            data_dir=data_dir,
            credentials=credentials,
            process=proc,
            output=output,
            argv=argv,
            env=env,
        )
        yield handle
    finally:
        stop_process(handle.process if handle else proc)
