"""`iscsi-agent check`: every precondition of an attach, tried in turn and reported; nothing is changed.

An operator runs it after installing or reconfiguring a host, and a deployment tool can gate on
its exit code. Independent steps all run, so one report shows every problem; steps that need
the array are skipped, and say so, when the array could not be reached. A "warning" step passes
but names a risk the configuration accepts (clear-text HTTP, an unchecked certificate).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from iscsi_agent.array.client import ArrayClient
from iscsi_agent.array.settings import ArraySettings
from iscsi_agent.config import Config
from iscsi_agent.errors import AgentError
from iscsi_agent.host.command import CommandError, CommandRunner
from iscsi_agent.host.initiator import read_initiator_name
from iscsi_agent.host.paths import HostPaths
from iscsi_agent.host.routes import RouteTable, order_portals

ISCSIADM_TIMEOUT = 10.0


class Status(enum.Enum):
    OK = "ok"
    WARNING = "warning"  # passes, but says what is at risk
    FAILED = "FAILED"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class Step:
    name: str
    status: Status
    detail: str


@dataclass(frozen=True)
class Checker:
    """The checks, with every side effect handed in (host root, programs, array, routing table)."""

    paths: HostPaths
    runner: CommandRunner
    connect: Callable[[ArraySettings], ArrayClient]
    routes: RouteTable

    def run(self, config: Config) -> list[Step]:
        return [
            self.initiator(config),
            self.iscsiadm(config),
            self.array_security(config),
            *self.array(config),
        ]

    def initiator(self, config: Config) -> Step:
        name_file = str(config.agent.initiator_name_file)
        try:
            return Step(
                "initiator name", Status.OK, f"{read_initiator_name(self.paths, name_file)} ({name_file})"
            )
        except AgentError as exc:
            return Step("initiator name", Status.FAILED, str(exc))

    def iscsiadm(self, config: Config) -> Step:
        try:
            result = self.runner([config.iscsi.iscsiadm, "--version"], timeout=ISCSIADM_TIMEOUT).check()
        except CommandError as exc:
            return Step("iscsiadm", Status.FAILED, str(exc))
        return Step("iscsiadm", Status.OK, result.stdout.strip() or config.iscsi.iscsiadm)

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

    def array(self, config: Config) -> Iterator[Step]:
        settings = config.array.to_settings()
        try:
            client = self.connect(settings)
            version = client.version()
        except AgentError as exc:
            yield Step("array", Status.FAILED, f"{settings.base_url}: {exc}")
            for name in ("svm", "iscsi service", "portals"):
                yield Step(name, Status.SKIPPED, "the array was not reached")
            return
        try:
            yield Step(
                "array", Status.OK, f"ONTAP {version} over {client.api.upper()} at {settings.base_url}"
            )
            yield self._svm(client)
            yield self._service(client)
            yield self._portals(client, config)
        finally:
            client.close()

    @staticmethod
    def _svm(client: ArrayClient) -> Step:
        try:
            return Step("svm", Status.OK, client.check_svm().name)
        except AgentError as exc:
            return Step("svm", Status.FAILED, str(exc))

    @staticmethod
    def _service(client: ArrayClient) -> Step:
        try:
            service = client.iscsi_service()
        except AgentError as exc:
            return Step("iscsi service", Status.FAILED, str(exc))
        if not service.enabled:
            return Step(
                "iscsi service", Status.FAILED, f"target {service.target_iqn} is disabled on the array"
            )
        return Step("iscsi service", Status.OK, f"target {service.target_iqn}")

    def _portals(self, client: ArrayClient, config: Config) -> Step:
        try:
            portals = client.portals()
        except AgentError as exc:
            return Step("portals", Status.FAILED, str(exc))
        table = self.routes.lookup_all(portal.address for portal in portals)
        usable = order_portals(portals, table, config.iscsi.portal_networks)
        reached = [f"{portal.portal} via {table[portal.address].interface}" for portal in usable]
        missed = [
            f"{portal.portal} ({table[portal.address].problem})" for portal in portals if portal not in usable
        ]
        detail = ", ".join(reached) or "none reachable"
        if missed:
            detail += "; unreachable: " + ", ".join(missed)
        return Step("portals", Status.OK if usable else Status.FAILED, detail)


def render(steps: list[Step]) -> str:
    """One line a step, status first so a failure stands out in a terminal or a log."""
    return "\n".join(f"{step.status.value:<8} {step.name:<15} {step.detail}" for step in steps)


def passed(steps: list[Step]) -> bool:
    return all(step.status in (Status.OK, Status.WARNING) for step in steps)
