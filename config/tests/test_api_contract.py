"""Every endpoint: user isolation, and a table of bad inputs that must get 4xx in the one error shape."""

import pytest

from core.jwt_auth import token_for
from core.tests.api import assert_error_shape
from core.tests.factories import UserFactory
from lockers.models import Compartment
from lockers.tests.factories import CompartmentFactory, PricePlanFactory
from orders.models import Order
from orders.tests.factories import RentalOrderFactory

pytestmark = pytest.mark.django_db


def test_a_user_never_sees_or_touches_another_users_order(user_api):
    theirs = RentalOrderFactory(user=UserFactory())
    assert_error_shape(user_api.get(f"/api/v1/orders/{theirs.order_no}/"), 404, "not_found")
    assert_error_shape(user_api.post(f"/api/v1/orders/{theirs.order_no}/cancel/", {}, format="json"), 404)
    assert_error_shape(user_api.post(f"/api/v1/orders/{theirs.order_no}/open-door/", {}, format="json"), 404)
    assert user_api.get("/api/v1/orders/").json()["results"] == []
    theirs.refresh_from_db()
    assert theirs.status == Order.Status.PENDING_PAYMENT


def test_wallet_is_per_user(user_api):
    from core.audit import Actor
    from wallets.services import wallet_credit

    other = UserFactory()
    wallet_credit(user_id=other.pk, amount_fen=999, type="topup", reference="X", actor=Actor.system("t"))
    body = user_api.get("/api/v1/wallet/").json()
    assert body == {"balance_fen": 0, "recent": []}


def test_order_lifecycle_through_the_api(user_api):
    PricePlanFactory(size="S", price_per_hour_fen=300, min_hours=1, cap_fen=3_000)
    compartment = CompartmentFactory(size="S")
    listing = user_api.get(f"/api/v1/lockers/cabinets/{compartment.cabinet_id}/compartments/?size=S&status=free")
    assert [c["id"] for c in listing.json()] == [compartment.pk]
    assert listing.json()[0]["price_per_hour_fen"] == 300
    quote = user_api.get(f"/api/v1/lockers/quote/?compartment_id={compartment.pk}&hours=4").json()
    created = user_api.post("/api/v1/orders/", {"compartment_id": compartment.pk, "hours": 4}, format="json")
    assert created.status_code == 201
    order = created.json()
    assert order["amount_fen"] == quote["amount_fen"] == 1_200 and order["status"] == "pending_payment"
    assert user_api.get(f"/api/v1/orders/{order['order_no']}/").json()["order_no"] == order["order_no"]
    cancelled = user_api.post(f"/api/v1/orders/{order['order_no']}/cancel/", {}, format="json")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert Compartment.objects.get(pk=compartment.pk).status == "free"


def test_topup_order(user_api):
    response = user_api.post("/api/v1/wallet/topups/", {"amount_fen": 5_000}, format="json")
    assert response.status_code == 201
    assert response.json()["kind"] == "wallet_topup" and response.json()["amount_fen"] == 5_000


def test_client_cannot_choose_the_amount(user_api):
    PricePlanFactory(size="M", price_per_hour_fen=500)
    compartment = CompartmentFactory(size="M")
    response = user_api.post(
        "/api/v1/orders/", {"compartment_id": compartment.pk, "hours": 1, "amount_fen": 1}, format="json"
    )
    assert_error_shape(response, 400, "invalid_input")
    assert "amount_fen" in response.json()["error"]["details"]
    assert not Order.objects.exists()


