"""Inside the VM: the host-side benchmarks of one run, agent beside the raw floor and os-brick.

The iSCSI stack comes up as for the VM tests; the simulator (ZAPI and REST) mirrors maps into
tgtd. The agent's attach service is built as the daemon builds it (``service.build``) and driven
in-process, as os-brick is (``bench/osbrick_runner.py``, its own venv); the floor is the plain
command sequence (``bench/floor.py``). The daemon figures use the real ``iscsi-agent`` over its
socket. Every figure lands in ``bench.json`` in the results folder; a figure that could not be
measured carries the reason instead. Loopback only; every loop is bounded.

Usage: python -m bench.guest RESULTS_DIR OSBRICK_PYTHON [--quick] [--only=calls,single,...] [--cycles=N]
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

from bench import daemon_figures, floor
from bench.split import StepTimes, TimedJournal, split
from iscsi_agent.array.client import ArrayClient
from iscsi_agent.array.connect import connect
from iscsi_agent.config import parse_config
from iscsi_agent.host.command import CommandResult, SubprocessRunner
from iscsi_agent.host.routes import KernelRoutes
from iscsi_agent.host.waiting import SystemClock
from iscsi_agent.journal.store import FILE_NAME, Journal
from iscsi_agent.service.build import build_host, build_services
from iscsi_agent.service.volumes import VolumeService
from ontap_sim import Simulator
from ontap_sim.mirror import TgtMirror
from ontap_sim.seed import DEFAULT_SEED
from ontap_sim.tgt import Tgtadm
from tests.vm.cleanup import reset_initiator
from tests.vmtier.guest import start_stack

ROUNDS = 5  # timed rounds per implementation of the single attaches; the median is reported
PARALLEL = 16
PORTAL = "127.0.0.1:3260"
PORTALS = ("127.0.0.1:3260", "127.0.0.2:3260")
HOSTNAME = "bench-host"
LUN_COUNT = 32
OSBRICK_TIMEOUT = 900.0


def vol(index: int) -> str:
    return f"/vol/vol1/lun{index}"


# LUNs by use, so no figure depends on what another left behind.
COUNT_LUNS = (vol(0), vol(1))
AGENT_PAIR, FLOOR_PAIR, OSBRICK_PAIR = (vol(2), vol(3)), (vol(4), vol(5)), (vol(6), vol(7))
PARALLEL_LUNS = tuple(vol(i) for i in range(8, 8 + PARALLEL))
MULTIPATH_LUN = vol(24)
DAEMON_LUNS = (vol(25), vol(26))


def seed() -> dict[str, Any]:
    svm = dict(DEFAULT_SEED["svms"][0])
    svm["volumes"] = [
        {
            "name": "vol1",
            "node": "node-01",
            "luns": [{"name": f"lun{i}", "size": 1 << 30} for i in range(LUN_COUNT)],
        }
    ]
    return {**DEFAULT_SEED, "svms": [svm]}


def say(text: str) -> None:
    print(f"[bench] {text}", flush=True)


@dataclass
class CountingRunner:
    """The real runner, counting iscsiadm invocations by operation (``-m node -o new``, ``--login``, ...)."""

    inner: SubprocessRunner = field(default_factory=SubprocessRunner)
    calls: list[tuple[str, ...]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, argv: Sequence[str], *, timeout: float, secrets: Sequence[str] = ()) -> CommandResult:
        if Path(argv[0]).name == "iscsiadm":
            with self.lock:
                self.calls.append(tuple(argv))
        return self.inner(argv, timeout=timeout, secrets=secrets)

    def take(self) -> list[str]:
        with self.lock:
            taken, self.calls = self.calls, []
        return [" ".join(a for a in argv[1:] if not a.startswith("iqn.")) for argv in taken]


@dataclass
class Agent:
    service: VolumeService
    array: ArrayClient
    journal: Journal
    runner: CountingRunner
    steps: StepTimes

    def close(self) -> None:
        self.journal.close()
        self.array.close()


def build_agent(sim_url: str, state_dir: Path, api: str, initiator: str, *, multipath: bool = False) -> Agent:
    url = urlsplit(sim_url)
    config = parse_config(
        f"[agent]\nstate_dir = {state_dir}\n"
        f"[array]\nhostname = {url.hostname}\nport = {url.port}\nscheme = http\nusername = admin\n"
        f"password = netapp1!\nvserver = svm1\napi = {api}\n"
        f"[iscsi]\ndevice_timeout = 90\nlogin_timeout = 30\nmultipath = {str(multipath).lower()}\n",
        Path("bench.conf"),
    )
    array = connect(config.array.to_settings())
    clock = SystemClock()
    runner = CountingRunner()
    journal = Journal.open(config.agent.state_dir / FILE_NAME)
    steps = StepTimes()
    services = build_services(
        config,
        array=array,
        host=build_host(config, runner, clock),
        routes=KernelRoutes(),
        journal=cast(Journal, TimedJournal(journal, steps)),
        initiator=initiator,
        hostname=HOSTNAME,
        clock=clock,
        observer=steps,
    )
    return Agent(services.volumes, array, journal, runner, steps)


def timed(action: Callable[[], object]) -> float:
    started = time.monotonic()
    action()
    return time.monotonic() - started


def attempt(results: dict[str, Any], key: str, action: Callable[[], Any]) -> Any:
    """Run one measurement; a failure is recorded under its key with the reason, and the run goes on."""
    try:
        value = action()
    except Exception as exc:  # noqa: BLE001 - a figure that failed is reported, never faked
        say(f"{key}: FAILED {exc!r}\n{traceback.format_exc()[-3000:]}")
        results[key] = {"error": f"{type(exc).__name__}: {exc}"[:400]}
        return None
    results[key] = value
    say(f"{key}: {json.dumps(value)}")
    return value


class Array:
    """Maps for the floor and os-brick, made straight in the simulator's state (untimed set-up)."""

    def __init__(self, sim: Simulator, initiator: str) -> None:
        self.sim = sim
        self.initiator = initiator

    def _igroup(self) -> Any:
        state = self.sim.state
        mine = [ig for ig in state.igroups.values() if self.initiator in ig.initiators]
        if mine:
            return mine[0]
        return state.create_igroup(
            state.svm("svm1"), f"openstack-{HOSTNAME}-bench", initiators=(self.initiator,)
        )

    def map(self, path: str) -> int:
        with self.sim.state.lock:
            return self.sim.state.map_lun(self.sim.state.lun("svm1", path=path), self._igroup()).lun_id

    def unmap_all(self) -> None:
        with self.sim.state.lock:
            state = self.sim.state
            for lun_map in list(state.maps):
                state.unmap_lun(state.luns[lun_map.lun_uuid], state.igroups[lun_map.igroup_uuid])

    def drop_igroups(self) -> None:
        """Back to a host the array has never seen: the next cold attach creates the igroup."""
        self.unmap_all()
        with self.sim.state.lock:
            for igroup in list(self.sim.state.igroups.values()):
                self.sim.state.destroy_igroup(igroup)

    def target_iqn(self) -> str:
        with self.sim.state.lock:
            service = self.sim.state.svm("svm1").iscsi
            assert service is not None
            return service.target_iqn


