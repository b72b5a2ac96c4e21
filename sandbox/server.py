"""HTTP plumbing: request/response objects, router, the shared Sandbox context and the server."""

from __future__ import annotations

import json
import logging
import re
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from .faults import API_KINDS, MESSAGE_KINDS, Fault, Faults
from .keys import Keys, load_keys
from .notifier import Notifier, Scheduler
from .persist import Persist
from .state import Store

log = logging.getLogger("sandbox")


@dataclass
class Request:
    method: str
    target: str  # raw request target: path + "?" + query, exactly as received
    path: str
    query_string: str
    headers: Message
    body: bytes
    base_url: str  # scheme://host[:port] as the client addressed us

    @property
    def query(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(self.query_string, keep_blank_values=True).items()}

    def form(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(self.body.decode("utf-8", "replace"), keep_blank_values=True).items()}

    def json(self) -> Any:
        if not self.body:
            return {}
        return json.loads(self.body.decode("utf-8"))


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str | None = "application/json; charset=utf-8"
    drop_after: float | None = None  # seconds to hold the socket, then close without answering

    @classmethod
    def json(cls, obj: Any, status: int = 200) -> Response:
        return cls(status=status, body=json.dumps(obj, ensure_ascii=False, indent=1).encode("utf-8"))

    @classmethod
    def html(cls, text: str, status: int = 200) -> Response:
        return cls(status=status, body=text.encode("utf-8"), content_type="text/html; charset=utf-8")

    @classmethod
    def redirect(cls, location: str, status: int = 303) -> Response:
        return cls(status=status, headers={"Location": location}, content_type=None)

    @classmethod
    def text(cls, text: str, status: int = 200) -> Response:
        return cls(status=status, body=text.encode("utf-8"), content_type="text/plain; charset=utf-8")


Handler = Callable[..., Response]


class Router:
    def __init__(self) -> None:
        self._routes: list[tuple[set[str], re.Pattern[str], Handler]] = []

    def add(self, methods: str, pattern: str, handler: Handler) -> None:
        self._routes.append((set(methods.split(",")), re.compile("^" + pattern + "$"), handler))

    def dispatch(self, req: Request) -> Response:
        allowed = False
        for methods, regex, handler in self._routes:
            m = regex.match(req.path)
            if not m:
                continue
            if req.method not in methods:
                allowed = True
                continue
            return handler(req, **{k: unquote(v) for k, v in m.groupdict().items()})
        if allowed:
            return Response.json({"code": "METHOD_NOT_ALLOWED", "message": "method not allowed"}, 405)
        return Response.json({"code": "NOT_FOUND", "message": f"no route for {req.path}"}, 404)


