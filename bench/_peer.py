"""The seed-003 peer (``--peer DIR`` of ``notify_throughput.py``): its venv, its database, its payments.

The peer is a Flask app (``seed003_cached_client:app`` in DIR, see DIR/README.md) that handles the same
WeChat Pay v3 notification with the same SDK: measured beside ours in the same run, on its own database of
the same embedded PostgreSQL server, under the same gunicorn flags, with the same signed notifications.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

from bench._common import REPO_ROOT, check_bench_dbname, recreate_database

PEER_APP = "seed003_cached_client:app"
PEER_NOTIFY_PATH = "/api/v1/webhooks/wechat-pay"


def peer_venv(peer_dir: Path) -> Path:
    """The peer's own venv for ``peer_dir/requirements.txt``, in this checkout's ``var/`` (ignored by git),
    created once per requirements file and reused; returns its python."""
    requirements = peer_dir / "requirements.txt"
    digest = hashlib.sha256(requirements.read_bytes()).hexdigest()[:12]
    venv = REPO_ROOT / "var" / f"peer-venv-{digest}"
    python = venv / "bin" / "python"
    marker = venv / ".installed"
    if not marker.exists():
        print(f"peer: creating {venv} for {requirements} (once)")
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r", str(requirements)],
            check=True,
        )
        marker.touch()
    return python


def peer_env(*, server, dbname: str, keys: dict, work_dir: Path) -> dict[str, str]:
    """The settings seed003_app.py reads (its ``Config``): the sandbox's WeChat keys of this run (public-key
    mode, like the notifications' signatures) and its database."""
    creds = keys["credentials"]["wechat"]
    paths = keys["paths"]
    return {
        "WECHAT_APPID": creds["appid"],
        "WECHAT_PAY_MCHID": creds["mchid"],
        "WECHAT_PAY_SERIAL_NO": creds["merchant_serial_no"],
        "WECHAT_PAY_API_V3_KEY": paths["wechat_apiv3_key"].read_text().strip(),
        "WECHAT_PAY_PRIVATE_KEY_PATH": str(paths["wechat_merchant_private_key"]),
        "WECHAT_PAY_NOTIFY_URL": "https://example.invalid" + PEER_NOTIFY_PATH,
        "WECHAT_PAY_PUBLIC_KEY_PATH": str(paths["wechat_platform_public_key"]),
        "WECHAT_PAY_PUBLIC_KEY_ID": creds["public_key_id"],
        "DATABASE_URL": f"postgresql+psycopg://postgres@/{dbname}?host={server.socket_dir}&port={server.port}",
        "PYTHONDONTWRITEBYTECODE": "1",
        "TMPDIR": str(work_dir),
    }


def peer_database(*, server, dbname: str, python: Path, peer_dir: Path, env: dict, payments: list) -> None:
    """Recreate the peer's database, let the peer create its two tables, and insert one pending order and
    payment per product payment (same ``payment_no`` = the notification's ``out_trade_no``, same amount)."""
    import psycopg

    check_bench_dbname(dbname)
    recreate_database(server, dbname)
    subprocess.run([str(python), "seed003_app.py", "create-tables"], cwd=peer_dir, env=env, check=True)
    with psycopg.connect(server.dsn(dbname)) as conn, conn.cursor() as cursor:
        rows = [(f"O{no[2:]}"[:32], amount / 100) for no, _pk, amount in payments]
        cursor.executemany(
            "INSERT INTO orders (order_no, order_type, status, total_price, created_at)"
            " VALUES (%s, 'topup', 'pending_payment', %s, now())",
            rows,
        )
        cursor.execute(
            "INSERT INTO payments (order_id, payment_no, payment_method, payment_amount, status, created_at)"
            " SELECT o.id, 'PY' || substr(o.order_no, 2), 'wechat', o.total_price, 'pending', now() FROM orders o"
        )


def peer_verify(*, server, dbname: str, count: int) -> list[str]:
    """Every notified payment success and its order paid (the peer's states), or what is wrong."""
    import psycopg

    with psycopg.connect(server.dsn(dbname)) as conn:
        paid = conn.execute("SELECT count(*) FROM payments WHERE status = 'success'").fetchone()[0]
        orders = conn.execute("SELECT count(*) FROM orders WHERE status = 'pending_service'").fetchone()[0]
    problems = []
    if paid != count:
        problems.append(f"peer payments succeeded: {paid} (expected {count})")
    if orders != count:
        problems.append(f"peer orders paid: {orders} (expected {count})")
    return problems