class OsBrick:
    """The os-brick runner process; ``None`` answers mean it could not be used (reason in ``broken``)."""

    def __init__(self, python: str, lock_dir: Path) -> None:
        self.broken: str | None = None
        self.process: subprocess.Popen[str] | None = None
        if not Path(python).exists():
            self.broken = f"{python} not found (the bench's os-brick venv was not created)"
            return
        lock_dir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [python, "-W", "ignore", str(Path(__file__).with_name("osbrick_runner.py")), str(lock_dir)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=(lock_dir / "os-brick.log").open("w"),
            text=True,
        )
        first = self._read()
        if "error" in first:
            self.broken = first["error"]

    def _read(self) -> dict[str, Any]:
        assert self.process is not None and self.process.stdout is not None
        holder: list[str] = []
        reader = threading.Thread(target=lambda: holder.append(self.process.stdout.readline()), daemon=True)  # type: ignore[union-attr]
        reader.start()
        reader.join(OSBRICK_TIMEOUT)
        if not holder or not holder[0]:
            self.broken = "the os-brick runner gave no answer"
            return {"error": self.broken}
        return json.loads(holder[0])

    def call(self, **request: Any) -> dict[str, Any]:
        if self.broken is not None or self.process is None or self.process.stdin is None:
            raise RuntimeError(f"os-brick unavailable: {self.broken}")
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        answer = self._read()
        if "error" in answer:
            raise RuntimeError(f"os-brick: {answer['error']} {answer.get('trace', '')}")
        return answer

    def close(self) -> None:
        if self.process is not None:
            if self.process.stdin is not None:
                self.process.stdin.close()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()


def props(iqn: str, lun_id: int, name: str, portals: Sequence[str] = (PORTAL,)) -> dict[str, Any]:
    """os-brick's iSCSI connection properties, as Cinder's NetApp driver hands them over."""
    data: dict[str, Any] = {
        "target_discovered": False,
        "target_portal": portals[0],
        "target_iqn": iqn,
        "target_lun": lun_id,
        "volume_id": name.replace("/", "_"),
    }
    if len(portals) > 1:
        data.update(
            target_portals=list(portals),
            target_iqns=[iqn] * len(portals),
            target_luns=[lun_id] * len(portals),
        )
    return data