class Sandbox:
    """Everything the gateways share: keys, state, faults, scheduler, notifier, router."""

    def __init__(self, *, data_dir: Path, notify_scale: float = 1.0, refund_settle_seconds: float = 3.0) -> None:
        self.data_dir = Path(data_dir)
        self.keys: Keys = load_keys(self.data_dir)
        self.notify_scale = notify_scale
        self.refund_settle_seconds = refund_settle_seconds
        self.persist = Persist(self.data_dir)  # what the previous process of this data folder knew
        self.store = Store(self.persist)
        self.faults = Faults(self.persist)
        self.scheduler = Scheduler()
        self.notifier = Notifier(self.scheduler, self.faults, notify_scale, self.persist)
        self.router = Router()
        self.base_url = ""
        self.gateways: dict[str, Any] = {}
        from . import alipay, bills, cashier, control, wallyt, wechat

        self.gateways["wechat"] = wechat.WeChatGateway(self)
        self.gateways["alipay"] = alipay.AlipayGateway(self)
        self.gateways["wallyt"] = wallyt.WallytGateway(self)
        cashier.register(self)
        control.register(self)
        bills.register(self)
        self._resume()

    def _resume(self) -> None:
        """After a restart: pending notifications go on with their retry schedule, refunds due to settle
        settle (at their time, or now if it passed while the process was down)."""
        deliveries = self.notifier.resume()
        settling = 0
        now = time.time()
        with self.store.lock:
            due = [r for r in self.store.refunds.values() if r.status == "PROCESSING" and "settle_due" in r.extra]
        for refund in due:
            self._settle_later(refund.gateway, refund.out_refund_no, max(0.0, float(refund.extra["settle_due"]) - now))
            settling += 1
        if deliveries or settling or self.store.trades:
            log.info(
                "resumed: %s trades, %s refunds, %s pending notifications, %s refunds to settle",
                len(self.store.trades),
                len(self.store.refunds),
                deliveries,
                settling,
            )

    # ---------------------------------------------------------------- fault helpers
    def api_fault(self, target: str) -> Fault | None:
        """Apply latency faults (sleep) and return the other API fault to apply, if any."""
        latency = self.faults.take(target, {"latency"})
        if latency:
            time.sleep((latency.ms or 0) / 1000.0)
        return self.faults.take(target, API_KINDS - {"latency"})

    def message_fault(self, target: str) -> Fault | None:
        """The `mutate` fault to apply to the message being built for `target`, if any."""
        return self.faults.take(target, MESSAGE_KINDS)

    @staticmethod
    def timeout_response(fault: Fault) -> Response:
        return Response(drop_after=(fault.ms if fault.ms is not None else 30000) / 1000.0)

    def schedule_refund_settle(self, gateway: str, out_refund_no: str) -> None:
        """Settle a new (PROCESSING) refund to SUCCESS after `refund_settle_seconds`; the due time is kept with
        the refund, so a restart does not forget it."""
        if self.refund_settle_seconds > 0:
            with self.store.lock:
                refund = self.store.refunds.get((gateway, out_refund_no))
                if refund is None:
                    return
                refund.extra["settle_due"] = time.time() + self.refund_settle_seconds
                self.store.save_refund(refund)
            self._settle_later(gateway, out_refund_no, self.refund_settle_seconds)

    def _settle_later(self, gateway: str, out_refund_no: str, delay: float) -> None:
        gw = self.gateways[gateway]
        self.scheduler.call_later(delay, lambda: gw.settle_refund(out_refund_no, "SUCCESS", only_processing=True))

    def reset(self) -> None:
        self.scheduler.clear()
        self.notifier.reset()
        self.faults.clear()
        self.store.reset()
        self.gateways["wechat"].signing_override = None
        self.gateways["alipay"].notify_charset = "utf-8"

    def close(self) -> None:
        self.scheduler.stop()
        self.persist.close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "PaymentSandbox/1.0"
    sandbox: Sandbox  # set on the subclass
    verbose = False

    def log_message(self, format: str, *args: Any) -> None:
        if self.verbose:
            sys.stderr.write(f"{self.address_string()} - {format % args}\n")

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _handle(self) -> None:
        body = self._read_body()
        split = urlsplit(self.path)
        host = self.headers.get("Host") or ""
        base = f"http://{host}" if host else self.sandbox.base_url
        req = Request(
            method=self.command,
            target=self.path,
            path=split.path,
            query_string=split.query,
            headers=self.headers,
            body=body,
            base_url=base,
        )
        try:
            resp = self.sandbox.router.dispatch(req)
        except Exception as exc:  # noqa: BLE001 - a bug must not kill the connection silently
            log.error("unhandled error on %s %s\n%s", self.command, self.path, traceback.format_exc())
            resp = Response.json({"code": "SANDBOX_BUG", "message": f"{type(exc).__name__}: {exc}"}, 500)
        if resp.drop_after is not None:
            time.sleep(resp.drop_after)
            self.close_connection = True
            return
        self.send_response(resp.status)
        if resp.content_type:
            self.send_header("Content-Type", resp.content_type)
        for k, v in resp.headers.items():
            self.send_header(k, v)
        no_body = resp.status in (204, 304) or self.command == "HEAD"
        if resp.status != 204:
            self.send_header("Content-Length", str(len(resp.body)))
        self.end_headers()
        if not no_body:
            self.wfile.write(resp.body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _handle


class SandboxHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def make_server(sandbox: Sandbox, host: str, port: int, verbose: bool = False) -> SandboxHTTPServer:
    handler = type("SandboxHandler", (_Handler,), {"sandbox": sandbox, "verbose": verbose})
    httpd = SandboxHTTPServer((host, port), handler)
    bound_port = httpd.server_address[1]
    sandbox.base_url = f"http://{host}:{bound_port}"
    return httpd
