"""The go-live doctor (payments/checks.py): a live configuration made of the sandbox's keys passes;
each mistake merchants make when they swap in real credentials trips its check, which names the
setting and the fix."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from payments import checks as doctor

HOST = "pay.example.com"
NONE = serialization.NoEncryption()


def write(path: Path, data: bytes | str) -> str:
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return str(path)


def private_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, NONE)


def public_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def certificate(key: rsa.RSAPrivateKey, *, serial: int, days_left: float) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "merchant")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(now - dt.timedelta(days=400))
        .not_valid_after(now + dt.timedelta(days=days_left))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


@pytest.fixture
def live(settings, sandbox, tmp_path):
    """Production without the sandbox, every channel configured explicitly with the sandbox's keys."""
    settings.PRODUCTION, settings.SANDBOX_ENABLED = True, False
    settings.ALLOWED_HOSTS = [HOST]
    creds = sandbox.credentials
    merchant_cert = x509.load_pem_x509_certificate(sandbox.path("wechat/merchant_cert.pem").read_bytes())
    settings.WECHAT_APPID = creds["wechat"]["appid"]
    settings.WECHAT_PAY_MCHID = creds["wechat"]["mchid"]
    settings.WECHAT_PAY_SERIAL_NO = format(merchant_cert.serial_number, "X")
    settings.WECHAT_PAY_API_V3_KEY = sandbox.read("wechat/apiv3_key").strip()
    settings.WECHAT_PAY_PRIVATE_KEY_PATH = str(sandbox.path("wechat/merchant_private_key.pem"))
    settings.WECHAT_PAY_CERT_PATH = str(sandbox.path("wechat/merchant_cert.pem"))
    settings.WECHAT_PAY_PUBLIC_KEY_PATH = str(sandbox.path("wechat/platform_public_key.pem"))
    settings.WECHAT_PAY_PUBLIC_KEY_ID = creds["wechat"]["public_key_id"]
    settings.WECHAT_PAY_PLATFORM_CERT_DIR = ""
    settings.WECHAT_PAY_API_BASE = "https://api.mch.weixin.qq.com"
    settings.WECHAT_PAY_NOTIFY_URL = f"https://{HOST}/api/v1/payments/notify/wechat/"
    settings.ALIPAY_APP_ID = creds["alipay"]["app_id"]
    settings.ALIPAY_PRIVATE_KEY, settings.ALIPAY_PUBLIC_KEY = "", ""
    settings.ALIPAY_PRIVATE_KEY_PATH = str(sandbox.path("alipay/app_private_key.pem"))
    settings.ALIPAY_PUBLIC_KEY_PATH = str(sandbox.path("alipay/alipay_public_key.pem"))
    settings.ALIPAY_GATEWAY = "https://openapi.alipay.com/gateway.do"
    settings.ALIPAY_NOTIFY_URL = f"https://{HOST}/api/v1/payments/notify/alipay/"
    settings.ALIPAY_RETURN_URL = f"https://{HOST}/api/v1/payments/return/alipay/"
    settings.WALLYT_MCH_ID = creds["wallyt"]["mch_id"]
    settings.WALLYT_SECRET_KEY = sandbox.read("wallyt/secret_key").strip()
    settings.WALLYT_SIGN_TYPE = "MD5"
    settings.WALLYT_API_URL = "https://gateway.wepayez.com/pay/gateway"
    settings.WALLYT_NOTIFY_URL = f"https://{HOST}/api/v1/payments/notify/wallyt/"
    settings.WECHAT_MINI_APPID = creds["wechat"]["mini_appid"]
    return settings


def found(**kwargs) -> dict[str, str]:
    """id -> message of what the doctor reports (errors, warnings and infos)."""
    return {message.id: f"{message.msg} | {message.hint}" for message in doctor.run_gateway_checks(**kwargs)}


def test_a_correct_live_configuration_passes(live, db):
    assert found(databases=["default"]) == {}