def clean(array: Array) -> None:
    reset_initiator()
    array.unmap_all()


# -- 1 and 2: array calls and iscsiadm calls per attach and detach ------------------------------------


def count_calls(sim: Simulator, agent: Agent) -> dict[str, Any]:
    """Requests per step; a step that fails is recorded with its reason and tried once more (a detach
    refused while a udev probe still holds the device is the case seen under load), so one refusal
    does not cost the other figures."""

    def step(action: Callable[[], object]) -> dict[str, Any]:
        sim.reset_counts()
        agent.runner.take()
        refused = None
        try:
            action()
        except Exception as exc:  # noqa: BLE001 - recorded beside the counts of the second try
            refused = f"{type(exc).__name__}: {exc}"[:300]
            say(f"counting: first try failed ({refused}); trying once more")
            time.sleep(2)
            action()
        requests = sorted(
            f"{name} x{count}" if count > 1 else name for (_, name), count in sim.counts.items()
        )
        counted = {
            "array": sim.total("zapi") + sim.total("rest"),
            "array_requests": requests,
            "iscsiadm": agent.runner.take(),
        }
        return counted if refused is None else {**counted, "first_try_failed": refused}

    first, second = COUNT_LUNS
    steps: list[tuple[str, Callable[[], object]]] = [
        ("attach cold (new host, first LUN)", lambda: agent.service.attach(first)),
        ("attach warm, second LUN on a live session", lambda: agent.service.attach(second)),
        ("detach, another LUN stays", lambda: agent.service.detach(second, force=False)),
        ("detach, last LUN of the target", lambda: agent.service.detach(first, force=False)),
        ("attach warm, first LUN of the target", lambda: agent.service.attach(first)),
        ("detach, last LUN (again)", lambda: agent.service.detach(first, force=False)),
    ]
    counts: dict[str, Any] = {}
    for name, action in steps:
        try:
            counts[name] = step(action)
        except Exception as exc:  # noqa: BLE001 - the other steps are still counted
            counts[name] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
    return counts


# -- 3: first LUN, second LUN on a live session, one detach -------------------------------------------


def round_agent(agent: Agent) -> dict[str, float]:
    first, second = AGENT_PAIR
    times = {
        **by_step("first", split(agent.steps, lambda: agent.service.attach(first))),
        **by_step("second", split(agent.steps, lambda: agent.service.attach(second))),
        **by_step("detach", split(agent.steps, lambda: agent.service.detach(second, force=False))),
    }
    agent.service.detach(first, force=False)
    return times


def round_floor(array: Array, iqn: str) -> dict[str, float]:
    first, second = (array.map(path) for path in FLOOR_PAIR)
    steps: dict[str, dict[str, float]] = {"first": {}, "second": {}, "detach": {}}
    times = {"first": timed(lambda: floor.attach_first(PORTAL, iqn, [first], steps["first"]))}
    times["second"] = timed(lambda: floor.scan_and_wait(PORTAL, iqn, [second], floor.Steps(steps["second"])))
    times["detach"] = timed(lambda: floor.detach(floor.by_path(PORTAL, iqn, second), steps["detach"]))
    for phase, split_up in steps.items():
        times.update(by_step(phase, split_up))
    floor.detach(floor.by_path(PORTAL, iqn, first))
    floor.logout(PORTAL, iqn)
    return times


def by_step(phase: str, seconds: dict[str, float]) -> dict[str, float]:
    """A phase's split as flat keys ("first", "first step login", ...), which ``summarize`` takes medians of."""
    return {(phase if name == "total" else f"{phase} step {name}"): value for name, value in seconds.items()}


def round_osbrick(brick: OsBrick, array: Array, iqn: str) -> dict[str, float]:
    first, second = ((props(iqn, array.map(path), path)) for path in OSBRICK_PAIR)
    one = brick.call(op="connect", props=first)
    two = brick.call(op="connect", props=second)
    gone = brick.call(op="disconnect", props=second, device=two["device"])
    brick.call(op="disconnect", props=first, device=one["device"])
    return {"first": one["seconds"], "second": two["seconds"], "detach": gone["seconds"]}


