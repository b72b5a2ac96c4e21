"""Production settings (`check --deploy` clean) and the docker-compose topology."""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest
import yaml

BASE_DIR = Path(__file__).resolve().parents[2]
PRODUCTION_ENV = {
    "APP_ENV": "production",
    "DJANGO_SECRET_KEY": secrets.token_urlsafe(50)[:50],
    "DJANGO_ALLOWED_HOSTS": "pay.example.com",
}


def run(args: list[str], **env: str) -> subprocess.CompletedProcess:
    """Run with a clean slate of project variables (a developer's .env-like exports do not leak in)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "APP_", "LOG_", "REDIS_", "SANDBOX_"))}
    return subprocess.run(
        [sys.executable, *args],
        cwd=BASE_DIR,
        env={**base, "DJANGO_SETTINGS_MODULE": "config.settings", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


# --- check --deploy ---------------------------------------------------------------------------
def test_check_deploy_is_clean_with_a_production_env():
    result = run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], **PRODUCTION_ENV)

    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "System check identified no issues" in output
    assert "WARNING" not in output


def test_check_deploy_fails_on_a_weakened_production_env():
    """The check above can fail: turning the HTTPS redirect off is reported."""
    result = run(
        ["manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        **PRODUCTION_ENV,
        DJANGO_SECURE_SSL_REDIRECT="false",
    )

    assert result.returncode != 0
    assert "security.W008" in result.stdout + result.stderr


def test_production_refuses_to_start_without_a_secret_key():
    env = {k: v for k, v in PRODUCTION_ENV.items() if k != "DJANGO_SECRET_KEY"}

    result = run(["manage.py", "check"], **env)

    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY" in result.stderr


DUMP = """
import json
from django.conf import settings
print(json.dumps({
    "DEBUG": settings.DEBUG,
    "SANDBOX_ENABLED": settings.SANDBOX_ENABLED,
    "LOG_FORMAT": settings.LOG_FORMAT,
    "SESSION_COOKIE_SECURE": settings.SESSION_COOKIE_SECURE,
    "SECURE_SSL_REDIRECT": settings.SECURE_SSL_REDIRECT,
    "SECURE_REDIRECT_EXEMPT": settings.SECURE_REDIRECT_EXEMPT,
    "METRICS_TOKEN": settings.METRICS_TOKEN,
    "CACHE": settings.CACHES["default"]["BACKEND"],
    "BROKER": settings.CELERY_BROKER_URL,
    "HIJACK": settings.CELERY_WORKER_HIJACK_ROOT_LOGGER,
}))
"""


@cache
def production_settings() -> dict:
    result = run(["-c", DUMP], **PRODUCTION_ENV, METRICS_TOKEN="tok")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_production_settings():
    values = production_settings()

    assert values["DEBUG"] is False
    assert values["SANDBOX_ENABLED"] is False
    assert values["LOG_FORMAT"] == "json"
    assert values["SESSION_COOKIE_SECURE"] is True
    assert values["SECURE_SSL_REDIRECT"] is True
    assert values["METRICS_TOKEN"] == "tok"
    assert values["HIJACK"] is False  # Celery workers keep the JSON log format
    # no REDIS_URL: the embedded choices (compose always sets REDIS_URL)
    assert values["CACHE"] == "django.core.cache.backends.db.DatabaseCache"
    assert values["BROKER"] == "filesystem://"


@pytest.mark.django_db
def test_health_and_metrics_are_not_redirected_to_https(client, settings):
    """Container health checks and Prometheus speak plain HTTP inside the network."""
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_REDIRECT_EXEMPT = production_settings()["SECURE_REDIRECT_EXEMPT"]
    settings.METRICS_TOKEN = ""

    assert client.get("/healthz").status_code == 200
    assert client.get("/metrics").status_code == 200
    assert client.get("/api/v1/lockers/cabinets/").status_code == 301


# --- docker-compose.yml -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((BASE_DIR / "docker-compose.yml").read_text())


def command(service: dict) -> str:
    cmd = service["command"]
    return cmd if isinstance(cmd, str) else " ".join(cmd)


def test_compose_has_the_services(compose):
    services = compose["services"]

    assert set(services) == {
        "postgres",
        "redis",
        "migrate",
        "web",
        "worker",
        "beat",
        "sandbox",
        "prometheus",
        "grafana",
    }
    assert services["sandbox"]["profiles"] == ["sandbox"]
    assert {name: s["profiles"] for name, s in services.items() if "profiles" in s} == {
        "sandbox": ["sandbox"],
        "prometheus": ["monitoring"],
        "grafana": ["monitoring"],
    }
    assert services["postgres"]["image"].startswith("postgres:")
    assert services["redis"]["image"].startswith("redis:")
    for name in ("postgres", "redis"):
        assert services[name]["healthcheck"]["test"]
        assert services[name]["volumes"]


def test_compose_commands(compose):
    services = compose["services"]

    # gunicorn's settings (config/gunicorn.py): every worker's request metrics in one /metrics answer
    assert command(services["web"]).startswith("gunicorn -c python:config.gunicorn config.wsgi --bind=0.0.0.0:8000")
    assert (BASE_DIR / "config" / "gunicorn.py").exists()
    assert '"-c", "python:config.gunicorn", "config.wsgi"' in (BASE_DIR / "Dockerfile").read_text()
    assert command(services["worker"]).startswith("celery -A config --quiet worker")
    beat = command(services["beat"])
    assert beat.startswith("celery -A config --quiet beat")
    assert "--scheduler=django_celery_beat.schedulers:DatabaseScheduler" in beat
    assert services["beat"]["deploy"]["replicas"] == 1
    migrate = command(services["migrate"])
    assert "manage.py check --deploy --fail-level ${DEPLOY_CHECK_FAIL_LEVEL:-WARNING}" in migrate
    assert migrate.endswith("manage.py migrate --noinput")
    assert command(services["sandbox"]).startswith("python -m sandbox --host 0.0.0.0 --port 8100")
    assert "appendonly" in command(services["redis"])
    # what the commands name exists
    assert (BASE_DIR / "config" / "wsgi.py").exists()
    assert (BASE_DIR / "sandbox" / "__main__.py").exists()
    assert "config.wsgi" in (BASE_DIR / "Dockerfile").read_text()


def test_compose_app_environment(compose):
    services = compose["services"]
    for name in ("migrate", "web", "worker", "beat"):
        service = services[name]
        env = service["environment"]
        assert service["build"] == "."
        assert env["APP_ENV"] == "production"
        assert env["REDIS_URL"] == "redis://redis:6379/0"
        assert re.fullmatch(
            r"postgres://locker:\$\{POSTGRES_PASSWORD:\?[^}]+\}@postgres:5432/locker", env["DATABASE_URL"]
        )
        assert env["DJANGO_SECRET_KEY"].startswith("${DJANGO_SECRET_KEY:?")  # required, never a literal
        assert env["LOG_FORMAT"] == "json"
        assert env["SANDBOX_ENABLED"] == "${SANDBOX_ENABLED:-false}"
        if name != "migrate":
            assert service["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
            assert service["depends_on"]["postgres"] == {"condition": "service_healthy"}
            assert service["depends_on"]["redis"] == {"condition": "service_healthy"}
    assert services["sandbox"]["environment"]["SANDBOX_ENABLED"] == "true"
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD"].startswith("${POSTGRES_PASSWORD:?")


def test_compose_variables_are_documented(compose):
    """Every ${VARIABLE} the compose file reads is in .env.example."""
    text = (BASE_DIR / "docker-compose.yml").read_text()
    used = set(re.findall(r"\$\{([A-Z0-9_]+)", text))
    documented = set(re.findall(r"^([A-Z0-9_]+)=", (BASE_DIR / ".env.example").read_text(), re.MULTILINE))

    assert used
    assert used <= documented, f"not in .env.example: {sorted(used - documented)}"