def test_manage_py_check_deploy_runs_the_doctor(live):
    live.WECHAT_PAY_API_V3_KEY = "too-short"
    with pytest.raises(SystemCheckError, match=r"(?s)payments\.E004.*WECHAT_PAY_API_V3_KEY is 9 bytes"):
        call_command("check", "--deploy", "--fail-level", "ERROR")


def test_nothing_is_checked_for_a_channel_nobody_configured(live):
    for name in (*doctor.WECHAT, *doctor.ALIPAY, *doctor.WALLYT):
        setattr(live, name, "")
    live.PUBLIC_BASE_URL = "http://127.0.0.1:8000"  # the defaults of an unconfigured system stay quiet
    assert found() == {}


def mutate(live, case: str, tmp: Path) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    merchant = serialization.load_pem_private_key(Path(live.WECHAT_PAY_PRIVATE_KEY_PATH).read_bytes(), None)
    serial = int(live.WECHAT_PAY_SERIAL_NO, 16)
    match case:
        case "wechat half configured":
            live.WECHAT_PAY_API_V3_KEY = ""
        case "alipay half configured":
            live.ALIPAY_PUBLIC_KEY_PATH = ""
        case "wallyt half configured":
            live.WALLYT_SECRET_KEY = ""
        case "key file missing":
            live.WECHAT_PAY_PRIVATE_KEY_PATH = str(tmp / "no-such-key.pem")
        case "public key for private":
            live.WECHAT_PAY_PRIVATE_KEY_PATH = write(tmp / "pub.pem", public_pem(merchant))
        case "alipay key garbage":
            live.ALIPAY_PRIVATE_KEY = "paste the key here"
        case "cert not a cert":
            live.WECHAT_PAY_CERT_PATH = write(tmp / "cert.pem", private_pem(merchant))
        case "apiv3 key length":
            live.WECHAT_PAY_API_V3_KEY = "x" * 31
        case "serial mismatch":
            live.WECHAT_PAY_SERIAL_NO = format(serial + 1, "X")
        case "key not the certificate's":
            live.WECHAT_PAY_PRIVATE_KEY_PATH = write(tmp / "other.pem", private_pem(other))
        case "certificate expired":
            live.WECHAT_PAY_CERT_PATH = write(tmp / "c.pem", certificate(merchant, serial=serial, days_left=-1))
        case "certificate expires soon":
            live.WECHAT_PAY_CERT_PATH = write(tmp / "c.pem", certificate(merchant, serial=serial, days_left=5))
        case "public key id format":
            live.WECHAT_PAY_PUBLIC_KEY_ID = format(serial, "X")  # a certificate serial instead
        case "platform cert dir empty":
            live.WECHAT_PAY_PUBLIC_KEY_PATH, live.WECHAT_PAY_PUBLIC_KEY_ID = "", ""
            (tmp / "certs").mkdir()
            live.WECHAT_PAY_PLATFORM_CERT_DIR = str(tmp / "certs")
        case "notify url relative":
            live.WECHAT_PAY_NOTIFY_URL = "/api/v1/payments/notify/wechat/"
        case "notify url http":
            live.ALIPAY_NOTIFY_URL = f"http://{HOST}/api/v1/payments/notify/alipay/"
        case "notify url loopback":
            live.WALLYT_NOTIFY_URL = "https://127.0.0.1/api/v1/payments/notify/wallyt/"
            live.ALLOWED_HOSTS = [HOST, "127.0.0.1"]
        case "notify url elsewhere":
            live.WECHAT_PAY_NOTIFY_URL = f"https://{HOST}/notify/wechat"
        case "notify url of another gateway":
            live.ALIPAY_NOTIFY_URL = f"https://{HOST}/api/v1/payments/notify/wechat/"
        case "return url elsewhere":
            live.ALIPAY_RETURN_URL = f"https://{HOST}/api/v1/payments/notify/alipay/"
        case "notify host not allowed":
            live.WECHAT_PAY_NOTIFY_URL = "https://api.example.org/api/v1/payments/notify/wechat/"
        case "api base http":
            live.ALIPAY_GATEWAY = "http://openapi.alipay.com/gateway.do"
        case "alipay public key is the app's":
            live.ALIPAY_PUBLIC_KEY = Path(live.ALIPAY_PRIVATE_KEY_PATH).read_text()
            live.ALIPAY_PUBLIC_KEY = public_pem(
                serialization.load_pem_private_key(live.ALIPAY_PUBLIC_KEY.encode(), None)
            )
            live.ALIPAY_PUBLIC_KEY = live.ALIPAY_PUBLIC_KEY.decode()
        case "alipay RSA 1024":
            small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
            live.ALIPAY_PRIVATE_KEY = private_pem(small).decode()
        case "wallyt sign type":
            live.WALLYT_SIGN_TYPE = "SHA1"
        case "wallyt rsa keys missing":
            live.WALLYT_SIGN_TYPE = "RSA_1_256"
        case "wallyt rsa platform key is ours":
            live.WALLYT_SIGN_TYPE = "RSA_1_256"
            live.WALLYT_PRIVATE_KEY_PATH = write(tmp / "w.pem", private_pem(other))
            live.WALLYT_PLATFORM_PUBLIC_KEY_PATH = write(tmp / "wp.pem", public_pem(other))
        case "mchid not digits":
            live.WECHAT_PAY_MCHID = "mch-1900000109"
        case "serial not hex":
            live.WECHAT_PAY_SERIAL_NO = "serial-from-the-wrong-field"
        case "no merchant certificate":
            live.WECHAT_PAY_CERT_PATH = ""
        case _:
            raise AssertionError(case)


