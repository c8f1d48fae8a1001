"""A reconciler pass over a big host, and a fleet's passes against one array, against the simulator.

Run: ``python -m bench reconcile`` (or ``python bench/reconcile.py``). Two figures, each with its goal:

1. One host with 2,000 SCSI devices (1,000 LUNs over two sessions, each LUN under a multipath map)
   on a synthetic sysfs and /dev tree laid out as Linux 6.1 and udev lay them out (each disk's
   block entry linking into its SCSI device's folder; by-path and by-id links, the maps' among
   them), read by the agent's own host layer, the LUNs mapped to the host's igroup on the simulator and recorded as
   attachments in the journal. A handful are stale (their LUNs unmapped, left on the host) and
   two links dangle, so the first pass does real work; then steady passes are timed, and the
   simulator counts the array requests of each. The simulator answers from a process of its own
   (``ArrayProcess``), as an array does from a machine of its own.
2. A fleet of agents restarted at one instant, each on the reconciler's real trigger, over
   simulated minutes; every fire makes the steady pass's one array request for real, and the
   simulator counts them per simulated second.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import random
import socket
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from pathlib import Path
from urllib.parse import urlsplit

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.simulated_host import simulated_services
from iscsi_agent.array.client import ArrayClient
from iscsi_agent.array.connect import connect
from iscsi_agent.array.settings import ApiChoice, ArraySettings
from iscsi_agent.config import Config, parse_config
from iscsi_agent.host.command import CommandResult
from iscsi_agent.host.multipath import DM_UUID_PREFIX
from iscsi_agent.host.sessions import ScsiAddress
from iscsi_agent.journal.model import Attachment, AttachmentState
from iscsi_agent.journal.store import FILE_NAME, Journal
from iscsi_agent.naa import multipath_wwid
from iscsi_agent.portal import Portal
from iscsi_agent.reconcile.plan import plan
from iscsi_agent.reconcile.reconciler import JITTER_SHARE, Reconciler, pass_trigger
from iscsi_agent.service.igroup import igroup_name
from ontap_sim import Simulator
from ontap_sim.model import State
from tests.fakes import HostTree
from tests.initiator_world import SimulatedInitiator

USERNAME, PASSWORD, SVM = "admin", "netapp1!", "svm1"
INITIATOR = "iqn.1994-05.com.redhat:bench-reconcile"
HOSTNAME = "compute-bench.example.net"
PORTALS = ("127.0.0.1:3260", "127.0.0.2:3260")  # the default seed's two iSCSI LIFs
LUNS = 1000  # each on both portals: 2,000 devices
STALE_LUNS = 4  # unmapped on the array, still on the host
DANGLING_LINKS = 2
STEADY_PASSES = 20
SPLIT_PASSES = 10
GiB = 1024**3

PASS_MS_GOAL = 100.0
REQUESTS_PER_PASS_GOAL = 1

AGENTS = 1000
INTERVAL = 60.0
SIMULATED_SECONDS = 600
FLEET_IGROUPS = 10
LUNS_PER_FLEET_IGROUP = 20
FLEET_SEED = 20240601
FLEET_PEAK_GOAL = 18
WINDOW = 10  # seconds averaged to show the spread without single-second noise


# --- the world ------------------------------------------------------------------------


class WithMultipath:
    """The simulated initiator's runner, with ``multipath -f`` removing the map as multipath does."""

    def __init__(self, world: SimulatedInitiator, tree: HostTree) -> None:
        self.world = world
        self.tree = tree

    def __call__(self, argv: Sequence[str], *, timeout: float, secrets: Sequence[str] = ()) -> CommandResult:
        if tuple(argv[:2]) == ("multipath", "-f"):
            remove_multipath(self.tree, argv[-1])
            return CommandResult(tuple(argv), 0, "", "")
        return self.world(argv, timeout=timeout, secrets=secrets)


