"""Monitoring an operator can switch on: the alerting rules (promtool checks them and fires each on made-up
series), every metric the rules and the Grafana dashboard read is one /metrics exports, the compose
profile that loads both, and the README's metrics table."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from conftest import skip_group
from payments.models import GatewayNotification

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "deploy/prometheus/alerts.yml"
ALERT_TESTS = ROOT / "deploy/prometheus/alerts_test.yml"
DASHBOARD = ROOT / "deploy/grafana/locker-payments.json"
COMPOSE = ROOT / "docker-compose.yml"
# a metric Prometheus makes itself for each scrape target
SYNTHETIC = {"up"}
_METRIC = re.compile(r"\b(up|(?:locker|django)_[a-z0-9_]+)\b")


def _promtool() -> str:
    binary = shutil.which("promtool")
    if binary is None:
        skip_group("promtool", "promtool is not installed")
    return binary


def _run(*args: str) -> str:
    done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_promtool_accepts_the_rules():
    out = _run(_promtool(), "check", "rules", str(ALERTS))
    assert "SUCCESS" in out


def test_each_alert_fires_on_the_series_it_is_for():
    out = _run(_promtool(), "test", "rules", str(ALERT_TESTS))
    assert "SUCCESS" in out


def _rules() -> list[dict]:
    return [rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]


def test_the_rules_cover_seed_001_and_the_operations_alerts():
    rules = {rule["alert"]: rule for rule in _rules()}
    assert len(rules) == len(_rules()), "alert names are unique"
    for name in (
        "PaymentFailureRateHigh",  # seed 001: payment failures > 5%
        "WebhookDeliveryFailures",  # seed 001
        "ApiErrorRateHigh",  # seed 001: API errors
        "RefundRateUnusual",  # seed 001: unusual refund patterns
        "RefundAmountSpike",
        "OrdersStuck",
        "RefundsOverdue",
        "RefundsStuckProcessing",
        "NotificationVerifyFailures",
        "NotificationApplyLagHigh",
        "BillDiscrepanciesOpen",
    ):
        assert name in rules, name
    for rule in rules.values():
        assert rule["labels"]["severity"] in ("critical", "warning"), rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
    assert "0.05" in rules["PaymentFailureRateHigh"]["expr"]
    tested = {
        case["alertname"]
        for test in yaml.safe_load(ALERT_TESTS.read_text())["tests"]
        for case in test["alert_rule_test"]
    }
    assert {"PaymentFailureRateHigh", "WebhookDeliveryFailures", "ApiErrorRateHigh", "OrdersStuck"} <= tested


def _dashboard_exprs() -> list[str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [target["expr"] for panel in panels for target in panel.get("targets", [])]


@pytest.fixture
def exported(client, user_api, settings) -> set[str]:
    """Every metric name /metrics exports (families and samples), after a few requests and notifications."""
    settings.METRICS_TOKEN = ""
    user_api.get("/api/v1/orders/")
    user_api.get("/api/v1/orders/NOPE/")
    GatewayNotification.objects.create(gateway="wechat", body=b"{}", verified=False)
    text = client.get("/metrics").content.decode()
    names = set()
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        names.update(sample.name for sample in family.samples)
        if family.type == "counter":
            names.add(family.name + "_total")
        if family.type in ("histogram", "summary"):
            names.update(family.name + suffix for suffix in ("_bucket", "_sum", "_count"))
    return names


@pytest.mark.django_db
def test_every_metric_the_rules_and_the_dashboard_read_is_exported(exported):
    used = {name for expr in [r["expr"] for r in _rules()] + _dashboard_exprs() for name in _METRIC.findall(expr)}
    assert used - SYNTHETIC, "the expressions name metrics"
    missing = sorted(used - exported - SYNTHETIC)
    assert not missing, f"not on /metrics: {missing}"


def test_the_dashboard_is_a_grafana_dashboard_over_prometheus():
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "locker-payments" and dashboard["title"]
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    titles = " ".join(panel["title"] for panel in dashboard["panels"]).lower()
    for seed_metric in (
        "payment success rate",
        "average payment time",
        "refund rate",
        "webhook delivery",
        "api error rate",
    ):
        assert seed_metric in titles, seed_metric
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["type"] == "prometheus" and panel["targets"], panel["title"]


def test_the_monitoring_profile_loads_prometheus_and_grafana():
    compose = yaml.safe_load(COMPOSE.read_text())
    services = compose["services"]
    for name in ("prometheus", "grafana"):
        assert services[name]["profiles"] == ["monitoring"], name
        for volume in services[name]["volumes"]:
            source = volume.split(":", 1)[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), volume
    assert any(v.endswith("/etc/prometheus/alerts.yml:ro") for v in services["prometheus"]["volumes"])
    assert any("locker-payments.json" in v for v in services["grafana"]["volumes"])
    assert compose["secrets"]["metrics_token"] == {"environment": "METRICS_TOKEN"}
    # the other services stay out of the profile: `docker compose up` alone is unchanged
    assert all("profiles" not in services[s] for s in ("web", "worker", "beat", "postgres", "redis"))
    prometheus = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    assert prometheus["rule_files"] == ["/etc/prometheus/alerts.yml"]
    job = prometheus["scrape_configs"][0]
    assert job["job_name"] == "locker-payments" and job["static_configs"][0]["targets"] == ["web:8000"]
    assert job["authorization"]["credentials_file"] == "/run/secrets/metrics_token"
    for path in (ROOT / "deploy/grafana/provisioning").rglob("*.yml"):
        assert yaml.safe_load(path.read_text())["apiVersion"] == 1, path


@pytest.mark.django_db
def test_the_readme_metrics_table_lists_every_locker_metric(client, settings):
    settings.METRICS_TOKEN = ""
    text = client.get("/metrics").content.decode()
    families = {
        family.name + ("_total" if family.type == "counter" else "")
        for family in text_string_to_metric_families(text)
        if family.name.startswith("locker_")
    }
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("| metric | type | what |") :].split("\n\n", 1)[0]
    documented = set(re.findall(r"`(locker_[a-z0-9_]+)", table))
    assert families == documented
