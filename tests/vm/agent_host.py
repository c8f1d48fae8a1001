"""The agent's services on the real kernel, built as the daemon builds them (``service.build``), over
the simulator whose maps a real tgtd mirrors; shared by the attach, reconcile and crash tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from iscsi_agent.array.client import ArrayClient
from iscsi_agent.array.connect import connect
from iscsi_agent.array.settings import ApiChoice
from iscsi_agent.config import Config, parse_config
from iscsi_agent.host.command import SubprocessRunner
from iscsi_agent.host.routes import KernelRoutes
from iscsi_agent.host.waiting import SystemClock
from iscsi_agent.journal.store import FILE_NAME, Journal
from iscsi_agent.service.build import AgentServices, build_host, build_services
from iscsi_agent.service.volumes import VolumeService
from ontap_sim import Simulator
from ontap_sim.mirror import TgtMirror
from ontap_sim.tgt import Tgtadm
from tests.array_admin import grow_lun_rest
from tests.vm.cleanup import reset_initiator

HOSTNAME = "vmtier-host"


@dataclass
class AgentHost:
    sim: Simulator
    array: ArrayClient
    services: AgentServices
    journal: Journal
    tgt: Tgtadm
    initiator: str
    conf: str

    @property
    def service(self) -> VolumeService:
        return self.services.volumes

    @property
    def config(self) -> Config:
        return parse_config(self.conf, Path("agent.conf"))

    def reconfigure(self, extra: str) -> VolumeService:
        """The services over the same array and journal with more settings ([iscsi] multipath, ...)."""
        self.conf += extra
        self.services = agent_services(self.config, self.array, self.journal, self.initiator)
        return self.service

    def restart(self) -> AgentServices:
        """What a new agent process gets: the journal opened again, fresh services over it."""
        self.journal.close()
        self.journal = Journal.open(self.config.agent.state_dir / FILE_NAME)
        self.services = agent_services(self.config, self.array, self.journal, self.initiator)
        return self.services

    def maps(self, path: str) -> list[str]:
        with self.sim.state.lock:
            lun = self.sim.state.lun("svm1", path=path)
            return [self.sim.state.igroups[m.igroup_uuid].name for m in self.sim.state.maps_of_lun(lun)]

    def serial(self, path: str) -> str:
        with self.sim.state.lock:
            return self.sim.state.lun("svm1", path=path).serial

    def grow_lun(self, path: str, size: int) -> int:
        """Grow a LUN on the array behind the agent's back, as a Cinder or Trident extend does: a REST
        PATCH of ``space.size`` to the simulator over loopback (the agent's client has no resize, the agent
        never resizes). tgtd's LU keeps its data and shows the new size to an initiator that rescans.
        Returns the size the array set (rounded up to whole 512-byte blocks)."""
        return grow_lun_rest(self.sim, path, size)


def agent_services(config: Config, array: ArrayClient, journal: Journal, initiator: str) -> AgentServices:
    clock = SystemClock()
    return build_services(
        config,
        array=array,
        host=build_host(config, SubprocessRunner(), clock),
        routes=KernelRoutes(),
        journal=journal,
        initiator=initiator,
        hostname=HOSTNAME,
        clock=clock,
    )


@contextmanager
def agent_host(
    api: ApiChoice,
    state: Path,
    initiator: str,
    tid: int,
    extra: str = "",
    *,
    seed: dict[str, Any] | None = None,
) -> Iterator[AgentHost]:
    """An agent host whose simulator (of ``seed``, else the default one) mirrors its maps into tgtd
    target ``tid``; cleaned up after."""
    tgt = Tgtadm(backing_dir=state.parent / f"backing-{tid}")
    sim = Simulator(seed=seed, tgt=TgtMirror(tgt, tid=tid))
    url = urlsplit(sim.start())
    conf = (
        f"[agent]\nstate_dir = {state}\n"
        f"[array]\nhostname = {url.hostname}\nport = {url.port}\nscheme = http\nusername = admin\n"
        f"password = netapp1!\nvserver = svm1\napi = {api.value}\n"
        "[iscsi]\ndevice_timeout = 60\nlogin_timeout = 30\n" + extra
    )
    config = parse_config(conf, Path("agent.conf"))
    array = connect(config.array.to_settings())
    journal = Journal.open(config.agent.state_dir / FILE_NAME)
    host = AgentHost(
        sim, array, agent_services(config, array, journal, initiator), journal, tgt, initiator, conf
    )
    try:
        yield host
    finally:
        host.journal.close()
        array.close()
        reset_initiator()
        sim.stop()
