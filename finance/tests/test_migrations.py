"""The bill models' move from refunds to finance (refunds 0007, finance 0001/0002) on a populated database:
migrate back to before the move, write a run, its lines and a discrepancy with its trail the way the old
code did, migrate forward, and read every row back through finance's models, with the content types
(and so the permissions and admin log entries that point at them) moved, not made again."""

import datetime as dt

import pytest
from django.contrib.admin.models import ADDITION, LogEntry
from django.contrib.auth.models import Permission
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from core.tests.factories import UserFactory
from finance.models import BillDiscrepancy, BillDiscrepancyEvent, BillLine, BillRun

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("refunds", "0006_refund_gateway_unknown"), ("finance", None)]


def _migrate(targets):
    """Migrate to ``targets``; the historical models of every app as the database then is."""
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    graph = MigrationExecutor(connection).loader.graph
    moved = {app for app, _ in targets}
    nodes = [node for node in graph.leaf_nodes() if node[0] not in moved] + [t for t in targets if t[1]]
    return MigrationExecutor(connection).loader.project_state(nodes).apps


def _table_names() -> set[str]:
    with connection.cursor() as cursor:
        return set(connection.introspection.table_names(cursor))


def test_bill_rows_survive_the_move_to_finance():
    staff = UserFactory(is_staff=True)
    old = _migrate(BEFORE)
    assert {"refunds_billrun", "refunds_billdiscrepancyevent"} <= _table_names()
    assert "finance_billrun" not in _table_names()

    run = old.get_model("refunds", "BillRun").objects.create(
        gateway="wechat", bill_date=dt.date(2026, 11, 29), status="done", counts={"lines": 2}, attempts=1
    )
    Line = old.get_model("refunds", "BillLine")
    for n, kind in enumerate(("payment", "refund")):
        Line.objects.create(
            gateway="wechat",
            bill_date=run.bill_date,
            kind=kind,
            reference=f"PY2026112900000{n}",
            out_trade_no="PY20261129000000",
            amount_fen=300 - 100 * n,
            status="SUCCESS",
            occurred_at=timezone.now(),
            fee_fen=2 - 3 * n,
        )
    now = timezone.now()
    discrepancy = old.get_model("refunds", "BillDiscrepancy").objects.create(
        bill_date=run.bill_date,
        gateway="wechat",
        kind="amount_mismatch",
        reference="PY20261129000000",
        our_amount_fen=300,
        their_amount_fen=299,
        status="assigned",
        assigned_to_id=staff.pk,
        first_seen=now,
        last_seen=now,
    )
    Event = old.get_model("refunds", "BillDiscrepancyEvent")
    Event.objects.create(discrepancy=discrepancy, action="found", to_status="open", actor="system:bills")
    Event.objects.create(
        discrepancy=discrepancy, action="assign", from_status="open", to_status="assigned", actor=f"staff:{staff.pk}"
    )
    ContentType = old.get_model("contenttypes", "ContentType")
    content_type = ContentType.objects.get(app_label="refunds", model="billdiscrepancy")
    permission_id = old.get_model("auth", "Permission").objects.get(codename="change_billdiscrepancy").pk
    log_id = (
        old.get_model("admin", "LogEntry")
        .objects.create(
            user_id=staff.pk,
            content_type_id=content_type.pk,
            object_id=str(discrepancy.pk),
            object_repr="wechat discrepancy",
            action_flag=ADDITION,
        )
        .pk
    )

    _migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())

    tables = _table_names()
    assert {"finance_billrun", "finance_billline", "finance_billdiscrepancy", "finance_billdiscrepancyevent"} <= tables
    assert not {t for t in tables if t.startswith("refunds_bill")}
    moved_run = BillRun.objects.get(pk=run.pk)
    assert (moved_run.gateway, moved_run.status, moved_run.counts) == ("wechat", "done", {"lines": 2})
    assert sorted(BillLine.objects.values_list("kind", "amount_fen", "fee_fen")) == [
        ("payment", 300, 2),
        ("refund", 200, -1),
    ]
    moved = BillDiscrepancy.objects.get(pk=discrepancy.pk)
    assert (moved.status, moved.assigned_to, moved.their_amount_fen) == ("assigned", staff, 299)
    assert list(moved.events.values_list("action", "to_status")) == [("found", "open"), ("assign", "assigned")]
    assert BillDiscrepancyEvent.objects.count() == 2
    # the same content type row, relabelled: the grant and the log entry still name the discrepancy
    permission = Permission.objects.get(pk=permission_id)
    assert (permission.content_type_id, permission.content_type.app_label) == (content_type.pk, "finance")
    assert LogEntry.objects.get(pk=log_id).get_edited_object() == moved
    # new rows go on where the old ones stopped (the identity sequences came along with the tables)
    later = BillRun.objects.create(gateway="alipay", bill_date=run.bill_date)
    assert later.pk > run.pk