def single_attach(agent: Agent, brick: OsBrick, array: Array, iqn: str) -> dict[str, Any]:
    rounds: dict[str, list[dict[str, float] | str]] = {"agent": [], "floor": [], "os-brick": []}
    runs: dict[str, Callable[[], dict[str, float]]] = {
        "agent": lambda: round_agent(agent),
        "floor": lambda: round_floor(array, iqn),
        "os-brick": lambda: round_osbrick(brick, array, iqn),
    }
    names = list(runs)
    for index in range(ROUNDS):
        for name in names[index % 3 :] + names[: index % 3]:  # rotate the order: noise hits each alike
            try:
                rounds[name].append(runs[name]())
            except Exception as exc:  # noqa: BLE001 - recorded; the other implementations still run
                say(f"round {index} {name} FAILED: {exc!r}\n{traceback.format_exc()[-3000:]}")
                rounds[name].append(f"{type(exc).__name__}: {exc}"[:400])
            finally:
                clean(array)
            say(f"round {index} {name}: {rounds[name][-1]}")
    return {name: summarize(samples) for name, samples in rounds.items()}


def summarize(samples: Sequence[dict[str, float] | str]) -> dict[str, Any]:
    """Medians per key; a step one round did not take (a login the session made unnecessary) took 0 s."""
    good = [s for s in samples if isinstance(s, dict)]
    if not good:
        return {"error": str(samples[0]) if samples else "no sample"}
    keys = dict.fromkeys(key for s in good for key in s)
    return {
        key: {
            "median": statistics.median(s.get(key, 0.0) for s in good),
            "samples": [s.get(key, 0.0) for s in good],
        }
        for key in keys
    }


# -- 4: 16 attaches in parallel -----------------------------------------------------------------------


def parallel(agent: Agent, brick: OsBrick, array: Array, iqn: str) -> dict[str, Any]:
    results: dict[str, Any] = {}

    def agent_run() -> dict[str, Any]:
        with ThreadPoolExecutor(len(PARALLEL_LUNS)) as pool:
            steps = split(agent.steps, lambda: list(pool.map(agent.service.attach, PARALLEL_LUNS)))
            list(pool.map(lambda v: agent.service.detach(v, force=False), PARALLEL_LUNS))
        return {"seconds": steps.pop("total"), "steps": steps}

    def floor_run() -> dict[str, float]:
        ids = [array.map(path) for path in PARALLEL_LUNS]
        seconds = timed(lambda: floor.attach_first(PORTAL, iqn, ids))
        return {"seconds": seconds}

    def osbrick_run() -> dict[str, float]:
        every = [props(iqn, array.map(path), path) for path in PARALLEL_LUNS]
        attached = brick.call(op="connect_many", props=every)
        brick.call(op="disconnect_many", props=every, devices=attached["devices"])
        return {"seconds": attached["seconds"]}

    for name, run in (("floor", floor_run), ("agent", agent_run), ("os-brick", osbrick_run)):
        try:
            attempt(results, name, run)
        finally:
            clean(array)
    return results


# -- 5: multipath over both portals -------------------------------------------------------------------


def multipath(agent_mp: Agent, brick: OsBrick, array: Array, iqn: str) -> dict[str, Any]:
    results: dict[str, Any] = {}

    def agent_run() -> dict[str, Any]:
        attached: list[Any] = []
        steps = split(agent_mp.steps, lambda: attached.append(agent_mp.service.attach(MULTIPATH_LUN)[0]))
        figures = {
            "seconds": steps.pop("total"),
            "steps": steps,
            "device": str(attached[0].device),
            "portals": len(attached[0].portals),
        }
        try:
            agent_mp.service.detach(MULTIPATH_LUN, force=False)
        except Exception as exc:  # noqa: BLE001 - the attach was measured; say why the detach was refused
            figures["detach_error"] = f"{type(exc).__name__}: {exc}"[:400]
            agent_mp.service.detach(MULTIPATH_LUN, force=True)
        return figures

    def osbrick_run() -> dict[str, Any]:
        request = props(iqn, array.map(MULTIPATH_LUN), MULTIPATH_LUN, PORTALS)
        attached = brick.call(op="connect", props=request, multipath=True)
        brick.call(op="disconnect", props=request, device=attached["device"], multipath=True)
        return {"seconds": attached["seconds"], "device": attached["device"].get("path")}

    for name, run in (("agent", agent_run), ("os-brick", osbrick_run)):
        try:
            attempt(results, name, run)
        finally:
            clean(array)
    return results


# -- the run ------------------------------------------------------------------------------------------


def initiator_name() -> str:
    for line in Path("/etc/iscsi/initiatorname.iscsi").read_text().splitlines():
        if line.startswith("InitiatorName="):
            return line.partition("=")[2].strip()
    raise RuntimeError("/etc/iscsi/initiatorname.iscsi has no InitiatorName")