MISTAKES = {  # case -> (check id, text the message must carry)
    "wechat half configured": ("payments.E001", "WECHAT_PAY_API_V3_KEY"),
    "alipay half configured": ("payments.E001", "ALIPAY_PUBLIC_KEY"),
    "wallyt half configured": ("payments.E001", "WALLYT_SECRET_KEY"),
    "key file missing": ("payments.E002", "WECHAT_PAY_PRIVATE_KEY_PATH"),
    "public key for private": ("payments.E003", "public key where the private key is expected"),
    "alipay key garbage": ("payments.E003", "ALIPAY_PRIVATE_KEY"),
    "cert not a cert": ("payments.E003", "WECHAT_PAY_CERT_PATH is not a PEM certificate"),
    "apiv3 key length": ("payments.E004", "WECHAT_PAY_API_V3_KEY is 31 bytes"),
    "serial mismatch": ("payments.E005", "Set WECHAT_PAY_SERIAL_NO="),
    "key not the certificate's": ("payments.E006", "WECHAT_PAY_PRIVATE_KEY_PATH is not the private key"),
    "certificate expired": ("payments.E007", "expired"),
    "certificate expires soon": ("payments.W007", "expires on"),
    "public key id format": ("payments.E008", "PUB_KEY_ID_"),
    "platform cert dir empty": ("payments.E009", "WECHAT_PAY_PLATFORM_CERT_DIR"),
    "notify url relative": ("payments.E010", "WECHAT_PAY_NOTIFY_URL"),
    "notify url http": ("payments.E011", "ALIPAY_NOTIFY_URL"),
    "notify url loopback": ("payments.E011", "not a public address"),
    "notify url elsewhere": ("payments.E012", "/api/v1/payments/notify/wechat/"),
    "notify url of another gateway": ("payments.E012", "/api/v1/payments/notify/alipay/"),
    "return url elsewhere": ("payments.E012", "/api/v1/payments/return/alipay/"),
    "notify host not allowed": ("payments.E013", "DJANGO_ALLOWED_HOSTS"),
    "api base http": ("payments.E011", "ALIPAY_GATEWAY"),
    "alipay public key is the app's": ("payments.E014", "Alipay public key (支付宝公钥)"),
    "alipay RSA 1024": ("payments.E015", "1024-bit"),
    "wallyt sign type": ("payments.E016", "WALLYT_SIGN_TYPE"),
    "wallyt rsa keys missing": ("payments.E001", "WALLYT_PRIVATE_KEY_PATH"),
    "wallyt rsa platform key is ours": ("payments.E014", "WALLYT_PLATFORM_PUBLIC_KEY_PATH"),
    "mchid not digits": ("payments.E017", "WECHAT_PAY_MCHID"),
    "serial not hex": ("payments.E018", "openssl x509"),
    "no merchant certificate": ("payments.I019", "WECHAT_PAY_CERT_PATH"),
}


