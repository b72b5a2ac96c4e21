"""Keys in every form Alipay's console hands out are read into one PEM, and the Alipay adapter
signs with them, through the sandbox, whatever the form."""

from __future__ import annotations

import base64
import textwrap

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from core.errors import ChannelNotConfigured
from payments.gateways.keys import KeyFormatError, key_pem, load_private_key, load_public_key
from payments.gateways.registry import get_gateway, reset_gateways
from payments.tests.gateways.conftest import vector_text

KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _pem(der: bytes, label: str) -> str:
    body = "\n".join(textwrap.wrap(base64.b64encode(der).decode(), 64))
    return f"-----BEGIN {label}-----\n{body}\n-----END {label}-----\n"


def private_forms(key: rsa.RSAPrivateKey) -> dict[str, str]:
    """Every form of a private key seen in Alipay's console, its key tool and environment variables."""
    pkcs1 = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.TraditionalOpenSSL, _NONE)
    pkcs8 = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, _NONE)
    one_line_pkcs8 = base64.b64encode(pkcs8).decode()
    return {
        "PKCS#1 PEM": _pem(pkcs1, "RSA PRIVATE KEY"),
        "PKCS#8 PEM": _pem(pkcs8, "PRIVATE KEY"),
        "PKCS#1 without headers, wrapped": "\n".join(textwrap.wrap(base64.b64encode(pkcs1).decode(), 64)),
        "PKCS#1 one line": base64.b64encode(pkcs1).decode(),
        "PKCS#8 one line (the key tool's copy button)": one_line_pkcs8,
        "PKCS#8 one line with headers": f"-----BEGIN PRIVATE KEY----- {one_line_pkcs8} -----END PRIVATE KEY-----",
        "PEM with literal \\n (an environment variable)": _pem(pkcs8, "PRIVATE KEY").replace("\n", "\\n"),
        "PEM with CRLF and blank lines around": "\r\n" + _pem(pkcs1, "RSA PRIVATE KEY").replace("\n", "\r\n") + "\r\n",
        "quoted one line": f'"{one_line_pkcs8}"',
    }


def public_forms(key: rsa.RSAPrivateKey) -> dict[str, str]:
    public = key.public_key()
    spki = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    pkcs1 = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
    one_line = base64.b64encode(spki).decode()
    return {
        "SPKI PEM": _pem(spki, "PUBLIC KEY"),
        "SPKI one line (the console's Alipay public key)": one_line,
        "PKCS#1 PEM": _pem(pkcs1, "RSA PUBLIC KEY"),
        "SPKI one line with headers": f"-----BEGIN PUBLIC KEY----- {one_line} -----END PUBLIC KEY-----",
    }


_NONE = serialization.NoEncryption()
CANONICAL_PRIVATE = KEY.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, _NONE).decode()
CANONICAL_PUBLIC = (
    KEY.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
)


@pytest.mark.parametrize("form", list(private_forms(KEY)))
def test_every_private_key_form_reads_as_one_pem(form):
    assert key_pem(private_forms(KEY)[form]) == CANONICAL_PRIVATE


@pytest.mark.parametrize("form", list(public_forms(KEY)))
def test_every_public_key_form_reads_as_one_pem(form):
    assert key_pem(public_forms(KEY)[form]) == CANONICAL_PUBLIC


def test_published_vectors_read(vectors):
    assert "BEGIN PRIVATE KEY" in key_pem(vector_text("fzlee_app_app_private_key.pem"))  # PKCS#1 file
    assert "BEGIN PUBLIC KEY" in key_pem(vector_text("alipaynode_alipay-public-key.pem"))
    # a certificate stands for its public key (Alipay's certificate mode, WeChat Pay platform certificates)
    cert_key = load_public_key(vector_text("go_cert_D7CE59D1F522D701.pem"))
    assert cert_key.key_size == 2048


@pytest.mark.parametrize(
    ("text", "loader", "said"),
    [
        ("", load_private_key, "empty"),
        ("/etc/secrets/alipay.pem", load_private_key, "neither PEM nor base64"),
        (CANONICAL_PUBLIC, load_private_key, "public key where the private key is expected"),
        (
            base64.b64encode(base64.b64decode("".join(CANONICAL_PUBLIC.splitlines()[1:-1]))).decode(),
            load_private_key,
            "public key where the private key is expected",
        ),
        (CANONICAL_PRIVATE, load_public_key, "private key where the public key is expected"),
        ("".join(CANONICAL_PRIVATE.splitlines()[1:-1]), load_public_key, "private key where the public key"),
        ("MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA" + "x" * 10, load_public_key, "not an RSA public key"),
        (
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----",
            load_private_key,
            "encrypted",
        ),
    ],
)
def test_what_is_not_a_key_of_the_kind_asked_for_is_named(text, loader, said):
    with pytest.raises(KeyFormatError, match=said):
        loader(text)


def test_an_ec_key_is_refused_by_name():
    ec_key = ec.generate_private_key(ec.SECP256R1())
    pem = ec_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, _NONE).decode()
    with pytest.raises(KeyFormatError, match="not an RSA key"):
        load_private_key(pem)


ALIPAY_PRIVATE_FORMS = list(private_forms(KEY))


@pytest.mark.parametrize("form", ALIPAY_PRIVATE_FORMS)
def test_the_alipay_adapter_signs_with_the_key_in_every_form(gateways, settings, form):
    # given the sandbox's app key pasted inline, in one of the console's forms
    app_key = load_private_key(gateways.read("alipay/app_private_key.pem"))
    alipay_public = gateways.read("alipay/alipay_public_key.pem")
    settings.ALIPAY_PRIVATE_KEY = private_forms(app_key)[form]
    settings.ALIPAY_PUBLIC_KEY = public_forms_of(alipay_public)["SPKI one line (the console's Alipay public key)"]
    reset_gateways()

    # when the adapter queries a trade, the sandbox accepts our signature and we verify its answer
    from core.errors import TradeNotFound

    with pytest.raises(TradeNotFound):
        get_gateway("alipay").query("NO-SUCH-TRADE")


def public_forms_of(pem: str) -> dict[str, str]:
    public = load_public_key(pem)
    spki = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return {"SPKI one line (the console's Alipay public key)": base64.b64encode(spki).decode()}


def test_an_unreadable_alipay_key_names_the_setting(gateways, settings):
    settings.ALIPAY_PRIVATE_KEY = "MIIE-this-is-not-a-key"
    reset_gateways()
    with pytest.raises(ChannelNotConfigured, match="ALIPAY_PRIVATE_KEY cannot be read: the key is neither PEM"):
        get_gateway("alipay")
