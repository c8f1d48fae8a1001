"""The daemon's services as ``build_services`` makes them, over the simulated initiator's host tree:
what the host-side benchmarks measure is the production code path, with only the kernel simulated."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from iscsi_agent.array.client import ArrayClient
from iscsi_agent.config import Config
from iscsi_agent.host.command import CommandRunner
from iscsi_agent.host.routes import Route
from iscsi_agent.journal.store import Journal
from iscsi_agent.service.build import AgentServices, build_host, build_services
from tests.fakes import FakeBlockOps, FakeClock, HostTree, polling
from tests.initiator_world import KernelSessions, SimulatedInitiator


class AllRoutable:
    def lookup_all(self, addresses: Sequence[str]) -> dict[str, Route]:
        return {address: Route(address, True) for address in addresses}


def simulated_services(
    config: Config,
    tree: HostTree,
    world: SimulatedInitiator,
    array: ArrayClient,
    journal: Journal,
    *,
    initiator: str,
    hostname: str,
    runner: CommandRunner | None = None,
) -> AgentServices:
    """``runner``: the commands' runner when not the simulated initiator itself."""
    clock = FakeClock(on_sleep=world.kernel_step)
    layer = build_host(
        config, runner or world, clock, watch=polling, block=FakeBlockOps(tree.root / "sys/block")
    )
    layer = dataclasses.replace(layer, sessions=KernelSessions(layer.paths, world))
    return build_services(
        config,
        array=array,
        host=layer,
        routes=AllRoutable(),
        journal=journal,
        initiator=initiator,
        hostname=hostname,
        clock=clock,
    )