@pytest.mark.parametrize("case", list(MISTAKES))
def test_each_mistake_is_named_with_its_fix(live, case, tmp_path):
    mutate(live, case, tmp_path)

    reported = found()

    check_id, text = MISTAKES[case]
    assert check_id in reported, reported
    assert text in reported[check_id]
    assert set(reported) == {check_id}, reported  # one mistake, one message: nothing else is blamed


def test_a_wallyt_rsa_configuration_with_its_own_keys_passes(live, sandbox):
    live.WALLYT_SIGN_TYPE, live.WALLYT_SECRET_KEY = "RSA_1_256", ""
    live.WALLYT_PRIVATE_KEY_PATH = str(sandbox.path("alipay/app_private_key.pem"))  # any two RSA pairs will do
    live.WALLYT_PLATFORM_PUBLIC_KEY_PATH = str(sandbox.path("alipay/alipay_public_key.pem"))
    assert found() == {}


def test_certificate_mode_with_a_platform_certificate_passes(live, sandbox, tmp_path):
    live.WECHAT_PAY_PUBLIC_KEY_PATH, live.WECHAT_PAY_PUBLIC_KEY_ID = "", ""
    (tmp_path / "certs").mkdir()
    shutil.copy(sandbox.path("wechat/platform_cert.pem"), tmp_path / "certs" / "platform.pem")
    live.WECHAT_PAY_PLATFORM_CERT_DIR = str(tmp_path / "certs")
    assert found() == {}


def test_the_sandbox_profile_in_production_accepts_http_urls(live):
    live.SANDBOX_ENABLED = True  # docker compose --profile sandbox: staging, never real money
    live.ALIPAY_NOTIFY_URL = "http://web:8000/api/v1/payments/notify/alipay/"
    live.ALLOWED_HOSTS = [HOST, "web"]
    assert found() == {}


def test_a_clock_before_this_code_existed_is_an_error(live, monkeypatch):
    monkeypatch.setattr(doctor, "CLOCK_FLOOR", dt.datetime.now(dt.UTC) + dt.timedelta(days=1))
    reported = found()
    assert set(reported) == {"payments.E020"} and "NTP" in reported["payments.E020"]


@pytest.mark.parametrize(("warning", "error", "expected"), [(0, 3600, "payments.W021"), (0, 0, "payments.E021")])
def test_a_clock_apart_from_the_databases_is_reported(live, db, monkeypatch, warning, error, expected):
    # the two clocks differ by the time a query takes: thresholds at zero make that difference count
    monkeypatch.setattr(doctor, "CLOCK_SKEW_WARNING", dt.timedelta(seconds=warning))
    monkeypatch.setattr(doctor, "CLOCK_SKEW_ERROR", dt.timedelta(seconds=error))
    reported = found(databases=["default"])
    assert set(reported) == {expected} and "database server" in reported[expected]


def test_development_judges_the_values_the_gateways_will_use(live, sandbox):
    """With the sandbox on, an empty setting is the sandbox's generated one (the registry fills it):
    setting only the Alipay key path is a whole configuration, as `make run` uses it."""
    for name in (*doctor.WECHAT, *doctor.ALIPAY, *doctor.WALLYT, "ALIPAY_APP_ID"):
        setattr(live, name, "")
    live.PRODUCTION, live.SANDBOX_ENABLED, live.SANDBOX_DATA_DIR = False, True, sandbox.data_dir
    live.ALIPAY_PRIVATE_KEY_PATH = str(sandbox.path("alipay/app_private_key.pem"))
    assert found() == {}
    live.SANDBOX_ENABLED = False  # without the sandbox the same setting is half a configuration
    assert "payments.E001" in found()
