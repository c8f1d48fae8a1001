"""Array requests per attach and detach as the service sends them, and client time per call.

Run: ``python -m bench array``. It starts the ONTAP simulator on loopback with zero latency and
drives the real attach service (``build_services``: the volume service, its attacher and detacher)
over ZAPI and over REST, on a synthetic host whose iscsiadm and kernel play against the simulator
(the unit tests' host), and prints the requests each phase sent, in order. Then milliseconds per
client call, with and without the network (recorded replies replayed).
"""

from __future__ import annotations

import logging
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.simulated_host import simulated_services
from iscsi_agent.array.budget import Budgets
from iscsi_agent.array.client import ArrayClient
from iscsi_agent.array.connect import connect
from iscsi_agent.array.settings import ApiChoice, ArraySettings
from iscsi_agent.array.transport import HttpReply, HttpTransport
from iscsi_agent.array.zapi import ZAPI_PATH
from iscsi_agent.config import parse_config
from iscsi_agent.journal.store import FILE_NAME, Journal
from iscsi_agent.service.volumes import VolumeService
from ontap_sim import Simulator, rest_apis, zapi
from tests.fakes import HostTree
from tests.initiator_world import SimulatedInitiator

USERNAME, PASSWORD, SVM = "admin", "netapp1!", "svm1"
INITIATOR = "iqn.1994-05.com.redhat:bench-host"
HOSTNAME = "bench-host.example.net"
LUN0, LUN1 = "/vol/vol1/lun1", "/vol/vol1/lun2"
IGROUP = "openstack-bench-host"
TIMED_RUNS = 200


class Recorder:
    """Wraps the real transport and keeps each request's name and reply (replies can be replayed)."""

    def __init__(self, inner: HttpTransport) -> None:
        self.inner = inner
        self.base_url = inner.base_url
        self.budgets = inner.budgets
        self.sent: list[str] = []
        self.replies: list[HttpReply] = []

    def request(self, method: str, path: str, **kwargs: Any) -> HttpReply:
        self.sent.append(request_name(method, path, kwargs.get("data")))
        reply = self.inner.request(method, path, **kwargs)
        self.replies.append(reply)
        return reply

    def close(self) -> None:
        self.inner.close()


def request_name(method: str, path: str, body: bytes | None) -> str:
    """``lun-map`` for ZAPI, ``POST lun-maps`` for REST (the path's template, /api/... shortened)."""
    if path.split("?", 1)[0] == ZAPI_PATH:
        return (zapi.peek_api(body or b"") or "?") if body else "?"
    template = rest_apis.router.resolve(method, path.split("?", 1)[0])[0] or path
    return f"{method} {template.removeprefix('/api/').removeprefix('protocols/san/')}"


class Replayer:
    """Answers every request with recorded replies in turn: what is left is the client's own time."""

    base_url = "replay"
    budgets = Budgets()  # never spent: a replayed reply does not fail

    def __init__(self, replies: list[HttpReply]) -> None:
        self.replies = replies
        self.next = 0

    def request(self, method: str, path: str, **kwargs: object) -> HttpReply:
        reply = self.replies[self.next % len(self.replies)]
        self.next += 1
        return reply

    def close(self) -> None:
        pass


def settings_for(sim: Simulator, api: ApiChoice) -> ArraySettings:
    url = urlsplit(sim.base_url)
    return ArraySettings(
        str(url.hostname), USERNAME, PASSWORD, vserver=SVM, port=url.port, scheme="http", api=api
    )


def service_for(sim: Simulator, client: ArrayClient, folder: Path) -> VolumeService:
    """The daemon's attach service over the simulator and a synthetic host of its own."""
    url = urlsplit(sim.base_url)
    tree = HostTree(folder / "host")
    config = parse_config(
        f"[agent]\nhost_root = {tree.root}\nstate_dir = {folder / 'state'}\n"
        f"[array]\nhostname = {url.hostname}\nport = {url.port}\nscheme = http\nusername = {USERNAME}\n"
        f"password = {PASSWORD}\nvserver = {SVM}\n[iscsi]\ndevice_timeout = 20\n",
        Path("agent.conf"),
    )
    world = SimulatedInitiator(tree, sim, INITIATOR)
    journal = Journal.open(config.agent.state_dir / FILE_NAME)
    services = simulated_services(
        config, tree, world, client, journal, initiator=INITIATOR, hostname=HOSTNAME
    )
    return services.volumes


