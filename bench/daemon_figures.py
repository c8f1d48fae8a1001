"""The daemon's own figures: exec to READY=1 and to the socket answering, ``GET /v1/health`` latency
at a fixed rate, and RSS over attach/detach cycles. Only the contract is used: the socket, HTTP/JSON.

The daemon runs as systemd would start it (``NOTIFY_SOCKET`` pointing at a datagram socket of
ours), so READY=1 is seen when the daemon sends it. Every loop has a bound in count and in time.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from tests.vmtier.daemon import open_fds, proc_status, request, rss_kib, start

START_TIMEOUT = 300.0  # an exec under software emulation on a loaded machine is slow
HEALTH_RATE = 200  # requests per second
HEALTH_REQUESTS = 2000  # ten seconds at that rate
CYCLES = 100  # ``--cycles=N`` asks for more (the memory check: 1,000)
CYCLE_SECONDS = 6.0  # the budget per cycle; the cycles stop early past CYCLES times it and say how many ran
RSS_GROWTH_GOAL_KIB = 1024  # after warm-up, over the whole run


def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def health_latency(sock: Path) -> dict[str, Any]:
    """Open loop at HEALTH_RATE: latency counts from each request's scheduled start, so a slow
    answer that delays the next requests shows in their latency too (no coordinated omission)."""
    interval = 1.0 / HEALTH_RATE
    latencies: list[float] = []
    failures = 0
    began = time.monotonic()
    for index in range(HEALTH_REQUESTS):
        scheduled = began + index * interval
        pause = scheduled - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        try:
            status, _ = request(sock, "GET", "/v1/health", timeout=10.0)
        except OSError:
            status = 0
        failures += status != 200
        latencies.append(time.monotonic() - scheduled)
    elapsed = time.monotonic() - began
    return {
        "requests": HEALTH_REQUESTS,
        "rate": HEALTH_RATE,
        "achieved_rate": HEALTH_REQUESTS / elapsed,
        "failures": failures,
        "p50_ms": percentile(latencies, 0.50) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "max_ms": max(latencies) * 1000,
    }


def health_service_time(sock: Path, count: int = 200) -> dict[str, Any]:
    """One request at a time (closed loop): the daemon's own time per health answer, without queueing."""
    latencies = []
    for _ in range(count):
        began = time.monotonic()
        request(sock, "GET", "/v1/health", timeout=10.0)
        latencies.append(time.monotonic() - began)
    return {
        "requests": count,
        "p50_ms": percentile(latencies, 0.5) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
    }


def import_seconds(env: Mapping[str, str] | None = None) -> float:
    """Exec of a Python that only imports the daemon's modules: the share of start-up that is the
    interpreter and imports (slow under emulation, over the 9p root), not the agent's own work."""
    began = time.monotonic()
    subprocess.run(
        [sys.executable, "-c", "import iscsi_agent.cli, iscsi_agent.daemon"],
        check=True,
        timeout=START_TIMEOUT,
        env=env,
    )
    return time.monotonic() - began