BIG = 2**70
BAD_INPUTS = [
    # (method, path template, body, status, code)
    ("post", "/api/v1/orders/", {}, 400, "invalid_input"),
    ("post", "/api/v1/orders/", {"compartment_id": "{c}"}, 400, "invalid_input"),
    ("post", "/api/v1/orders/", {"compartment_id": "abc", "hours": 1}, 400, "invalid_input"),
    ("post", "/api/v1/orders/", {"compartment_id": "{c}", "hours": -1}, 400, "invalid_input"),
    ("post", "/api/v1/orders/", {"compartment_id": "{c}", "hours": 0}, 400, "invalid_input"),
    ("post", "/api/v1/orders/", {"compartment_id": "{c}", "hours": 1.5}, 400, "invalid_input"),
    ("post", "/api/v1/orders/", {"compartment_id": "{c}", "hours": True}, 400, "invalid_input"),
    ("post", "/api/v1/orders/", {"compartment_id": "{c}", "hours": BIG}, 400, "invalid_input"),
    ("post", "/api/v1/orders/", {"compartment_id": "{c}", "hours": 73}, 400, "invalid_input"),
    ("post", "/api/v1/orders/", {"compartment_id": BIG, "hours": 1}, 400, "invalid_input"),
    ("post", "/api/v1/orders/", {"compartment_id": 99_999_999, "hours": 1}, 404, "not_found"),
    ("post", "/api/v1/orders/", {"compartment_id": None, "hours": 1}, 400, "invalid_input"),
    ("post", "/api/v1/orders/", ["not", "an", "object"], 400, "invalid_input"),
    ("post", "/api/v1/orders/", "RAW:{not json", 400, "malformed_request"),
    ("post", "/api/v1/orders/{o}/cancel/", {"reason": "x" * 500}, 400, "invalid_input"),
    ("post", "/api/v1/orders/{o}/cancel/", {"unknown": 1}, 400, "invalid_input"),
    ("post", "/api/v1/orders/NOPE/cancel/", {}, 404, "not_found"),
    ("get", "/api/v1/orders/NOPE/", None, 404, "not_found"),
    ("post", "/api/v1/orders/{o}/open-door/", {}, 409, "order_not_paid"),
    ("delete", "/api/v1/orders/{o}/", None, 405, "method_not_allowed"),
    ("post", "/api/v1/wallet/topups/", {}, 400, "invalid_input"),
    ("post", "/api/v1/wallet/topups/", {"amount_fen": 0}, 400, "invalid_input"),
    ("post", "/api/v1/wallet/topups/", {"amount_fen": -100}, 400, "invalid_input"),
    ("post", "/api/v1/wallet/topups/", {"amount_fen": 500_001}, 400, "invalid_input"),
    ("post", "/api/v1/wallet/topups/", {"amount_fen": BIG}, 400, "invalid_input"),
    ("post", "/api/v1/wallet/topups/", {"amount_fen": "12.5"}, 400, "invalid_input"),
    ("post", "/api/v1/wallet/topups/", {"amount_fen": 100, "user_id": 1}, 400, "invalid_input"),
    ("get", "/api/v1/lockers/cabinets/99999999/compartments/", None, 404, "not_found"),
    ("get", "/api/v1/lockers/cabinets/{cab}/compartments/?size=XL", None, 400, "invalid_input"),
    ("get", "/api/v1/lockers/cabinets/{cab}/compartments/?status=broken", None, 400, "invalid_input"),
    ("get", "/api/v1/lockers/quote/?compartment_id={c}&hours=0", None, 400, "invalid_input"),
    ("get", "/api/v1/lockers/quote/?compartment_id=x&hours=1", None, 400, "invalid_input"),
    ("get", "/api/v1/lockers/quote/?compartment_id=99999999&hours=1", None, 404, "not_found"),
    ("get", "/api/v1/nothing-here/", None, 404, "not_found"),
    # inputs are taken as typed (found by fuzzing the OpenAPI document): no coercion
    ("post", "/api/v1/orders/", {"compartment_id": "{c}", "hours": "2"}, 400, "invalid_input"),
    ("post", "/api/v1/orders/", {"compartment_id": "{c}", "hours": 2.0}, 400, "invalid_input"),
    ("post", "/api/v1/wallet/topups/", {"amount_fen": True}, 400, "invalid_input"),
    ("post", "/api/v1/payments/", {"order_no": "{o}\n", "channel": "wallet"}, 400, "invalid_input"),
    ("post", "/api/v1/payments/", {"order_no": 12, "channel": "wallet"}, 400, "invalid_input"),
    ("post", "/api/v1/refunds/", {"order_no": "{o}", "reason": "x\u0000y"}, 400, "invalid_input"),
    ("get", "/api/v1/orders/?limit=abc", None, 400, "invalid_input"),
    ("get", "/api/v1/orders/?limit=0", None, 400, "invalid_input"),
    ("get", "/api/v1/orders/?offset=-1", None, 400, "invalid_input"),
    ("get", "/api/v1/lockers/quote/?compartment_id={c}&hours=1.0", None, 400, "invalid_input"),
    ("get", "/api/v1/lockers/quote/?compartment_id=%20{c}&hours=1", None, 400, "invalid_input"),
    # a NUL in the path or query cannot reach PostgreSQL (it would be a 500)
    ("get", "/api/v1/orders/A%00B/", None, 400, "invalid_input"),
    ("get", "/api/v1/refunds/?order_no=%00", None, 400, "invalid_input"),
]
ANON_BAD_INPUTS = [
    ("post", "/api/v1/auth/wechat/login", {}, 400, "invalid_input"),
    ("post", "/api/v1/auth/wechat/login", {"code": ""}, 400, "invalid_input"),
    ("post", "/api/v1/auth/wechat/login", {"code": "x" * 500}, 400, "invalid_input"),
    ("post", "/api/v1/auth/wechat/login", {"code": 123, "extra": 1}, 400, "invalid_input"),
    ("post", "/api/v1/auth/token", {"username": "a"}, 400, "invalid_input"),
    ("post", "/api/v1/auth/token", "RAW:[[[", 400, "malformed_request"),
    ("post", "/api/v1/auth/wechat/login", {"code": 0}, 400, "invalid_input"),  # the case
    ("post", "/api/v1/auth/token", {"username": ["a"], "password": "x"}, 400, "invalid_input"),
]