def phases(service: VolumeService) -> list[tuple[str, Callable[[], object]]]:
    """A new host's life: the daemon starts, attaches two LUNs, detaches one and attaches it again
    (the LUN cached, the journal knowing it unmapped), then detaches both."""
    return [
        ("start-up (SVM's target and LIFs)", service.prepare),
        ("attach, new host (cold)", lambda: service.attach(LUN0)),
        ("attach, second LUN", lambda: service.attach(LUN1)),
        ("detach, not the last LUN", lambda: service.detach(LUN1, force=False)),
        ("attach again (journal knows unmapped)", lambda: service.attach(LUN1)),
        ("attach, already attached", lambda: service.attach(LUN1)),
        ("detach, the last LUN but one", lambda: service.detach(LUN0, force=False)),
        ("detach, the last LUN", lambda: service.detach(LUN1, force=False)),
    ]


def service_requests(sim: Simulator, api: ApiChoice) -> list[tuple[str, list[str]]]:
    """(phase, requests sent in order) for each phase, through the real service."""
    recorder = Recorder(HttpTransport.from_settings(settings_for(sim, api)))
    client = connect(settings_for(sim, api), transport=recorder)  # type: ignore[arg-type]
    recorder.sent.clear()  # ``api = zapi|rest`` asks nothing at connect; make sure of it
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-array-") as folder:
        for name, action in phases(service_for(sim, client, Path(folder))):
            start = len(recorder.sent)
            action()
            rows.append((name, recorder.sent[start:]))
    client.close()
    return rows


def per_call_ms(action: Callable[[], object], runs: int = TIMED_RUNS) -> float:
    action()  # warm the connection
    start = time.perf_counter()
    for _ in range(runs):
        action()
    return (time.perf_counter() - start) * 1000 / runs


def client_only_ms(settings: ArraySettings, call: Callable[[ArrayClient], object]) -> float:
    """Milliseconds per call spent in the client itself (building requests, parsing replies)."""
    recorder = Recorder(HttpTransport.from_settings(settings))
    call(connect(settings, transport=recorder))  # type: ignore[arg-type]
    replayed = connect(settings, transport=Replayer(recorder.replies))  # type: ignore[arg-type]
    return per_call_ms(lambda: call(replayed), runs=TIMED_RUNS * 5)


def call_times(sim: Simulator, api: ApiChoice) -> dict[str, float]:
    settings = settings_for(sim, api)
    client = connect(settings)
    client.create_igroup(IGROUP, "linux", (INITIATOR,))
    client.map_lun(LUN0, IGROUP)
    row = {
        "LUN lookup (uncached)": per_call_ms(lambda: client.lun_by_path(LUN0, fresh=True)),
        "LUN lookup (cached)": per_call_ms(lambda: client.lun_by_path(LUN0)),
        "map (already mapped)": per_call_ms(lambda: client.map_lun(LUN0, IGROUP)),
        "maps of igroup": per_call_ms(lambda: client.maps_of_igroup(IGROUP)),
        "portals": per_call_ms(client.portals),
        "LUN lookup, client only": client_only_ms(settings, lambda c: c.lun_by_path(LUN0, fresh=True)),
        "maps of igroup, client only": client_only_ms(settings, lambda c: c.maps_of_igroup(IGROUP)),
        "portals, client only": client_only_ms(settings, lambda c: c.portals()),
    }
    client.close()
    return row


def measure(api: ApiChoice) -> tuple[list[tuple[str, list[str]]], dict[str, float]]:
    sim = Simulator(username=USERNAME, password=PASSWORD)
    sim.start(host="127.0.0.1", port=0, tls=False)
    sim.latency = 0.0
    try:
        requests = service_requests(sim, api)
        return requests, call_times(sim, api)
    finally:
        sim.stop()


def main() -> int:
    logging.getLogger("iscsi_agent").setLevel(logging.ERROR)  # the plain-HTTP warning, once per connect
    measured = {api.value: measure(api) for api in (ApiChoice.ZAPI, ApiChoice.REST)}
    print("Array requests per phase, sent by the attach service (simulator, latency 0), in order:")
    for api, (requests, _) in measured.items():
        print(f"{api}:")
        width = max(len(name) for name, _ in requests)
        for name, sent in requests:
            print(f"  {name:{width}}  {len(sent)}  {', '.join(sent)}")
    names = list(measured["zapi"][1])
    width = max(len(name) for name in names)
    print(f"ms per client call ('client only': recorded replies replayed)\n{'':{width}}      zapi      rest")
    for name in names:
        print(f"{name:{width}}  " + "  ".join(f"{measured[api][1][name]:8.2f}" for api in measured))
    return 0


if __name__ == "__main__":
    sys.exit(main())