def import_seconds_compiled() -> float:
    """``import_seconds`` with every module's bytecode cached, as an installed package has it (its
    installation byte-compiles it). A checkout has none for the agent's own modules where bytecode is
    not written (the guest's read-only root, PYTHONDONTWRITEBYTECODE), so each exec compiles them;
    here a first exec writes the bytecode into a cache of its own and the second is timed."""
    with tempfile.TemporaryDirectory(prefix="bench-pycache-") as cache:
        env = {name: value for name, value in os.environ.items() if name != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = cache
        import_seconds(env)
        return import_seconds(env)


def import_figures() -> dict[str, float]:
    return {"import_s": import_seconds(), "import_compiled_s": import_seconds_compiled()}


def cycles(sock: Path, volume: str, pid: int, say: Callable[[str], None]) -> dict[str, Any]:
    """Attach and detach ``volume`` CYCLES times. RSS is sampled along the way; growth is judged from the
    end of warm-up (a tenth of the run, at least 10 cycles: caches, malloc arenas and the journal's
    page cache fill first), and the open fds and threads after the last cycle against before the first.
    Each sample is said as it is taken, so a run cut short by its deadline still shows its course."""
    quoted = quote(volume, safe="")
    warm_up = max(10, CYCLES // 10)
    samples = sorted({1, 10, 50, 100, warm_up, *range(0, CYCLES + 1, max(1, CYCLES // 10))} - {0})
    rss: dict[str, int] = {}
    before = {"fds": open_fds(pid), "threads": proc_status(pid)["Threads"]}
    began = time.monotonic()
    done = 0
    refusals: list[str] = []
    while done < CYCLES and time.monotonic() - began < CYCLES * CYCLE_SECONDS:
        status, body = request(sock, "POST", "/v1/attachments", {"volume": volume})
        if status not in (200, 201):
            raise RuntimeError(f"attach in cycle {done}: {status} {body}")
        status, body = request(sock, "DELETE", f"/v1/attachments/{quoted}")
        if status == 409 and len(refusals) < 10:  # a hook would retry; counted and reported
            refusals.append(f"cycle {done}: {body['error']['message'] if isinstance(body, dict) else body}")
            time.sleep(2)
            status, body = request(sock, "DELETE", f"/v1/attachments/{quoted}")
        if status != 200:
            raise RuntimeError(f"detach in cycle {done}: {status} {body}")
        done += 1
        if done in samples:
            rss[f"after {done}"] = rss_kib(pid)
            took = time.monotonic() - began
            say(
                f"daemon cycle {done}: RSS {rss[f'after {done}']} KiB, fds {open_fds(pid)}, "
                f"threads {proc_status(pid)['Threads']}, {took:.0f} s"
            )
    rss[f"after {done}"] = rss_kib(pid)
    after = {"fds": open_fds(pid), "threads": proc_status(pid)["Threads"]}
    return {
        "cycles": done,
        "seconds": time.monotonic() - began,
        "rss_kib": rss,
        "warm_up": warm_up,
        "growth_after_warm_up_kib": rss[f"after {done}"] - rss.get(f"after {warm_up}", rss[f"after {done}"]),
        "growth_goal_kib": RSS_GROWTH_GOAL_KIB,
        "before": before,
        "after": after,
        "detach_refusals": refusals,
    }


def measure(
    sim_url: str, results_dir: Path, volumes: Sequence[str], say: Callable[[str], None]
) -> dict[str, Any]:
    """``volumes``: one held attached throughout (the session stays), one attached and detached in cycles.

    Sockets and state live in the guest's own /tmp (the results folder is a 9p share); the daemon's
    log is copied into ``results_dir`` at the end.
    """
    workdir = Path(tempfile.mkdtemp(prefix="bench-daemon-"))
    url = urlsplit(sim_url)
    conf = workdir / "agent.conf"
    conf.touch(mode=0o600)  # it holds the password: the agent refuses it readable by everyone
    conf.write_text(
        f"[agent]\nsocket = {workdir / 'agent.sock'}\nstate_dir = {workdir / 'state'}\n"
        f"[array]\nhostname = {url.hostname}\nport = {url.port}\nscheme = http\nusername = admin\n"
        "password = netapp1!\nvserver = svm1\n[iscsi]\ndevice_timeout = 90\nlogin_timeout = 30\n"
        "[metrics]\nlisten =\n"
    )
    results: dict[str, Any] = import_figures()
    try:
        process, results["start"] = start(conf, workdir)
    finally:
        results_dir.mkdir(parents=True, exist_ok=True)
        shutil.copy(workdir / "agent.log", results_dir / "agent-start.log")
    say(f"daemon: {results['start']}")
    sock = workdir / "agent.sock"
    try:
        results["rss_kib_at_ready"] = rss_kib(process.pid)
        try:
            results["health"] = health_latency(sock)
        except Exception as exc:  # noqa: BLE001 - reported, the cycles still run
            results["health"] = {"error": f"{type(exc).__name__}: {exc}"}
        try:
            results["health_closed_loop"] = health_service_time(sock)
        except Exception as exc:  # noqa: BLE001 - reported
            results["health_closed_loop"] = {"error": f"{type(exc).__name__}: {exc}"}
        say(f"daemon health: {results['health']}, one at a time: {results['health_closed_loop']}")
        anchor, cycled = volumes
        status, body = request(sock, "POST", "/v1/attachments", {"volume": anchor})
        if status not in (200, 201):
            raise RuntimeError(f"attach {anchor}: {status} {body}")
        try:
            results["cycles"] = cycles(sock, cycled, process.pid, say)
        except Exception as exc:  # noqa: BLE001 - reported with what was reached
            results["cycles"] = {"error": f"{type(exc).__name__}: {exc}"}
        say(f"daemon cycles: {results['cycles']}")
        request(sock, "DELETE", f"/v1/attachments/{quote(anchor, safe='')}")
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
        results_dir.mkdir(parents=True, exist_ok=True)
        shutil.copy(workdir / "agent.log", results_dir / "agent.log")
    return results


def on_this_machine(say: Callable[[str], None]) -> dict[str, Any]:
    """Start to READY and health latency with the daemon on this machine (no VM, no emulation):
    the socket path does not need a SCSI layer, and emulation slows it by an order of magnitude."""
    from ontap_sim import Simulator

    sim = Simulator()
    url = urlsplit(sim.start())
    workdir = Path(tempfile.mkdtemp(prefix="bench-daemon-host-"))
    conf = workdir / "agent.conf"
    conf.touch(mode=0o600)  # it holds the password: the agent refuses it readable by everyone
    conf.write_text(
        f"[agent]\nsocket = {workdir / 'agent.sock'}\nstate_dir = {workdir / 'state'}\n"
        f"[array]\nhostname = {url.hostname}\nport = {url.port}\nscheme = http\nusername = admin\n"
        "password = netapp1!\nvserver = svm1\n[metrics]\nlisten =\n"
    )
    results: dict[str, Any] = import_figures()
    try:
        process, results["start"] = start(conf, workdir)
        try:
            results["rss_kib_at_ready"] = rss_kib(process.pid)
            results["health"] = health_latency(workdir / "agent.sock")
            results["health_closed_loop"] = health_service_time(workdir / "agent.sock")
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(60)
    finally:
        sim.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    say(f"daemon on this machine: {results}")
    return results
