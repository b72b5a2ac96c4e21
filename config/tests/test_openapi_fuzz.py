"""The OpenAPI document is the API: Schemathesis fuzzes every operation of /api/schema/ against the
live server, with every check on and every phase (examples, coverage, fuzzing, stateful).

Requests are generated from the document, positive and negative: a 5xx, an answer (status,
content type, header or body) the document does not describe, valid input refused or invalid
input accepted, a resource that answers after its deletion: each is a failure. The notification
endpoints and the web checkout's JSON endpoints are in the document too (web/openapi.py).

``FUZZ_EXAMPLES`` (default 12) bounds the cases per operation so the suite stays fast;
``FUZZ_SEED`` (default fixed, for a reproducible suite) can be ``random`` to explore.
"""

import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client
from django.utils.crypto import get_random_string

from core.jwt_auth import token_for
from core.tests.factories import UserFactory
from lockers.tests.factories import CabinetFactory, CompartmentFactory, PricePlanFactory
from payments.models import WeChatIdentity

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]
CONFIG = Path(__file__).with_name("schemathesis.toml")
DEFAULT_SEED = "20261130"


@pytest.fixture
def shop():
    """Cabinets of every size with prices, and a customer signed in with WeChat (JSAPI payments)."""
    for size, price in (("S", 300), ("M", 500), ("L", 800)):
        PricePlanFactory(size=size, price_per_hour_fen=price)
    for code in ("FZ-1", "FZ-2"):
        cabinet = CabinetFactory(code=code)
        for size in ("S", "M", "L"):
            CompartmentFactory(cabinet=cabinet, size=size)
    customer = UserFactory(username="fuzz")
    WeChatIdentity.objects.create(user=customer, openid="oFuzzOpenid0123456789abcdefg")
    return customer


def test_the_api_answers_as_its_openapi_document_says(live_server, notify_to, shop, tmp_path, settings):
    # the fuzzer is one address sending thousands of bodies that do not verify: were it throttled (429,
    # tested in payments/tests/test_trust_cases.py), the notification endpoints' other answers would go untested
    settings.NOTIFY_UNVERIFIED_PER_MINUTE = 10**9
    # given the customer's credentials: a JWT for the API, a session and CSRF token for the web pages
    browser = Client()
    browser.force_login(shop)
    csrf = get_random_string(32)
    seed = os.environ.get("FUZZ_SEED", DEFAULT_SEED)
    seed = str(random.randrange(2**32)) if seed == "random" else seed
    env = os.environ | {
        "LOCKER_FUZZ_TOKEN": token_for(shop),
        "LOCKER_FUZZ_SESSION": browser.cookies["sessionid"].value,
        "LOCKER_FUZZ_CSRF": csrf,
        "NO_COLOR": "1",
    }

    # when Schemathesis runs every check over every operation of the live server's document
    result = subprocess.run(
        [
            *(sys.executable, "-m", "schemathesis.cli", "--config-file", str(CONFIG), "run"),
            f"{live_server.url}/api/schema/",
            *("--checks", "all", "--phases", "examples,coverage,fuzzing,stateful"),
            *("--max-examples", os.environ.get("FUZZ_EXAMPLES", "12"), "--seed", seed),
            *("--workers", "1", "--request-timeout", "30", "--suppress-health-check", "too_slow"),
        ],
        env=env,
        cwd=tmp_path,  # its cache (.schemathesis/) stays out of the checkout
        capture_output=True,
        text=True,
        timeout=900,
    )

    # then it finds nothing (its report names each failure and how to reproduce it)
    report = result.stdout[-15000:] + result.stderr[-3000:]
    assert result.returncode == 0, f"schemathesis (seed {seed}) found failures:\n{report}"
    assert "Tested: 29" in result.stdout, report  # every operation was reached (with token refresh and logout)
