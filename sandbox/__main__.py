"""`python -m sandbox --host 127.0.0.1 --port 8100 --data-dir var/sandbox`"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from .keys import DEFAULT_DATA_DIR
from .persist import DataDirInUse
from .server import Sandbox, make_server


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    env = os.environ.get
    p = argparse.ArgumentParser(prog="python -m sandbox", description="Local payment gateway sandbox")
    p.add_argument("--host", default=env("SANDBOX_HOST", "127.0.0.1"))
    p.add_argument("--port", type=int, default=int(env("SANDBOX_PORT", "8100")), help="0 = pick a free port")
    p.add_argument("--data-dir", type=Path, default=Path(env("SANDBOX_DATA_DIR", str(DEFAULT_DATA_DIR))))
    p.add_argument(
        "--notify-scale",
        type=float,
        default=float(env("SANDBOX_NOTIFY_SCALE", "1.0")),
        help="multiplier for the notification retry schedules (e.g. 0.01 in tests)",
    )
    p.add_argument(
        "--refund-settle-seconds",
        type=float,
        default=float(env("SANDBOX_REFUND_SETTLE_SECONDS", "3")),
        help="auto-settle refunds to SUCCESS after this many seconds (0 = only via control API)",
    )
    p.add_argument("--verbose", action="store_true", default=env("SANDBOX_VERBOSE", "") not in ("", "0"))
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s sandbox %(levelname)s %(message)s",
    )
    try:
        sandbox = Sandbox(
            data_dir=args.data_dir, notify_scale=args.notify_scale, refund_settle_seconds=args.refund_settle_seconds
        )
    except DataDirInUse as exc:
        print(f"sandbox: {exc}; stop it first, or give this one another --data-dir", file=sys.stderr)
        return 2
    httpd = make_server(sandbox, args.host, args.port, verbose=args.verbose)

    def stop(signum: int, frame: FrameType | None) -> None:
        threading.Thread(target=httpd.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"SANDBOX_READY {sandbox.base_url}", flush=True)
    try:
        httpd.serve_forever(poll_interval=0.2)
    finally:
        httpd.server_close()
        sandbox.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
