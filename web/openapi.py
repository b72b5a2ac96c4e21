"""The operations that are plain Django views, described for the OpenAPI document by hand:

- the gateways' notification endpoints (``payments/webhooks.py``): each gateway's own request
  format and replies. A notification that does not verify is refused with 401, a malformed or
  foreign one with 400, both in the gateway's failure format (any non-2xx or non-``success``
  answer makes the gateway retry); one that verified but could not be applied keeps the
  gateway's failure reply (WeChat: 500, Alipay and Wallyt: ``fail``) so that it retries;
- the web checkout's JSON endpoints (``web/views.py``), used by its pages' scripts with
  the session cookie (and the CSRF token for POST).

``config/tests/test_openapi_fuzz.py`` fuzzes them with the rest, against the live server.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

from orders.models import Order
from payments.models import Payment

ERROR = {"$ref": "#/components/schemas/ErrorBody"}
ANY_MORE: dict[str, Any] = {}  # additionalProperties: gateways add fields at will
STRING = {"type": "string"}
NON_EMPTY = {"type": "string", "minLength": 1}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _error(description: str) -> dict[str, Any]:
    return {"description": f"Error: {description}.", "content": _json(ERROR)}


def _header(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "header", "required": True, "schema": schema, "description": description}


# --------------------------------------------------------------------------- notifications

WECHAT_HEADERS = [
    _header("Wechatpay-Serial", NON_EMPTY, "Our WeChat Pay public key id (or platform certificate serial)."),
    _header("Wechatpay-Signature", NON_EMPTY, "RSA-SHA256 over `timestamp\\nnonce\\nbody\\n`, base64."),
    _header("Wechatpay-Timestamp", {"type": "string", "pattern": "^[0-9]{1,12}$"}, "Seconds since the epoch."),
    _header("Wechatpay-Nonce", NON_EMPTY, "A random string."),
    _header("Wechatpay-Signature-Type", {"type": "string", "enum": ["WECHATPAY2-SHA256-RSA2048"]}, "The algorithm."),
]
WECHAT_ENVELOPE = {
    "type": "object",
    "properties": {
        "id": NON_EMPTY,
        "create_time": STRING,
        "resource_type": {"type": "string", "enum": ["encrypt-resource"]},
        "event_type": {"type": "string", "example": "TRANSACTION.SUCCESS"},
        "summary": STRING,
        "resource": {
            "type": "object",
            "properties": {
                "original_type": STRING,
                "algorithm": {"type": "string", "enum": ["AEAD_AES_256_GCM"]},
                "ciphertext": NON_EMPTY,
                "associated_data": STRING,
                "nonce": NON_EMPTY,
            },
            "required": ["algorithm", "ciphertext", "nonce"],
            "additionalProperties": ANY_MORE,
        },
    },
    "required": ["id", "create_time", "resource_type", "event_type", "resource"],
    "additionalProperties": ANY_MORE,
}
WECHAT_FAIL = _json(
    {
        "type": "object",
        "properties": {"code": {"type": "string", "enum": ["FAIL"]}, "message": STRING},
        "required": ["code", "message"],
    }
)

ALIPAY_FORM = {
    "type": "object",
    "properties": {
        "notify_id": NON_EMPTY,
        "notify_type": STRING,
        "notify_time": STRING,
        "app_id": NON_EMPTY,
        "charset": STRING,
        "version": STRING,
        "sign_type": {"type": "string", "enum": ["RSA2"]},
        "sign": NON_EMPTY,
        "trade_no": STRING,
        "out_trade_no": NON_EMPTY,
        "trade_status": {
            "type": "string",
            "enum": ["WAIT_BUYER_PAY", "TRADE_SUCCESS", "TRADE_FINISHED", "TRADE_CLOSED"],
        },
        "total_amount": {"type": "string", "pattern": "^[0-9]{1,10}(\\.[0-9]{1,2})?$"},
        "seller_id": STRING,
    },
    "required": ["notify_id", "app_id", "sign_type", "sign", "out_trade_no", "trade_status"],
    "additionalProperties": STRING,
}
XML_TEXT = {"type": "string", "pattern": "^[^\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f\\ufffe\\uffff]*$"}
XML_NON_EMPTY = {**XML_TEXT, "minLength": 1}
WALLYT_FIELDS = [
    "version",
    "charset",
    "sign_type",
    "status",
    "message",
    "result_code",
    "mch_id",
    "device_info",
    "nonce_str",
    "err_code",
    "err_msg",
    "openid",
    "trade_type",
    "is_subscribe",
    "pay_result",
    "pay_info",
    "transaction_id",
    "out_transaction_id",
    "sub_is_subscribe",
    "sub_appid",
    "sub_openid",
    "out_trade_no",
    "total_fee",
    "cash_fee",
    "coupon_fee",
    "fee_type",
    "attach",
    "bank_type",
    "bank_billno",
    "time_end",
    "sign",
]
WALLYT_XML = {
    "type": "object",
    "xml": {"name": "xml"},
    "properties": {
        **dict.fromkeys(WALLYT_FIELDS, XML_TEXT),
        "sign_type": {"type": "string", "enum": ["MD5"]},
        "mch_id": XML_NON_EMPTY,
        "nonce_str": XML_NON_EMPTY,
        "out_trade_no": XML_NON_EMPTY,
        "total_fee": {"type": "string", "pattern": "^[0-9]{1,12}$"},
        "sign": XML_NON_EMPTY,
    },
    "required": ["status", "result_code", "mch_id", "nonce_str", "out_trade_no", "sign"],
}


def _text(*words: str) -> dict[str, Any]:
    return {"text/plain": {"schema": {"type": "string", "enum": list(words)}}}


def _notify(gateway: str, summary: str, media_type: str, body: dict[str, Any], **extra: Any) -> dict[str, Any]:
    if gateway == "wechat":
        ok = {"204": {"description": "Accepted: applied, or a duplicate of one that was."}}
        failed = {"description": "Verified but not applied (our side): WeChat retries.", "content": WECHAT_FAIL}
        refused = {"content": WECHAT_FAIL}
    else:
        ok = {
            "200": {
                "description": "`success`: applied, or a duplicate; `fail`: verified but not applied "
                "(our side): the gateway retries.",
                "content": _text("success", "fail"),
            }
        }
        failed = None
        refused = {"content": _text("fail")}
    responses = {
        **ok,
        "400": {"description": "Refused: malformed, stale, or not for this merchant.", **refused},
        "401": {"description": "Refused: the signature does not verify.", **refused},
        "411": _error("`length_required`: the body has no Content-Length; nothing is stored"),
        "413": _error("`body_too_large`: over 64 KiB; nothing is stored"),
        "429": {
            **_error(
                "`throttled`: from an address whose bodies keep failing verification, one that does not "
                "verify either is not stored (one that verifies is stored and applied)"
            ),
            "headers": {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait."}},
        },
        "431": _error("`headers_too_large`: headers over 16 KiB; nothing is stored"),
        "503": {"description": "This gateway is not configured here.", **refused},
    }
    if failed:
        responses["500"] = failed
    return {
        "post": {
            "operationId": f"payments_notify_{gateway}",
            "tags": ["notifications"],
            "summary": summary,
            "description": "Called by the gateway, not by clients. No credentials: every message is verified "
            "(signature, key serial, time window, then every field of the gateway's trust checks: the payment "
            "or refund, app, merchant, seller and sub app ids, amounts, currency) before anything changes.",
            "security": [],
            "requestBody": {"required": True, "content": {media_type: {"schema": body}}},
            "responses": responses,
            **extra,
        }
    }


# --------------------------------------------------------------------------- web checkout

SESSION = [{"cookieAuth": []}]
LOCATION = {"Location": {"schema": STRING}}
ORDER_NO = {"name": "order_no", "in": "path", "required": True, "schema": STRING}
WEB_STATUS = {
    "type": "object",
    "properties": {
        "order_no": STRING,
        "order_status": {"type": "string", "enum": [value for value, _ in Order.Status.choices]},
        "payment_status": {"type": "string", "enum": ["", *(value for value, _ in Payment.Status.choices)]},
        "expired": {"type": "boolean"},
        "done": {"type": "boolean", "description": "Nothing more to wait for: go to `result_url`."},
        "result_url": STRING,
    },
    "required": ["order_no", "order_status", "payment_status", "expired", "done", "result_url"],
}


def _web_operations() -> dict[str, Any]:
    quote = {
        "type": "object",
        "properties": {
            "amount_fen": {"type": "integer"},
            "total": {"type": "string", "description": "In yuan, e.g. `12.00`."},
            "hours": {"type": "integer"},
            "billed_hours": {"type": "integer"},
        },
        "required": ["amount_fen", "total", "hours", "billed_hours"],
    }
    synced = {**WEB_STATUS, "properties": {**WEB_STATUS["properties"], "message": STRING}}
    synced["required"] = [*WEB_STATUS["required"], "message"]
    integer = {"type": "integer", "minimum": 1, "maximum": 2**63 - 1}
    return {
        "/quote/": {
            "get": {
                "operationId": "web_quote",
                "tags": ["web checkout"],
                "description": "The cabinet page's price, as the hours change (nothing is reserved).",
                "security": SESSION,
                "parameters": [
                    {"name": "compartment", "in": "query", "required": True, "schema": integer},
                    {
                        "name": "hours",
                        "in": "query",
                        "required": True,
                        "schema": {"type": "integer", "minimum": 1, "maximum": settings.ORDER_MAX_HOURS},
                    },
                ],
                "responses": {
                    "200": {"description": "The server's price.", "content": _json(quote)},
                    "400": _error("`invalid_input`"),
                    "401": _error("`not_authenticated`: sign in first"),
                    "404": _error("`not_found`: no such compartment"),
                    "409": _error("`no_price_plan`"),
                },
            }
        },
        "/orders/{order_no}/status/": {
            "get": {
                "operationId": "web_order_status",
                "tags": ["web checkout"],
                "description": "What the waiting page polls.",
                "security": SESSION,
                "parameters": [ORDER_NO],
                "responses": {
                    "200": {"description": "The order and its latest payment.", "content": _json(WEB_STATUS)},
                    "401": _error("`not_authenticated`: sign in first"),
                    "404": _error("`not_found`: no such order of yours"),
                },
            }
        },
        "/orders/{order_no}/sync/": {
            "post": {
                "operationId": "web_order_sync",
                "tags": ["web checkout"],
                "description": "Ask the gateway about the order's open payments now. With `Accept: application/json` "
                "the answer is the status; otherwise a redirect back to the waiting page.",
                "security": SESSION,
                "parameters": [
                    ORDER_NO,
                    _header("X-CSRFToken", NON_EMPTY, "The `csrftoken` cookie's value."),
                    {"name": "csrftoken", "in": "cookie", "required": True, "schema": NON_EMPTY},
                ],
                "responses": {
                    "200": {
                        "description": "Synced; `message` is the gateway's refusal, if any.",
                        "content": _json(synced),
                    },
                    "302": {
                        "description": "Synced (no JSON asked for): back to the waiting page.",
                        "headers": LOCATION,
                    },
                    "401": _error("`not_authenticated`: sign in first"),
                    "403": {"description": "The CSRF check failed.", "content": {"text/html": {"schema": STRING}}},
                    "404": _error("`not_found`: no such order of yours"),
                    "429": {
                        "description": "`throttled` (THROTTLE_PAYMENT_SYNC): in the one error shape when JSON is "
                        "asked for, as a sentence otherwise.",
                        "headers": {"Retry-After": {"required": True, "schema": {"type": "integer", "minimum": 1}}},
                        "content": {**_json(ERROR), "text/plain": {"schema": STRING}},
                    },
                },
            }
        },
    }


def plain_operations() -> dict[str, Any]:
    """Paths to add to the generated document."""
    base = "/api/v1/payments/notify"
    return {
        f"{base}/wechat/": _notify(
            "wechat", "WeChat Pay v3 notification", "application/json", WECHAT_ENVELOPE, parameters=WECHAT_HEADERS
        ),
        f"{base}/alipay/": _notify("alipay", "Alipay notification", "application/x-www-form-urlencoded", ALIPAY_FORM),
        f"{base}/wallyt/": _notify("wallyt", "Wallyt notification", "text/xml", WALLYT_XML),
        **_web_operations(),
    }


def postprocess(result: dict[str, Any], generator, request, public) -> dict[str, Any]:
    """drf-spectacular post-processing hook (``SPECTACULAR_SETTINGS``): add the plain Django operations
    (the top floor knows every app's); ``core.openapi.postprocess`` runs next and closes the schemas."""
    result["paths"].update(plain_operations())
    return result
