"""monitoring/: the alert rules pass `promtool check rules` and their unit tests (`promtool test rules`),
every dashboard panel's query parses as PromQL, and both name only metrics the agent exports.

promtool has no "parse this expression" command, so each panel query, its Grafana variables given
typical values, is wrapped as a recording rule and checked with `promtool check rules`. Whether the
queries return series against a real scrape is not proven here.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from iscsi_agent.metrics import HostCollector, Metrics

MONITORING = Path(__file__).resolve().parents[2] / "monitoring"
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h", "$instance": ".*"}
SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_sum", "_count"),
    "info": ("_info",),
    "gauge": ("",),
}
PROMETHEUS_OWN = {"up"}

pytestmark = pytest.mark.allow_subprocess


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    assert binary is not None, "promtool is missing: `make deps` installs Debian's prometheus package"
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=120, check=False)


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, query) for every target of every panel, Grafana's variables substituted."""
    dashboard = json.loads((MONITORING / "dashboard.json").read_text())
    queries = []
    for panel in dashboard["panels"]:
        assert panel["targets"], f"panel {panel['title']!r} has no query"
        for target in panel["targets"]:
            expr = target["expr"]
            for variable, value in GRAFANA_VARIABLES.items():
                expr = expr.replace(variable, value)
            assert "$" not in expr, f"panel {panel['title']!r}: a variable the test does not know: {expr}"
            queries.append((panel["title"], expr))
    return queries


def alert_queries() -> list[tuple[str, str]]:
    """(alert, expr) from alerts.yml, whose exprs are one line or a ``|`` block (no YAML library here)."""
    found: list[tuple[str, str]] = []
    lines = (MONITORING / "alerts.yml").read_text().splitlines()
    for n, line in enumerate(lines):
        if alert := re.fullmatch(r"\s*- alert: (\w+)", line):
            expr_line = next(i for i in range(n + 1, len(lines)) if lines[i].strip().startswith("expr:"))
            inline = lines[expr_line].split("expr:", 1)[1].strip()
            block = []
            if inline == "|":
                indent = len(lines[expr_line + 1]) - len(lines[expr_line + 1].lstrip())
                for more in lines[expr_line + 1 :]:
                    if more.strip() and len(more) - len(more.lstrip()) < indent:
                        break
                    block.append(more.strip())
            found.append((alert[1], inline if inline != "|" else " ".join(block).strip()))
    return found


class _NoSessions:
    def current(self) -> list[object]:
        return []


def exported_metric_names() -> set[str]:
    """Every sample name the agent's /metrics can show: its registry and the scrape-time collector."""
    families = list(Metrics().registry.collect())
    families += HostCollector(_NoSessions(), lambda: 0, None).collect()  # type: ignore[arg-type]
    return {family.name + suffix for family in families for suffix in SUFFIXES[family.type]}


def test_the_alert_rules_pass_promtool_check_rules():
    result = promtool("check", "rules", str(MONITORING / "alerts.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alert_queries())} rules found" in result.stdout


def test_the_alert_rules_pass_their_promtool_unit_tests():
    result = promtool("test", "rules", str(MONITORING / "alerts_test.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_has_a_promtool_unit_test_that_sees_it_fire_and_one_that_sees_it_silent():
    text = (MONITORING / "alerts_test.yml").read_text()
    fired = set(re.findall(r"alertname: (\w+)\n\s+exp_alerts:\n\s+- exp_labels:", text))
    silent = set(re.findall(r"alertname: (\w+)\n\s+exp_alerts: \[\]", text))
    assert fired == silent == {name for name, _ in alert_queries()}


def test_every_dashboard_query_parses_as_promql(tmp_path):
    queries = dashboard_queries()
    rules = [{"record": f"dashboard:query_{n}", "expr": expr} for n, (_, expr) in enumerate(queries)]
    path = tmp_path / "dashboard_queries.yml"
    path.write_text(json.dumps({"groups": [{"name": "dashboard", "rules": rules}]}))  # JSON is YAML
    result = promtool("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(queries)} rules found" in result.stdout


def test_a_broken_query_is_caught_by_the_same_check(tmp_path):
    path = tmp_path / "broken.yml"
    rule = {"record": "dashboard:broken", "expr": "sum by (operation (rate(x[5m]))"}
    path.write_text(json.dumps({"groups": [{"name": "dashboard", "rules": [rule]}]}))
    assert promtool("check", "rules", str(path)).returncode != 0


@pytest.mark.parametrize("source", ["dashboard", "alerts"])
def test_queries_name_only_metrics_the_agent_exports(source):
    exported = exported_metric_names() | PROMETHEUS_OWN
    queries = dashboard_queries() if source == "dashboard" else alert_queries()
    for title, expr in queries:
        names = set(re.findall(r"\b(iscsi_agent_\w+|up)\b(?=\s*[{\[)]|\s*$|\s*[-<>=!])", expr))
        assert names, f"{title}: no metric found in {expr}"
        assert names <= exported, f"{title}: {sorted(names - exported)} is not exported by the agent"


def test_the_dashboard_shows_what_an_operator_watches():
    titles = " / ".join(title for title, _ in dashboard_queries()).lower()
    for subject in (
        "attaches and detaches",
        "latency by step",
        "error code",
        "sessions",
        "paths",
        "stale devices",
        "reconciler actions",
        "array requests by result",
    ):
        assert subject in titles