def _send(client, method, path, body):
    if isinstance(body, str) and body.startswith("RAW:"):
        return getattr(client, method)(path, data=body[4:], content_type="application/json")
    return getattr(client, method)(path, body, format="json") if body is not None else getattr(client, method)(path)


def _fill(value, ids):
    if isinstance(value, str):
        return value.format(**ids) if "{" in value and not value.startswith("RAW:") else value
    if isinstance(value, dict):
        return {k: (int(_fill(v, ids)) if v in ("{c}",) else _fill(v, ids)) for k, v in value.items()}
    return value


@pytest.mark.parametrize(("method", "path", "body", "status", "code"), BAD_INPUTS)
def test_bad_input_gets_a_clear_4xx_and_writes_nothing(user_api, method, path, body, status, code):
    PricePlanFactory(size="M")
    compartment = CompartmentFactory(size="M")
    order = RentalOrderFactory(user=user_api.user)
    ids = {"c": compartment.pk, "o": order.order_no, "cab": compartment.cabinet_id}
    orders_before = Order.objects.count()
    response = _send(user_api, method, _fill(path, ids), _fill(body, ids))
    assert_error_shape(response, status, code)
    assert Order.objects.count() == orders_before
    order.refresh_from_db()
    assert order.status == Order.Status.PENDING_PAYMENT
    assert Compartment.objects.get(pk=compartment.pk).status == "free"


@pytest.mark.parametrize(("method", "path", "body", "status", "code"), ANON_BAD_INPUTS)
def test_bad_login_input(api, method, path, body, status, code):
    assert_error_shape(_send(api, method, path, body), status, code)


def test_healthz_and_schema(api, user):
    assert api.get("/healthz").json() == {"status": "ok", "database": "ok"}
    schema = api.get("/api/schema/")
    assert schema.status_code == 200 and b"/api/v1/orders/" in schema.content
    assert api.get("/api/docs/").status_code == 200


def test_tokens_are_not_reusable_across_users(api):
    a, b = UserFactory(), UserFactory()
    order = RentalOrderFactory(user=a)
    response = api.get(f"/api/v1/orders/{order.order_no}/", HTTP_AUTHORIZATION=f"Bearer {token_for(b)}")
    assert response.status_code == 404


def test_cabinets_are_listed_by_code_with_free_counts(user_api):
    from lockers.tests.factories import CabinetFactory

    b = CabinetFactory(code="B")
    a = CabinetFactory(code="A")
    CompartmentFactory(cabinet=a)
    CompartmentFactory(cabinet=a, status="out_of_service")
    body = user_api.get("/api/v1/lockers/cabinets/").json()
    assert [(c["code"], c["free_count"]) for c in body] == [("A", 1), ("B", 0)]
    assert b.pk in [c["id"] for c in body]


def test_the_openapi_document_describes_what_the_api_answers(api):
    """The cases the issue found by fuzzing, as a quick check (the fuzz test covers the rest)."""
    schema = api.get("/api/schema/?format=json").json()
    paths, components = schema["paths"], schema["components"]["schemas"]

    def ref(media):
        return media.get("application/json", {}).get("schema", {}).get("$ref", "").rsplit("/", 1)[-1]

    # paginated lists are documented as pages
    for path in ("/api/v1/orders/", "/api/v1/refunds/"):
        page = components[ref(paths[path]["get"]["responses"]["200"]["content"])]
        assert set(page["required"]) == {"count", "results"} and page["properties"]["results"]["type"] == "array"
    # the logins answer tokens, and take input serializers
    login = paths["/api/v1/auth/wechat/login"]["post"]
    assert set(components[ref(login["responses"]["200"]["content"])]["required"]) == {
        "token",
        "refresh",
        "expires_in",
        "openid",
    }
    refreshed = paths["/api/v1/auth/token/refresh"]["post"]
    assert set(components[ref(refreshed["responses"]["200"]["content"])]["required"]) == {
        "token",
        "refresh",
        "expires_in",
    }
    assert set(paths["/api/v1/auth/logout"]["post"]["responses"]) == {"204", "400", "401", "415", "429"}
    code = components[ref(login["requestBody"]["content"])]["properties"]["code"]
    assert code["type"] == "string"
    # no request body is an output serializer, and every request object is closed
    for path, operations in paths.items():
        for method, operation in operations.items():
            if "requestBody" in operation and (name := ref(operation["requestBody"]["content"])):
                assert "Out" not in name, (method, path, name)
                assert components[name]["additionalProperties"] is False
            # every operation documents its errors, in the one shape for the API's own
            errors = {status for status in operation["responses"] if status >= "400"}
            assert errors, (method, path)
            if path.startswith("/api/v1/") and "notify" not in path:
                for status in errors:
                    assert ref(operation["responses"][status]["content"]) == "ErrorBody", (method, path, status)
