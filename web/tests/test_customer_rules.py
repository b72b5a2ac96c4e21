"""The customer pages offer only what the API would do, each from the rule function the API applies
(``orders.selectors.reopen_refusal``, ``refunds.services.user_refund_refusal``), and show times with their zone's
name as the back office does."""

import re

import pytest
from django.utils import timezone

from core.tests.factories import UserFactory
from orders.models import Order
from orders.services import order_create_rental
from orders.tests.test_api import detail, open_door, wallet_paid_rental
from orders.tests.test_overtime import pay_overtime
from orders.tests.test_overtime_finance import overdue_rental
from web.tests.helpers import result_url

pytestmark = pytest.mark.django_db
ZONED = re.compile(r"\d{4}-\d{2}-\d{2}</span> <span>\d{2}:\d{2} CST")  # 2026-11-30 15:04 CST (Asia/Shanghai)


@pytest.fixture
def web(client, user_api):
    client.force_login(user_api.user)
    return client


def test_open_again_is_offered_only_while_the_api_would_open(user_api, web):
    order = wallet_paid_rental(user_api)
    assert open_door(user_api, order["order_no"]).json()["purpose"] == "pickup"
    page = web.get(result_url(Order.objects.get(order_no=order["order_no"]))).content.decode()
    assert "Open again" in page and detail(user_api, order["order_no"])["door"] == "reopen"

    # someone else rents the compartment within the open-again window
    compartment_id = detail(user_api, order["order_no"])["compartment"]["id"]
    order_create_rental(user=UserFactory(), compartment_id=compartment_id, hours=1)

    page = web.get(result_url(Order.objects.get(order_no=order["order_no"]))).content.decode()
    assert "Open again" not in page and detail(user_api, order["order_no"])["door"] is None
    refused = open_door(user_api, order["order_no"])
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "compartment_taken"


def test_request_a_refund_is_offered_only_where_the_api_accepts_it(user_api, web, settings):
    fresh = wallet_paid_rental(user_api)  # paid, not used: the customer may ask
    used = wallet_paid_rental(user_api)
    open_door(user_api, used["order_no"])  # picked up: only staff refund it
    late = overdue_rental(user_api, settings)
    overtime_no = open_door(user_api, late["order_no"]).json()["error"]["details"]["order_no"]
    pay_overtime(Order.objects.get(order_no=overtime_no), timezone.now())  # paid overtime: time used

    page = web.get("/orders/").content.decode()
    offered = set(re.findall(r'action="/orders/([^/]+)/refund/"', page))
    assert offered == {fresh["order_no"]}
    for order_no in (used["order_no"], overtime_no, late["order_no"]):
        response = user_api.post("/api/v1/refunds/", {"order_no": order_no, "reason": "x"}, format="json")
        assert response.status_code == 403 and response.json()["error"]["code"] == "refund_needs_staff", order_no
    accepted = user_api.post("/api/v1/refunds/", {"order_no": fresh["order_no"], "reason": "x"}, format="json")
    assert accepted.status_code == 201, accepted.content


def test_customer_pages_show_times_with_the_zone_name(user_api, web):
    order = wallet_paid_rental(user_api)
    result = web.get(result_url(Order.objects.get(order_no=order["order_no"]))).content.decode()
    assert ZONED.search(result)  # "until 2026-11-30 17:04 CST"
    assert ZONED.search(web.get("/orders/").content.decode())
    assert ZONED.search(web.get("/wallet/").content.decode())
    open_door(user_api, order["order_no"])
    result = web.get(result_url(Order.objects.get(order_no=order["order_no"]))).content.decode()
    assert len(ZONED.findall(result)) == 2  # picked up at, open again until


def test_my_orders_asks_the_refund_rule_in_queries_that_do_not_grow_with_the_orders(user_api, web):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from web.selectors import order_rows_for_user

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            rows = order_rows_for_user(user=user_api.user)
        assert all(row.refundable for row in rows if row.order.order_no not in used)
        return len(captured.captured_queries)

    used = {wallet_paid_rental(user_api)["order_no"]}
    open_door(user_api, next(iter(used)))  # picked up: the door history is asked
    wallet_paid_rental(user_api)
    few = queries()
    for _ in range(4):
        wallet_paid_rental(user_api)
    assert queries() == few
