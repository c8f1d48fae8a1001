"""A whole host for the attach service: the simulator as the array (over ZAPI and REST), a synthetic
sysfs tree with iscsiadm and the kernel played against the simulator's maps, a stepping clock."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from iscsi_agent.array.client import ArrayClient
from iscsi_agent.array.connect import connect
from iscsi_agent.array.settings import ApiChoice, ArraySettings
from iscsi_agent.config import Config, parse_config
from iscsi_agent.faults import FAULT_ENV, faults
from iscsi_agent.host.removal import DeviceRemover
from iscsi_agent.host.routes import Route
from iscsi_agent.journal.store import FILE_NAME, Journal
from iscsi_agent.service.build import AgentServices, HostLayer, build_host, build_services
from iscsi_agent.service.igroup import igroup_name
from iscsi_agent.service.observe import Observer, Unobserved
from iscsi_agent.service.volumes import VolumeService
from ontap_sim import Simulator
from tests.array_admin import grow_lun_rest
from tests.contract.helpers import array_maps
from tests.fakes import FakeBlockOps, FakeClock, HostTree
from tests.initiator_world import KernelDevices, KernelSessions, SimulatedInitiator

INITIATOR = "iqn.1994-05.com.redhat:compute-7"
HOSTNAME = "compute-7.example.net"
OWN_IGROUP = igroup_name("openstack-", HOSTNAME, INITIATOR)


@contextmanager
def polling(folders: Iterable[Path], sleep: Callable[[float], None]) -> Iterator[Callable[[float], None]]:
    """Waits pause on the stepping clock, which lets the simulated kernel act."""
    yield sleep


class AllRoutable:
    """Every portal routable, except those made unroutable; through the interface given for it, if any."""

    def __init__(self) -> None:
        self.unroutable: set[str] = set()
        self.interfaces: dict[str, str] = {}  # address -> the interface the kernel routes it through

    def lookup_all(self, addresses):
        return {
            a: Route(
                a,
                a not in self.unroutable,
                interface=self.interfaces.get(a),
                problem="no route" if a in self.unroutable else None,
            )
            for a in addresses
        }


@dataclass
class Host:
    """One compute host and its array, as the service sees them."""

    sim: Simulator
    array: ArrayClient
    tree: HostTree
    initiator: SimulatedInitiator
    clock: FakeClock
    routes: AllRoutable
    journal: Journal
    layer: HostLayer
    services: AgentServices
    config: Config
    block: FakeBlockOps
    observer: Observer = dataclasses.field(default_factory=Unobserved)

    @property
    def service(self) -> VolumeService:
        return self.services.volumes

    def array_requests(self) -> int:
        return self.sim.total("zapi") + self.sim.total("rest")

    def restart(self) -> VolumeService:
        """A new service over the same journal file, array and host: what a daemon restart gives.

        The host layer is new too (its locks were the dead process's), the host itself the same.
        """
        self.journal.close()
        self.journal = Journal.open(self.config.agent.state_dir / FILE_NAME)
        self.layer = host_layer(self.config, self.initiator, self.clock, self.block)
        self.services = self._build()
        return self.service

    def with_config(self, config: Config) -> VolumeService:
        """The service over the same host and array with another configuration (the host layer
        too: which tools it drives, multipath among them, is configured)."""
        self.config = config
        self.layer = host_layer(config, self.initiator, self.clock, self.block)
        self.services = self._build()
        return self.service

    def _build(self) -> AgentServices:
        return build_services(
            self.config,
            array=self.array,
            host=self.layer,
            routes=self.routes,
            journal=self.journal,
            initiator=INITIATOR,
            hostname=HOSTNAME,
            clock=self.clock,
            observer=self.observer,
        )


def serial_of(host: Host, path: str) -> str:
    with host.sim.state.lock:
        return host.sim.state.lun("svm1", path=path).serial


def unmap_behind_the_agents_back(host: Host, path: str) -> None:
    """The array unmaps the LUN from this host's igroup; the host keeps its device (experiment 3)."""
    own = OWN_IGROUP
    with host.sim.state.lock:
        state = host.sim.state
        state.unmap_lun(state.lun("svm1", path=path), state.igroup("svm1", name=own))


def grow_on_the_array(host: Host, path: str, size: int) -> None:
    """The LUN grows on the array (a Cinder or Trident extend); the host sees it after a rescan."""
    grow_lun_rest(host.sim, path, size)


def host_layer(config: Config, world: SimulatedInitiator, clock: FakeClock, block: FakeBlockOps) -> HostLayer:
    """The host layer over the simulated kernel: its scans and rescans read what the target offers."""
    layer = build_host(config, world, clock, watch=polling, block=block)
    devices = KernelDevices(layer.paths, clock, world, polling)
    return dataclasses.replace(
        layer,
        sessions=KernelSessions(layer.paths, world),
        devices=devices,
        remover=DeviceRemover(layer.paths, devices, block, clock),
    )


def config_for(
    sim: Simulator,
    root: Path,
    state: Path,
    *,
    multipath: bool = False,
    chap_secret_file: Path | None = None,
    chap_target_secret_file: Path | None = None,
    ifaces: str = "",
) -> Config:
    url = urlsplit(sim.base_url)
    chap = f"chap_username = compute-7\nchap_secret_file = {chap_secret_file}\n" if chap_secret_file else ""
    if chap_target_secret_file:
        chap += f"chap_target_username = svm1-target\nchap_target_secret_file = {chap_target_secret_file}\n"
    text = f"""
[agent]
host_root = {root}
state_dir = {state}
workers = 4
[array]
hostname = {url.hostname}
port = {url.port}
scheme = http
username = admin
password = netapp1!
vserver = svm1
[iscsi]
multipath = {"true" if multipath else "false"}
device_timeout = 20
ifaces = {ifaces}
{chap}"""
    return parse_config(text, Path("agent.conf"))


@pytest.fixture(params=[ApiChoice.ZAPI, ApiChoice.REST], ids=["zapi", "rest"])
def host(request, ontap_sim: Simulator, tmp_path: Path) -> Iterator[Host]:
    tree = HostTree(tmp_path / "host")
    config = config_for(ontap_sim, tree.root, tmp_path / "state")
    url = urlsplit(ontap_sim.base_url)
    array = connect(
        ArraySettings(
            hostname=str(url.hostname),
            port=url.port,
            scheme="http",
            username="admin",
            password="netapp1!",
            vserver="svm1",
            api=request.param,
            timeout=5.0,
            connect_timeout=2.0,
        )
    )
    world = SimulatedInitiator(tree, ontap_sim, INITIATOR)
    clock = FakeClock(on_sleep=world.kernel_step)
    block = FakeBlockOps(tree.root / "sys/block")
    layer = host_layer(config, world, clock, block)
    journal = Journal.open(config.agent.state_dir / FILE_NAME)
    built = Host(ontap_sim, array, tree, world, clock, AllRoutable(), journal, layer, None, config, block)  # type: ignore[arg-type]
    built.services = built._build()
    yield built
    built.journal.close()
    array.close()


class Crash:
    """Stands in for SIGKILL: the thread that reaches the point never runs another line."""

    def __init__(self) -> None:
        self.reached = threading.Event()
        self._never = threading.Event()

    def __call__(self) -> None:
        self.reached.set()
        self._never.wait()


@pytest.fixture
def crash(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str, Callable[[], object]], None]]:
    def at(point: str, work: Callable[[], object]) -> None:
        killed = Crash()
        monkeypatch.setattr(faults, "_kill", killed)
        monkeypatch.setenv(FAULT_ENV, point)
        threading.Thread(target=work, name=f"killed at {point}", daemon=True).start()
        assert killed.reached.wait(30), f"{point} was never reached"
        monkeypatch.delenv(FAULT_ENV)

    yield at


def disks(host: Host) -> list[str]:
    return sorted(entry.name for entry in (host.tree.root / "sys/block").iterdir())


def assert_nothing_left(host: Host, path: str = "/vol/vol1/lun1") -> None:
    """No map for a volume that is not attached, no session or disk without an attachment."""
    assert host.service.attachments() == []
    assert array_maps(host.sim, path) == []
    assert host.initiator.sessions == {}
    assert disks(host) == []
    assert host.journal.in_flight() == []


def refuse_unmaps(host: Host) -> None:
    """The array answers every unmap with "busy" for a while."""
    host.sim.faults.inject(
        "lun-unmap" if host.array.api == "zapi" else "DELETE /api/protocols/san/lun-maps",
        "errno",
        times=10,
        errno=13001,
        reason="busy",
    )


def leave_a_detach_open(host: Host, crash: Callable[[str, Callable[[], object]], None], volume: str) -> None:
    """An attached volume whose detach died after removing its paths, and whose recovery's unmap the
    array refused: the detach stays open for a retry."""
    host.service.attach(volume)
    crash("detach.remove_paths.done", lambda: host.service.detach(volume, force=False))
    host.restart()
    refuse_unmaps(host)
    host.services.recovery.run()
    host.sim.faults.clear()