def remove_multipath(tree: HostTree, name: str) -> None:
    for dm in (tree.root / "sys/block").glob("dm-*"):
        folder = dm.resolve()
        if (folder / "dm/name").read_text().strip() != name:
            continue
        for slave in (folder / "slaves").iterdir():
            (tree.root / f"sys/block/{slave.name}/holders/{dm.name}").unlink(missing_ok=True)
            slave.unlink()
        for entry in sorted(folder.rglob("*"), key=lambda path: len(path.parts), reverse=True):
            entry.rmdir() if entry.is_dir() else entry.unlink()
        folder.rmdir()
        dm.unlink()
        (tree.root / f"dev/mapper/{name}").unlink(missing_ok=True)
        for node in (dm.name, f"disk/by-id/dm-name-{name}", f"disk/by-id/dm-uuid-{DM_UUID_PREFIX}{name}"):
            (tree.root / "dev" / node).unlink(missing_ok=True)  # udev's work on the map's removal
        return


def disk_name(index: int) -> str:
    """sda .. sdz, sdaa .. sdzz, sdaaa ..: the kernel's names for the index-th disk."""
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(ord("a") + rest) + letters
    return "sd" + letters


def serial_of(index: int) -> str:
    return f"bnch{index:08d}"


def add_path(
    tree: HostTree, index: int, *, sid: int, host: int, lun_id: int, serial: str, iqn: str, portal: str
) -> str:
    """One probed disk with a device number of its own (the fake derives it from the last letter)."""
    name = disk_name(index)
    tree.add_disk(
        ScsiAddress(host, 0, 0, lun_id),
        name,
        serial,
        sid=sid,
        iqn=iqn,
        portal=portal,
        links=False,
        size_bytes=GiB,
    )  # the LUNs' size on the array: a steady host has nothing grown to report
    (tree.root / f"sys/block/{name}/dev").write_text(f"{8 + index // 16}:{(index % 16) * 16}\n")
    links = tree.add_links(name, serial, iqn=iqn, portal=portal, lun=lun_id)
    tree.udev_db(name).parent.mkdir(parents=True, exist_ok=True)
    tree.udev_db(name).write_text("".join(f"S:{link}\n" for link in links) + "E:ID_BUS=scsi\n")
    return name


def add_map(tree: HostTree, dm: str, wwid: str, paths: Sequence[str]) -> None:
    """A multipath map as udev leaves it on a host: its node in /dev and its by-id links (the
    reconciler's dangling-link check reads them with the paths' links)."""
    tree.add_multipath(dm, wwid, DM_UUID_PREFIX + wwid, paths)
    (tree.root / f"dev/{dm}").write_text("")
    for link in (f"dm-name-{wwid}", f"dm-uuid-{DM_UUID_PREFIX}{wwid}"):
        (tree.root / f"dev/disk/by-id/{link}").symlink_to(f"../../{dm}")


def config_for(base_url: str, root: Path, state: Path) -> Config:
    url = urlsplit(base_url)
    text = f"""
[agent]
host_root = {root}
state_dir = {state}
[array]
hostname = {url.hostname}
port = {url.port}
scheme = http
username = {USERNAME}
password = {PASSWORD}
vserver = {SVM}
api = rest
[iscsi]
multipath = true
device_timeout = 20
"""
    return parse_config(text, Path("agent.conf"))


def client_for(base_url: str) -> ArrayClient:
    url = urlsplit(base_url)
    settings = ArraySettings(
        str(url.hostname), USERNAME, PASSWORD, vserver=SVM, port=url.port, scheme="http", api=ApiChoice.REST
    )
    return connect(settings)


