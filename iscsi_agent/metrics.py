"""The agent's Prometheus metrics, on a registry of its own (no process-global state).

Counters and histograms are fed where things happen (a step of an attach, a command run, an array
request); what is a state rather than an event (sessions, attachments, multipath paths) is read
from the host and the journal at scrape time by ``HostCollector``, so it cannot drift.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from importlib import metadata

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from iscsi_agent.host.command import CommandError, CommandResult, CommandRunner
from iscsi_agent.host.multipath import Multipath
from iscsi_agent.host.sessions import Sessions
from iscsi_agent.metrics_http import MetricsServer

log = logging.getLogger(__name__)

OPERATION_BUCKETS = (0.25, 0.5, 1, 2, 3, 5, 8, 13, 21, 34, 60, 120, 300)
STEP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.operation_seconds = Histogram(
            "iscsi_agent_operation_duration_seconds",
            "Time an attach or detach took, by outcome",
            ["operation", "outcome"],
            buckets=OPERATION_BUCKETS,
            registry=r,
        )
        self.operations = Counter(
            "iscsi_agent_operations",
            "Attaches and detaches by outcome and error code (empty when it succeeded)",
            ["operation", "outcome", "code"],
            registry=r,
        )
        self.step_seconds = Histogram(
            "iscsi_agent_step_duration_seconds",
            "Time one step of an attach or detach took (array, login, scan, device wait, verify, ...)",
            ["operation", "step"],
            buckets=STEP_BUCKETS,
            registry=r,
        )
        self.array_requests = Counter(
            "iscsi_agent_array_requests",
            "Requests to the array by API and result (ok, or the error code)",
            ["api", "result"],
            registry=r,
        )
        self.array_seconds = Histogram(
            "iscsi_agent_array_request_duration_seconds",
            "Latency of array requests by API",
            ["api"],
            buckets=STEP_BUCKETS,
            registry=r,
        )
        self.commands = Counter(
            "iscsi_agent_commands",
            "Programs run (iscsiadm, multipath) by operation and exit code (timeout, not_found)",
            ["program", "operation", "exit_code"],
            registry=r,
        )
        self.identity_mismatches = Counter(
            "iscsi_agent_identity_mismatches",
            "Devices found at a LUN id with another LUN's identity (a stale device after an id reuse)",
            registry=r,
        )
        self.reconcile_actions = Counter(
            "iscsi_agent_reconcile_actions",
            "Reconciler actions by action, reason and result (done, not_done, held, reported, planned)",
            ["action", "reason", "result"],
            registry=r,
        )
        self.reconcile_seconds = Histogram(
            "iscsi_agent_reconcile_pass_duration_seconds",
            "Time a reconciler pass took, by whether it could run",
            ["outcome"],
            buckets=STEP_BUCKETS,
            registry=r,
        )
        self.stale_devices_held = Gauge(
            "iscsi_agent_stale_devices_held",
            "Stale devices and multipath maps the last reconciler pass left because something holds them",
            registry=r,
        )
        self.last_reconcile = Gauge(
            "iscsi_agent_reconcile_last_pass_timestamp_seconds",
            "When the last reconciler pass that could run finished (Unix time)",
            registry=r,
        )
        self.build = Info("iscsi_agent_build", "The agent's version", registry=r)
        self.build.info({"version": _version()})

    def serve(self, listen: tuple[str, int]) -> MetricsServer:
        """Serve /metrics on ``listen`` (``iscsi_agent.metrics_http``: not prometheus-client's server)."""
        address, port = listen
        server = MetricsServer.listen(address, port, self.registry)
        server.start()
        log.info("metrics on http://%s:%s/metrics", address, port)
        return server

    # --- iscsi_agent.service.observe.Observer ---------------------------------------------
    def step(self, operation: str, step: str, seconds: float) -> None:
        self.step_seconds.labels(operation, step).observe(seconds)

    def identity_mismatch(self) -> None:
        self.identity_mismatches.inc()

    def array_request(self, api: str, result: str, seconds: float) -> None:
        self.array_requests.labels(api or "unknown", result).inc()
        self.array_seconds.labels(api or "unknown").observe(seconds)

    def finished(self, operation: str, seconds: float, code: str | None) -> None:
        outcome = "ok" if code is None else "failed"
        self.operation_seconds.labels(operation, outcome).observe(seconds)
        self.operations.labels(operation, outcome, code or "").inc()

    def reconcile_action(self, action: str, reason: str, result: str) -> None:
        self.reconcile_actions.labels(action, reason, result).inc()

    def reconcile_pass(self, seconds: float, held: int, failed: bool) -> None:
        self.reconcile_seconds.labels("failed" if failed else "ok").observe(seconds)
        if not failed:
            self.stale_devices_held.set(held)
            self.last_reconcile.set_to_current_time()


class MeteredRunner:
    """A CommandRunner that counts every program run by operation and exit code."""

    def __init__(self, runner: CommandRunner, metrics: Metrics) -> None:
        self._runner = runner
        self._metrics = metrics

    def __call__(self, argv: Sequence[str], *, timeout: float, secrets: Sequence[str] = ()) -> CommandResult:
        program, operation = _operation(argv)
        try:
            result = self._runner(argv, timeout=timeout, secrets=secrets)
        except CommandError as exc:
            self._metrics.commands.labels(program, operation, exc.code).inc()
            raise
        self._metrics.commands.labels(program, operation, str(result.exit_code)).inc()
        return result


def _operation(argv: Sequence[str]) -> tuple[str, str]:
    """("iscsiadm", "node-login") from an iscsiadm argv: its mode and the action, never its values."""
    program = argv[0].rsplit("/", 1)[-1] if argv else "?"
    if program != "iscsiadm":
        return program, next((arg for arg in argv[1:] if arg.startswith("-")), "run")
    mode = argv[argv.index("-m") + 1] if "-m" in argv else "?"
    actions = ("--login", "--logout", "--discover", "--rescan")
    action = next((arg.lstrip("-") for arg in argv if arg in actions), None)
    if action is None and "-o" in argv:
        action = argv[argv.index("-o") + 1]
    return program, f"{mode}-{action or 'show'}"


class HostCollector(Collector):
    """Sessions by state and portal, attachments, and paths per multipath map, read at scrape time."""

    def __init__(
        self, sessions: Sessions, attachments: Callable[[], int], multipath: Multipath | None
    ) -> None:
        self._sessions = sessions
        self._attachments = attachments
        self._multipath = multipath

    def collect(self) -> Iterator[Metric]:
        sessions = GaugeMetricFamily(
            "iscsi_agent_sessions",
            "iSCSI sessions of this host by state and portal",
            labels=["state", "portal"],
        )
        counts: dict[tuple[str, str], int] = {}
        for session in self._sessions.current():
            key = (session.state, str(session.portal) if session.portal else "")
            counts[key] = counts.get(key, 0) + 1
        for (state, portal), count in sorted(counts.items()):
            sessions.add_metric([state, portal], count)
        yield sessions
        yield GaugeMetricFamily(
            "iscsi_agent_attached_volumes", "Volumes this agent has attached", value=self._attachments()
        )
        paths = GaugeMetricFamily(
            "iscsi_agent_multipath_paths", "Paths of each multipath map", labels=["map"]
        )
        for mpath in self._multipath.maps() if self._multipath is not None else ():
            paths.add_metric([mpath.name], len(mpath.slaves))
        yield paths


def _version() -> str:
    try:
        return metadata.version("iscsi-agent")
    except metadata.PackageNotFoundError:
        return "unknown"
