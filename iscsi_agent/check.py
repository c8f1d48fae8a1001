"""`iscsi-agent check`: every precondition of an attach, tried in turn and reported; nothing is changed.

An operator runs it after installing or reconfiguring a host, and a deployment tool can gate on
its exit code. Independent steps all run, so one report shows every problem; steps that need
the array are skipped, and say so, when the array could not be reached. A "warning" step passes
but names a risk the configuration accepts (clear-text HTTP, an unchecked certificate, a multipath
setting other than NetApp's guide). The host's steps read what the daemons themselves report
(``multipathd show config``, iscsiadm's node records, the sockets in /proc/net/unix), so they hold
under systemd and without it; each judgement is a pure function in ``host_findings``, and every
step that is not ok carries its fix.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from iscsi_agent.array.client import ArrayClient
from iscsi_agent.array.settings import ArraySettings
from iscsi_agent.config import Config
from iscsi_agent.errors import AgentError
from iscsi_agent.findings import Status, Step
from iscsi_agent.host.command import CommandError, CommandResult, CommandRunner
from iscsi_agent.host.errors import InitiatorNameError
from iscsi_agent.host.initiator import read_initiator_name
from iscsi_agent.host.iscsiadm import EXIT_NO_RECORDS, error_for, parse_records
from iscsi_agent.host.paths import HostPaths
from iscsi_agent.host.routes import Route, RouteTable, order_portals
from iscsi_agent.host_findings import (
    initiator_step,
    iscsid_step,
    multipath_steps,
    multipathd_step,
    node_records_step,
)
from iscsi_agent.service.ifaces import bound_iface

ISCSIADM_TIMEOUT = 10.0
MULTIPATHD = "multipathd"
MULTIPATHD_TIMEOUT = 30.0  # it answers once its configuration is loaded; slow on a loaded host


@dataclass(frozen=True)
class Checker:
    """The checks, with every side effect handed in (host root, programs, array, routing table)."""

    paths: HostPaths
    runner: CommandRunner
    connect: Callable[[ArraySettings], ArrayClient]
    routes: RouteTable

    def run(self, config: Config) -> list[Step]:
        array_steps, target_iqn = self.array(config)
        return [
            self.initiator(config),
            self.iscsiadm(config),
            self.iscsid(),
            *self.ifaces(config),
            *self.multipath(config),
            self.array_security(config),
            *array_steps,
            self.node_records(config, target_iqn),
        ]

    def initiator(self, config: Config) -> Step:
        name_file = str(config.agent.initiator_name_file)
        try:
            return initiator_step(read_initiator_name(self.paths, name_file), name_file)
        except InitiatorNameError as exc:
            return initiator_step(exc, name_file)

    def iscsiadm(self, config: Config) -> Step:
        try:
            result = self.runner([config.iscsi.iscsiadm, "--version"], timeout=ISCSIADM_TIMEOUT).check()
        except CommandError as exc:
            return Step("iscsiadm", Status.FAILED, str(exc))
        return Step("iscsiadm", Status.OK, result.stdout.strip() or config.iscsi.iscsiadm)

    def iscsid(self) -> Step:
        try:
            sockets: str | None = self.paths.proc("net", "unix").read_text(encoding="utf-8", errors="replace")
        except OSError:
            sockets = None
        return iscsid_step(sockets)

    def ifaces(self, config: Config) -> Iterator[Step]:
        """Each interface sessions are bound to must exist (``/sys/class/net/NAME``); no step without any."""
        listed = config.iscsi.ifaces
        if not listed:
            return
        missing = [name for name in listed if not self.paths.sys("class", "net", name).exists()]
        if not missing:
            yield Step("ifaces", Status.OK, ", ".join(listed))
            return
        try:
            present = sorted(entry.name for entry in self.paths.sys("class", "net").iterdir())
        except OSError:
            present = []
        yield Step(
            "ifaces",
            Status.FAILED,
            f"not on this host: {', '.join(missing)} (present: {', '.join(present) or 'none'})",
            f"correct or remove {', '.join(missing)} in [iscsi] ifaces of the configuration "
            "(ip -br link lists the host's interfaces)",
        )

    def multipath(self, config: Config) -> Iterator[Step]:
        """multipathd, and what it would do with an ONTAP LUN; read only (``show`` commands)."""
        wanted = config.iscsi.multipath
        answer = self._try([MULTIPATHD, "show", "daemon"], MULTIPATHD_TIMEOUT)
        yield multipathd_step(answer, wanted)
        if not (isinstance(answer, CommandResult) and answer.exit_code == 0):
            return
        shown = self._try([MULTIPATHD, "show", "config"], MULTIPATHD_TIMEOUT)
        if isinstance(shown, CommandResult) and shown.exit_code == 0:
            yield from multipath_steps(shown.stdout, multipath=wanted)
            return
        seen = (
            str(shown)
            if isinstance(shown, CommandError)
            else f"exit {shown.exit_code}: {shown.stderr.strip()}"
        )
        yield Step(
            "multipath conf",
            Status.FAILED if wanted else Status.WARNING,
            f"multipathd show config: {seen}",
            "multipathd reconfigure, and read multipathd's log (journalctl -u multipathd)",
        )

    def node_records(self, config: Config, target_iqn: str | None) -> Step:
        answer = self._try([config.iscsi.iscsiadm, "-m", "node", "-o", "show"], ISCSIADM_TIMEOUT)
        if isinstance(answer, CommandError):
            return Step("node records", Status.FAILED, str(answer))
        if answer.exit_code == EXIT_NO_RECORDS:
            return node_records_step((), target_iqn)
        if answer.exit_code != 0:
            return Step("node records", Status.FAILED, str(error_for("node show", answer)))
        return node_records_step(parse_records(answer.stdout), target_iqn)

    def _try(self, argv: list[str], timeout: float) -> CommandResult | CommandError:
        try:
            return self.runner(argv, timeout=timeout)
        except CommandError as exc:
            return exc

    @staticmethod
    def array_security(config: Config) -> Step:
        """How the array is trusted (which CA file) and how the agent authenticates to it."""
        settings = config.array.to_settings()
        if risks := settings.security_risks():
            return Step("array security", Status.WARNING, "; ".join(risks))
        store = settings.trust_store
        try:
            with open(store, "rb"):
                pass
        except OSError as exc:
            return Step("array security", Status.FAILED, f"cannot read the CA bundle {store}: {exc.strerror}")
        trusted = store if settings.ca_bundle else f"the system's CAs in {store}"
        detail = f"HTTPS, certificate checked against {trusted}"
        if settings.cert:
            detail += f"; authenticated by the client certificate {settings.client_cert}"
        return Step("array security", Status.OK, detail)

    def array(self, config: Config) -> tuple[list[Step], str | None]:
        """The array's steps, and the SVM's target IQN when the array named it (the node records' target)."""
        settings = config.array.to_settings()
        try:
            client = self.connect(settings)
            version = client.version()
        except AgentError as exc:
            skipped = [
                Step(name, Status.SKIPPED, "the array was not reached")
                for name in ("svm", "iscsi service", "portals")
            ]
            return [Step("array", Status.FAILED, f"{settings.base_url}: {exc}"), *skipped], None
        try:
            reached = Step(
                "array", Status.OK, f"ONTAP {version} over {client.api.upper()} at {settings.base_url}"
            )
            svm = self._svm(client)
            service, target_iqn = self._service(client)
            return [reached, svm, service, self._portals(client, config)], target_iqn
        finally:
            client.close()

    @staticmethod
    def _svm(client: ArrayClient) -> Step:
        try:
            return Step("svm", Status.OK, client.check_svm().name)
        except AgentError as exc:
            return Step("svm", Status.FAILED, str(exc))

    @staticmethod
    def _service(client: ArrayClient) -> tuple[Step, str | None]:
        try:
            service = client.iscsi_service()
        except AgentError as exc:
            return Step("iscsi service", Status.FAILED, str(exc)), None
        if not service.enabled:
            return Step(
                "iscsi service", Status.FAILED, f"target {service.target_iqn} is disabled on the array"
            ), service.target_iqn
        return Step("iscsi service", Status.OK, f"target {service.target_iqn}"), service.target_iqn

    def _portals(self, client: ArrayClient, config: Config) -> Step:
        try:
            portals = client.portals()
        except AgentError as exc:
            return Step("portals", Status.FAILED, str(exc))
        table = self.routes.lookup_all(portal.address for portal in portals)
        ifaces = config.iscsi.ifaces
        usable = [
            portal
            for portal in order_portals(portals, table, config.iscsi.portal_networks)
            if not ifaces or bound_iface(table[portal.address], ifaces) is not None
        ]
        reached = [f"{portal.portal} via {table[portal.address].interface}" for portal in usable]
        missed = [
            f"{portal.portal} ({_why_unused(table[portal.address])})"
            for portal in portals
            if portal not in usable
        ]
        detail = ", ".join(reached) or "none reachable"
        if missed:
            detail += ("; not used: " if ifaces else "; unreachable: ") + ", ".join(missed)
        return Step("portals", Status.OK if usable else Status.FAILED, detail)


def _why_unused(route: Route) -> str:
    if route.reachable:
        return f"routed through {route.interface}, not a listed interface"
    return route.problem or "no route"


def render(steps: list[Step]) -> str:
    """One line a step, status first so a failure stands out in a terminal or a log; under a step
    that is not ok, an indented ``fix:`` line with the configuration line or command that mends it."""
    lines = []
    for step in steps:
        lines.append(f"{step.status.value:<8} {step.name:<15} {step.detail}")
        if step.fix and step.status in (Status.WARNING, Status.FAILED):
            lines.append(f"{'':<8} fix: {step.fix}")
    return "\n".join(lines)


def passed(steps: list[Step]) -> bool:
    return all(step.status in (Status.OK, Status.WARNING) for step in steps)