class ArrayProcess:
    """The simulator answering from a process of its own, as an array answers from a machine of its
    own: its work on an answer (a thousand maps built, filtered and encoded) then takes no turn of
    the agent's interpreter lock, which an in-process simulator's thread would, and a pass's wait
    for the array can overlap the agent's host reads as it does in production. The state is built
    here first and the child gets a copy (fork); it serves on a port picked here, and counts its
    requests for the bench over a pipe. The parent's copy stays for the simulated initiator."""

    def __init__(self, sim: Simulator) -> None:
        self._sim = sim
        self.base_url = f"http://127.0.0.1:{free_port()}"
        self._conn: Connection | None = None
        self._process: multiprocessing.process.BaseProcess | None = None

    def start(self) -> None:
        context = multiprocessing.get_context("fork")
        self._conn, child = context.Pipe()
        self._process = context.Process(target=serve, args=(self._sim, self.base_url, child), daemon=True)
        self._process.start()
        child.close()  # the child's end lives in the child: a child that died reads as EOF here
        if self._conn.recv() != "serving":
            raise RuntimeError("the simulator's process did not start")

    def ask(self, request: str) -> Counter[tuple[str, str]]:
        assert self._conn is not None
        self._conn.send(request)
        answer: Counter[tuple[str, str]] = self._conn.recv()
        return answer

    @property
    def counts(self) -> Counter[tuple[str, str]]:
        return self.ask("counts")

    def total(self, kind: str) -> int:
        return sum(n for (k, _), n in self.counts.items() if k == kind)

    def reset_counts(self) -> None:
        self.ask("reset")

    def stop(self) -> None:
        if self._process is not None:
            self.ask("stop")
            self._process.join(10)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def serve(sim: Simulator, base_url: str, conn: Connection) -> None:
    """The simulator's process: serve, and answer the bench's requests for counts until told to stop."""
    sim.start(host="127.0.0.1", port=int(urlsplit(base_url).port or 0), tls=False)
    sim.latency = 0.0
    conn.send("serving")
    while (request := conn.recv()) != "stop":
        if request == "reset":
            sim.reset_counts()
        conn.send(sim.counts)
    sim.stop()
    conn.send(Counter())


@dataclasses.dataclass
class BigHost:
    array_process: ArrayProcess
    tree: HostTree
    journal: Journal
    array: ArrayClient
    reconciler: Reconciler

    def array_requests(self) -> int:
        return self.array_process.total("zapi") + self.array_process.total("rest")


def populate_array(state: State, igroup: str) -> list[tuple[str, str, int, bool]]:
    """LUNs on the array, all but the stale ones mapped to the host's igroup: (uuid, serial, id, mapped)."""
    luns = []
    with state.lock:
        svm = state.svm(SVM)
        group = state.create_igroup(svm, igroup, "iscsi", "linux", (INITIATOR,))
        for index in range(LUNS):
            lun = state.create_lun(svm, f"/vol/vol1/bench{index:04d}", GiB, "linux", serial_of(index))
            mapped = index >= STALE_LUNS
            if mapped:
                state.map_lun(lun, group, index)
            luns.append((lun.uuid, lun.serial, index, mapped))
    return luns


def populate_host(
    tree: HostTree, journal: Journal, luns: list[tuple[str, str, int, bool]], igroup: str, iqn: str
) -> None:
    """Two sessions, every LUN on both under a multipath map, the mapped ones recorded as attached."""
    sessions = [(sid, sid + 1, portal) for sid, portal in enumerate(PORTALS, start=1)]
    for sid, host, portal in sessions:
        tree.add_session(sid, host, iqn, portal)
    portals = tuple(Portal.parse(portal) for portal in PORTALS)
    for uuid, serial, lun_id, mapped in luns:
        names = [
            add_path(
                tree,
                lun_id * len(sessions) + n,
                sid=sid,
                host=host,
                lun_id=lun_id,
                serial=serial,
                iqn=iqn,
                portal=portal,
            )
            for n, (sid, host, portal) in enumerate(sessions)
        ]
        wwid = multipath_wwid(serial)
        add_map(tree, f"dm-{lun_id}", wwid, names)
        if mapped:
            journal.put_attachment(
                Attachment(
                    lun_uuid=uuid,
                    lun_path=f"/vol/vol1/bench{lun_id:04d}",
                    volume=f"volume-{lun_id:04d}",
                    svm=SVM,
                    serial=serial,
                    wwid=wwid,
                    lun_id=lun_id,
                    igroup=igroup,
                    map_created=True,
                    target_iqn=iqn,
                    portals=portals,
                    multipath=True,
                    state=AttachmentState.ATTACHED,
                    device=f"/dev/mapper/{wwid}",
                )
            )
    for n in range(DANGLING_LINKS):
        link = tree.root / f"dev/disk/by-path/ip-{PORTALS[0]}-iscsi-{iqn}-lun-{LUNS + n}"
        link.symlink_to("../../sdgone" + chr(ord("a") + n))


