"""Every dashboard query, evaluated by a real Prometheus scraping the agent's real metrics, returns series;
and that Prometheus loads the alert rules and evaluates each without error.

The agent's side is its own registry (``Metrics`` and the scrape-time ``HostCollector``) fed the events a
daemon feeds it (attaches, steps, array requests, reconciler passes) and a host with a session and a
multipath map, served over HTTP on loopback; Debian's ``prometheus`` scrapes it every second. This is
not the daemon in the VM: the queries meet the metrics' real names, labels and types, not a real host.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pytest
from prometheus_client import make_wsgi_app

from iscsi_agent.metrics import HostCollector, Metrics
from iscsi_agent.portal import Portal
from tests.monitoring.prometheus import start as start_prometheus
from tests.monitoring.test_rules import alert_queries, dashboard_queries

pytestmark = pytest.mark.allow_subprocess
DEADLINE = 90.0  # Prometheus starts in about a second; rates need two scrapes


@dataclass(frozen=True)
class _Session:
    state: str
    portal: Portal | None


@dataclass(frozen=True)
class _Map:
    name: str
    slaves: tuple[str, ...]


class _Host:
    def current(self) -> list[_Session]:
        return [_Session("LOGGED_IN", Portal("192.0.2.10")), _Session("FAILED", Portal("192.0.2.11"))]

    def maps(self) -> list[_Map]:
        return [_Map("3600a098038303053453f463045453130", ("sdb", "sdc"))]


def feed(metrics: Metrics) -> None:
    """One round of what a working agent reports, so every rate has something to count."""
    metrics.finished("attach", 2.5, None)
    metrics.finished("attach", 30.0, "iscsi_login_failed")
    metrics.finished("detach", 1.0, None)
    for step in ("igroup", "map", "login", "scan", "wait_device", "verify"):
        metrics.step("attach", step, 0.2)
    metrics.step("detach", "remove_paths", 0.1)
    metrics.array_request("rest", "ok", 0.05)
    metrics.array_request("rest", "array_timeout", 10.0)
    metrics.commands.labels("iscsiadm", "node-login", "0").inc()
    metrics.identity_mismatch()
    metrics.reconcile_action("remove_device", "lun_unmapped", "done")
    metrics.reconcile_pass(0.3, held=1, failed=False)


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002  (wsgiref's name)
        pass


@pytest.fixture
def agent_metrics() -> Iterator[tuple[Metrics, int]]:
    metrics = Metrics()
    host = _Host()
    metrics.registry.register(HostCollector(host, lambda: 3, host))  # type: ignore[arg-type]
    server = make_server("127.0.0.1", 0, make_wsgi_app(metrics.registry), handler_class=_Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield metrics, server.server_port
    server.shutdown()
    server.server_close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def prometheus(tmp_path: Path, agent_metrics: tuple[Metrics, int]) -> Iterator[str]:
    _, agent_port = agent_metrics
    port = free_port()
    process = start_prometheus(tmp_path, f"127.0.0.1:{agent_port}", f"127.0.0.1:{port}")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=30)


def api(base: str, path: str, **params: str) -> dict[str, object]:
    url = f"{base}/api/v1/{path}" + (f"?{urllib.parse.urlencode(params)}" if params else "")
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return json.loads(response.read())  # type: ignore[no-any-return]
    except OSError as exc:  # not listening yet
        return {"status": "unreachable", "error": str(exc)}


def test_every_dashboard_query_returns_series_from_a_real_scrape(prometheus, agent_metrics):
    metrics, _ = agent_metrics
    queries = dashboard_queries()
    deadline = time.monotonic() + DEADLINE
    empty = queries
    while empty and time.monotonic() < deadline:
        feed(metrics)
        time.sleep(0.5)  # Prometheus scrapes on its own clock: there is nothing to wait on
        answers = {expr: api(prometheus, "query", query=expr) for _, expr in empty}
        errors = [f"{expr}: {a['error']}" for expr, a in answers.items() if a["status"] == "error"]
        assert not errors, errors
        empty = [(title, expr) for title, expr in empty if not answers[expr].get("data", {}).get("result")]  # type: ignore[union-attr]
    assert not empty, f"no series after {DEADLINE} s: {empty}"


def test_prometheus_loads_the_alert_rules_and_evaluates_each_without_error(prometheus, agent_metrics):
    metrics, _ = agent_metrics
    deadline = time.monotonic() + DEADLINE
    rules: list[dict[str, object]] = []
    while time.monotonic() < deadline:
        feed(metrics)
        time.sleep(0.5)
        answer = api(prometheus, "rules")
        if answer["status"] == "success":
            groups = answer["data"]["groups"]  # type: ignore[index]
            rules = [rule for group in groups for rule in group["rules"]]
            if rules and all(rule.get("lastEvaluation", "0001").startswith("2") for rule in rules):
                break
    assert len(rules) == len(alert_queries())
    assert {rule["name"]: rule["health"] for rule in rules} == {rule["name"]: "ok" for rule in rules}