@dataclass
class Run:
    results: dict[str, Any]
    phases: Sequence[str]
    sim: Simulator
    sim_url: str
    array: Array
    brick: OsBrick
    agents: dict[str, Agent]
    initiator: str
    iqn: str
    work: Path
    results_dir: Path


def run_phases(run: Run) -> None:
    for api in ("zapi", "rest"):
        run.array.drop_igroups()
        run.agents[api] = counted = build_agent(run.sim_url, run.work / f"state-{api}", api, run.initiator)
        if "calls" in run.phases:
            try:
                attempt(run.results, f"calls {api}", lambda counted=counted: count_calls(run.sim, counted))
            finally:
                clean(run.array)
    agent = run.agents["rest"]
    if "single" in run.phases:
        say("timing first LUN, second LUN, detach: agent, floor, os-brick")
        attempt(run.results, "single", lambda: single_attach(agent, run.brick, run.array, run.iqn))
    if "parallel" in run.phases:
        say(f"timing {len(PARALLEL_LUNS)} attaches in parallel")
        attempt(run.results, "parallel", lambda: parallel(agent, run.brick, run.array, run.iqn))
    if "multipath" in run.phases:
        say("timing a multipath attach over both portals")
        run.agents["multipath"] = build_agent(
            run.sim_url, run.work / "state-mp", "rest", run.initiator, multipath=True
        )
        attempt(
            run.results,
            "multipath",
            lambda: multipath(run.agents["multipath"], run.brick, run.array, run.iqn),
        )
    if "daemon" in run.phases:
        say("the daemon: start to READY, health p99, RSS over attach/detach cycles")
        attempt(
            run.results,
            "daemon",
            lambda: daemon_figures.measure(run.sim_url, run.results_dir / "daemon", DAEMON_LUNS, say),
        )


PHASES = ("calls", "single", "parallel", "multipath", "daemon")


def main(
    results_dir: Path,
    osbrick_python: str,
    quick: bool = False,
    phases: Sequence[str] = PHASES,
    cycles: int | None = None,
) -> int:
    """``phases``: all by default (one run gives every figure); a subset re-measures only those.
    ``cycles``: the daemon's attach/detach cycles (the memory check runs 1,000)."""
    global ROUNDS, PARALLEL_LUNS
    if cycles is not None:
        daemon_figures.CYCLES = cycles
    if quick:  # a smoke run of the whole flow: every figure, fewer samples
        ROUNDS, PARALLEL_LUNS = 1, PARALLEL_LUNS[:4]
        daemon_figures.CYCLES, daemon_figures.HEALTH_REQUESTS = 3, 200
    out = results_dir / "bench.json"
    results: dict[str, Any] = {
        "rounds": ROUNDS,
        "parallel_count": len(PARALLEL_LUNS),
        "quick": quick,
        "phases": list(phases),
    }
    with (results_dir / "stack.log").open("w") as log:
        started = time.monotonic()
        start_stack(log)
    say(f"iSCSI stack up in {time.monotonic() - started:.1f} s")
    work = Path(tempfile.mkdtemp(prefix="bench-"))  # the guest's own /tmp: SQLite and tgtd stay off 9p
    sim = Simulator(seed=seed(), tgt=TgtMirror(Tgtadm(backing_dir=work / "backing"), tid=1))
    sim_url = sim.start()
    initiator = initiator_name()
    array = Array(sim, initiator)
    iqn = array.target_iqn()
    brick = OsBrick(osbrick_python, work / "os-brick")
    if brick.broken:
        say(f"os-brick: not usable: {brick.broken}")
        results["os-brick unavailable"] = brick.broken
    agents: dict[str, Agent] = {}
    try:
        run_phases(
            Run(results, phases, sim, sim_url, array, brick, agents, initiator, iqn, work, results_dir)
        )
        clean(array)
    finally:
        out.write_text(json.dumps(results, indent=1))
        for agent in agents.values():
            agent.close()
        brick.close()
        sim.stop()
        if (work / "os-brick" / "os-brick.log").exists():
            shutil.copy(work / "os-brick" / "os-brick.log", results_dir / "os-brick.log")
    return 0


if __name__ == "__main__":
    flags = sys.argv[3:]
    only = [flag.split("=", 1)[1].split(",") for flag in flags if flag.startswith("--only=")]
    cycles = [int(flag.split("=", 1)[1]) for flag in flags if flag.startswith("--cycles=")]
    sys.exit(
        main(
            Path(sys.argv[1]),
            sys.argv[2],
            quick="--quick" in flags,
            phases=only[0] if only else PHASES,
            cycles=cycles[0] if cycles else None,
        )
    )