def build_big_host(sim: Simulator, folder: Path) -> BigHost:
    """The host's tree and journal, the array's LUNs and maps, then the array's process started."""
    tree = HostTree(folder / "host")
    array_process = ArrayProcess(sim)
    config = config_for(array_process.base_url, tree.root, folder / "state")
    igroup = igroup_name(config.array.igroup_prefix, HOSTNAME, INITIATOR)
    target = sim.state.svms[SVM].iscsi.target_iqn  # type: ignore[union-attr]
    journal = Journal.open(config.agent.state_dir / FILE_NAME)
    populate_host(tree, journal, populate_array(sim.state, igroup), igroup, target)
    array_process.start()
    world = SimulatedInitiator(tree, sim, INITIATOR)
    array = client_for(array_process.base_url)
    services = simulated_services(
        config,
        tree,
        world,
        array,
        journal,
        initiator=INITIATOR,
        hostname=HOSTNAME,
        runner=WithMultipath(world, tree),
    )
    return BigHost(array_process, tree, journal, array, services.reconciler)


# --- 1. one big host ----------------------------------------------------------------------


def timed(action: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    result = action()
    return (time.perf_counter() - start) * 1000, result


def p90(values: Sequence[float]) -> float:
    return statistics.quantiles(values, n=10, method="inclusive")[-1]


def p10(values: Sequence[float]) -> float:
    return statistics.quantiles(values, n=10, method="inclusive")[0]


def device_count(tree: HostTree) -> int:
    return sum(1 for _ in (tree.root / "sys/class/scsi_device").iterdir())


def measure_host() -> dict[str, object]:
    sim = Simulator(username=USERNAME, password=PASSWORD)
    with tempfile.TemporaryDirectory(prefix="bench-reconcile-") as folder:
        start = time.perf_counter()
        host = build_big_host(sim, Path(folder))
        try:
            built_s = time.perf_counter() - start
            figures = host_figures(host)
            figures["setup s"] = built_s
            host.journal.close()
            host.array.close()
            return figures
        finally:
            host.array_process.stop()


def host_figures(host: BigHost) -> dict[str, object]:
    reconciler = host.reconciler
    devices_before = device_count(host.tree)
    host.array_process.reset_counts()
    first_ms, first_actions = timed(lambda: reconciler.run(dry_run=False))
    first_requests = host.array_requests()
    kinds = Counter(
        f"{a.action} ({a.reason}){'' if a.done else ', not done'}"
        for a in first_actions  # type: ignore[attr-defined]
    )
    steady_ms, steady_cpu_ms, steady_requests, steady_actions = [], [], [], 0
    by_call: Counter[str] = Counter()
    load_before = os.getloadavg()
    for _ in range(STEADY_PASSES):
        host.array_process.reset_counts()
        cpu_before = time.process_time()
        ms, actions = timed(lambda: reconciler.run(dry_run=False))
        steady_cpu_ms.append((time.process_time() - cpu_before) * 1000)
        steady_ms.append(ms)
        steady_requests.append(host.array_requests())
        by_call.update({call: n for (_, call), n in host.array_process.counts.items()})
        steady_actions += len(actions)  # type: ignore[arg-type]
    observe_ms, plan_ms = [], []
    for _ in range(SPLIT_PASSES):
        ms, observed = timed(reconciler._reader.read)
        observe_ms.append(ms)
        plan_ms.append(timed(lambda: plan(observed, reconciler._policy))[0])  # noqa: B023
    return {
        "devices before": devices_before,
        "devices after": device_count(host.tree),
        "first ms": first_ms,
        "first requests": first_requests,
        "first actions": kinds,
        "steady ms": steady_ms,
        "steady cpu ms": steady_cpu_ms,
        "load": (load_before, os.getloadavg()),
        "steady requests": steady_requests,
        "steady actions": steady_actions,
        "steady calls": by_call,
        "observe ms": observe_ms,
        "plan ms": plan_ms,
    }


def print_host(figures: dict[str, object]) -> None:
    steady_ms: list[float] = figures["steady ms"]  # type: ignore[assignment]
    requests: list[int] = figures["steady requests"]  # type: ignore[assignment]
    observe_ms: list[float] = figures["observe ms"]  # type: ignore[assignment]
    plan_ms: list[float] = figures["plan ms"]  # type: ignore[assignment]
    first: Counter[str] = figures["first actions"]  # type: ignore[assignment]
    median = statistics.median(steady_ms)
    print(f"Reconciler pass over {figures['devices before']} devices ({LUNS} LUNs x {len(PORTALS)} sessions,")
    print(f"multipath), REST, simulator latency 0; world built in {figures['setup s']:.1f} s")
    print(f"  first pass: {figures['first ms']:.0f} ms, {figures['first requests']} array requests, actions:")
    for kind, count in sorted(first.items()):
        print(f"    {count:4d} x {kind}")
    print(f"  devices after the first pass: {figures['devices after']}")
    cpu_ms: list[float] = figures["steady cpu ms"]  # type: ignore[assignment]
    load: tuple[tuple[float, ...], tuple[float, ...]] = figures["load"]  # type: ignore[assignment]
    print(
        f"  steady pass ({len(steady_ms)} passes): median {median:.1f} ms, spread p10 {p10(steady_ms):.1f}"
        f" .. p90 {p90(steady_ms):.1f} ms (min {min(steady_ms):.1f}, max {max(steady_ms):.1f});"
        f" goal <= {PASS_MS_GOAL:.0f} ms -> {median / PASS_MS_GOAL:.2f}x the goal (median)"
    )
    print(
        f"  the agent's CPU per steady pass (its process; the array answers from another): median"
        f" {statistics.median(cpu_ms):.1f} ms; load average {load[0][0]:.2f} before, {load[1][0]:.2f} after"
        f" ({os.cpu_count()} CPUs)"
    )
    calls: Counter[str] = figures["steady calls"]  # type: ignore[assignment]
    print(
        f"  array requests per steady pass: median {statistics.median(requests):g},"
        f" min {min(requests)}, max {max(requests)}; goal {REQUESTS_PER_PASS_GOAL}"
        f" -> {statistics.median(requests) / REQUESTS_PER_PASS_GOAL:.0f}x the goal (median); per pass:"
    )
    for call, count in sorted(calls.items()):
        print(f"    {count / len(requests):5.1f} x {call}")
    print(f"  actions in {len(steady_ms)} steady passes: {figures['steady actions']}")
    print(
        f"  split of a steady pass ({len(observe_ms)} separate runs of its parts): observe"
        f" (StateReader.read, with its array requests) median {statistics.median(observe_ms):.1f} ms,"
        f" plan (plan()) median {statistics.median(plan_ms):.1f} ms"
    )


# --- 2. a fleet on one array ------------------------------------------------------------------


def fleet_initiators(state: State) -> list[str]:
    """A few hosts' igroups with a handful of maps each, by their hosts' initiators: the payload of a
    steady pass's request (the maps that reach one initiator)."""
    initiators = []
    with state.lock:
        svm = state.svm(SVM)
        for g in range(FLEET_IGROUPS):
            name = f"openstack-fleet{g:02d}-0000000{g}"
            group = state.create_igroup(
                svm, name, "iscsi", "linux", (f"iqn.1994-05.com.redhat:fleet{g:02d}",)
            )
            for n in range(LUNS_PER_FLEET_IGROUP):
                lun = state.create_lun(
                    svm, f"/vol/vol1/fleet{g:02d}-{n:02d}", GiB, "linux", f"flt{g:02d}{n:07d}"
                )
                state.map_lun(lun, group, n)
            initiators.append(group.initiators[0])
    return initiators


def fire_times(agent: int, start: datetime, until: datetime) -> list[float]:
    """Seconds after ``start`` at which one agent's passes run, as its Schedule runs them: the first at
    the trigger's start date, each next one from the trigger given the previous fire time."""
    trigger = pass_trigger(INTERVAL, start, random.Random(FLEET_SEED + agent))
    fire = trigger.start_date
    times = []
    while fire < until:
        times.append((fire - start).total_seconds())
        fire = trigger.get_next_fire_time(fire, fire)
    return times


def measure_fleet() -> dict[str, object]:
    random.seed(FLEET_SEED)  # apscheduler draws the jitter from the random module
    start = datetime(2024, 6, 1, tzinfo=UTC)
    until = start + timedelta(seconds=SIMULATED_SECONDS)
    fires = sorted((t, agent) for agent in range(AGENTS) for t in fire_times(agent, start, until))
    sim = Simulator(username=USERNAME, password=PASSWORD)
    sim.start(host="127.0.0.1", port=0, tls=False)
    sim.latency = 0.0
    try:
        initiators = fleet_initiators(sim.state)
        client = client_for(
            str(sim.base_url)
        )  # one connection for all: the simulator counts requests, not clients
        per_second = [0] * SIMULATED_SECONDS
        sim.reset_counts()
        began = time.perf_counter()
        index = 0
        for second in range(SIMULATED_SECONDS):
            before = sim.total("rest")
            while index < len(fires) and fires[index][0] < second + 1:
                agent = fires[index][1]
                client.maps_of_initiator(initiators[agent % len(initiators)])
                index += 1
            per_second[second] = sim.total("rest") - before
        wall_s = time.perf_counter() - began
        client.close()
        return {"fires": len(fires), "per second": per_second, "wall s": wall_s, "total": sim.total("rest")}
    finally:
        sim.stop()


def print_fleet(figures: dict[str, object]) -> None:
    per_second: list[int] = figures["per second"]  # type: ignore[assignment]
    total: int = figures["total"]  # type: ignore[assignment]
    mean = total / len(per_second)
    peak = max(per_second)
    p99 = statistics.quantiles(per_second, n=100, method="inclusive")[-1]
    idle = sum(1 for n in per_second if n == 0) / len(per_second)
    busiest = per_second.index(peak)
    first_minute = per_second[: int(INTERVAL)]
    print(
        f"Fleet: {AGENTS} agents restarted at one instant, interval {INTERVAL:.0f} s (jitter up to"
        f" {INTERVAL * JITTER_SHARE:.0f} s), {SIMULATED_SECONDS} simulated seconds, one shared simulator, REST"
    )
    print(
        f"  passes fired: {figures['fires']}, array requests counted: {total} (real requests, simulated time axis;"
    )
    print(f"  {figures['wall s']:.1f} s of wall time to make them)")
    print(
        f"  mean {mean:.1f}/s (one request per pass: {AGENTS} agents / {INTERVAL:g} s, the mean gap,"
        f" = {AGENTS / INTERVAL:.1f}/s); goal <= {FLEET_PEAK_GOAL}/s"
    )
    windows = [statistics.mean(per_second[i : i + WINDOW]) for i in range(0, len(per_second), WINDOW)]
    print(
        f"  busiest {WINDOW} s window: {max(windows):.1f}/s, quietest {min(windows):.1f}/s"
        f" (passes spread over the interval, no herd)"
    )
    print(
        f"  single seconds: peak {peak}/s (second {busiest}), p99 {p99:.0f}/s: agents that do not"
        f" coordinate land at random within a second, so one second's count scatters around the mean"
    )
    print(
        f"  first minute: peak {max(first_minute)}/s, mean {statistics.mean(first_minute):.1f}/s;"
        f" seconds with no request: {idle:.1%}"
    )
    over = sum(1 for n in per_second if n > FLEET_PEAK_GOAL)
    print(f"  seconds above {FLEET_PEAK_GOAL}/s: {over} of {len(per_second)} ({over / len(per_second):.1%})")


def main() -> int:
    print_host(measure_host())
    print()
    print_fleet(measure_fleet())
    return 0


if __name__ == "__main__":
    sys.exit(main())
