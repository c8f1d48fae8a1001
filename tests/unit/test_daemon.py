"""The daemon's start-up: what it costs before READY=1."""

from __future__ import annotations

import itertools
import json
import os
import select
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import iscsi_agent
from iscsi_agent import daemon
from iscsi_agent.config import parse_config
from iscsi_agent.daemon import Daemon

# Each costs tenths of a second on a host and seconds under emulation, and none is needed before the
# first request: pyroute2 asks routes at an attach, requests and lxml talk to the array once the agent
# serves, apscheduler runs the reconciler's schedule once the agent serves.
LOADED_WHEN_FIRST_USED = ("pyroute2", "requests", "lxml", "apscheduler")
PACKAGE_ROOT = Path(iscsi_agent.__file__).parent.parent


@pytest.mark.allow_subprocess
def test_starting_the_agent_loads_no_library_its_first_request_does_not_need():
    """A fresh interpreter, as systemd execs the agent: its entry point's imports leave them unloaded."""
    probe = (
        "import sys, json, iscsi_agent.cli; "
        f"print(json.dumps(sorted(m for m in {LOADED_WHEN_FIRST_USED!r} if m in sys.modules)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=PACKAGE_ROOT,
        env={**os.environ, "PYTHONPATH": str(PACKAGE_ROOT)},
    )
    loaded = json.loads(done.stdout)
    assert loaded == [], (
        f"imported at start-up (python -X importtime -c 'import iscsi_agent.cli' says by whom): {loaded}"
    )


class FirstNotification:
    """systemd's side of sd_notify: on READY=1, notes whether the array was already asked, and stops the
    agent; the array goes away, so that the agent's first request to it is refused at once."""

    def __init__(self, array: socket.socket, stop: threading.Event) -> None:
        self._array = array
        self._stop = stop
        self.ready: str | None = None
        self.array_asked_before_ready: bool | None = None

    def notify(self, state: str) -> None:
        if state.startswith("READY=1") and self.ready is None:
            self.ready = state
            self.array_asked_before_ready = bool(select.select([self._array], [], [], 0)[0])
            self._array.close()
            self._stop.set()


def test_the_agent_is_ready_before_it_asks_the_array(tmp_path):
    """An array that is slow or unreachable at boot must not hold the start; health, the SVM's facts and
    attaches ask it once the agent serves."""
    (tmp_path / "host" / "etc" / "iscsi").mkdir(parents=True)
    (tmp_path / "host" / "etc" / "iscsi" / "initiatorname.iscsi").write_text(
        "InitiatorName=iqn.1993-08.org.debian:01:host1\n"
    )
    with socket.create_server(("127.0.0.1", 0)) as array:  # listens, never answers
        config = parse_config(
            f"[agent]\nhost_root = {tmp_path / 'host'}\nsocket = {tmp_path / 'agent.sock'}\n"
            f"state_dir = {tmp_path / 'state'}\n"
            f"[array]\nhostname = 127.0.0.1\nport = {array.getsockname()[1]}\nscheme = http\n"
            "vserver = svm1\ntimeout = 1\nconnect_timeout = 1\n[metrics]\nlisten =\n",
            tmp_path / "agent.conf",
        )
        stop = threading.Event()
        systemd = FirstNotification(array, stop)

        assert Daemon(config, systemd, {}, stop).run() == 0

    assert systemd.ready == "READY=1\nSTATUS=serving: 0 attachments, 0 sessions, array not asked yet"
    assert systemd.array_asked_before_ready is False


class WatchdogPings:
    """systemd's side while the agent serves: the time of READY=1 and of each WATCHDOG=1 after it; the
    agent is stopped ``serve_for`` seconds after READY=1."""

    def __init__(self, stop: threading.Event, serve_for: float) -> None:
        self._stop = stop
        self._serve_for = serve_for
        self.ready_at: float | None = None
        self.pings: list[float] = []

    def notify(self, state: str) -> None:
        now = time.monotonic()
        if state.startswith("READY=1"):
            self.ready_at = now
            threading.Timer(self._serve_for, self._stop.set).start()
        elif state.startswith("WATCHDOG=1"):
            self.pings.append(now)


def serve_with_a_watchdog(tmp_path: Path, serve_for: float, array_timeout: int) -> WatchdogPings:
    """The agent under a 0.5 s WatchdogSec (a ping every 0.25 s), against an array that listens and
    never answers, stopped ``serve_for`` seconds after READY=1."""
    (tmp_path / "host" / "etc" / "iscsi").mkdir(parents=True)
    (tmp_path / "host" / "etc" / "iscsi" / "initiatorname.iscsi").write_text(
        "InitiatorName=iqn.1993-08.org.debian:01:host1\n"
    )
    with socket.create_server(("127.0.0.1", 0)) as array:
        config = parse_config(
            f"[agent]\nhost_root = {tmp_path / 'host'}\nsocket = {tmp_path / 'agent.sock'}\n"
            f"state_dir = {tmp_path / 'state'}\n"
            f"[array]\nhostname = 127.0.0.1\nport = {array.getsockname()[1]}\nscheme = http\n"
            f"vserver = svm1\ntimeout = {array_timeout}\nconnect_timeout = 1\n[metrics]\nlisten =\n",
            tmp_path / "agent.conf",
        )
        stop = threading.Event()
        systemd = WatchdogPings(stop, serve_for)
        watchdog = {"WATCHDOG_USEC": "500000", "WATCHDOG_PID": str(os.getpid())}
        assert Daemon(config, systemd, watchdog, stop).run() == 0
    assert systemd.ready_at is not None
    return systemd


def gaps(systemd: WatchdogPings) -> list[float]:
    """The times between READY=1 and the first ping, and between pings."""
    beats = [systemd.ready_at or 0.0, *systemd.pings]
    return [later - earlier for earlier, later in itertools.pairwise(beats)]


@pytest.mark.allow_subprocess  # the vitals start iscsiadm --version before each ping
def test_the_watchdog_is_pinged_on_time_while_the_array_does_not_answer(tmp_path):
    """An array that hangs must not get a working agent killed by systemd's watchdog: the ping does not
    wait for the array, whatever STATUS= would like to say about it."""
    systemd = serve_with_a_watchdog(tmp_path, serve_for=3.0, array_timeout=2)
    assert len(systemd.pings) >= 6, f"{len(systemd.pings)} pings in 3 s"
    assert max(gaps(systemd)) < 1.0, f"the longest time without a ping was {max(gaps(systemd)):.1f} s"


@pytest.mark.allow_subprocess  # the vitals start iscsiadm --version before each ping
def test_the_watchdog_is_pinged_on_time_while_the_reconcilers_schedule_is_slow_to_start(
    tmp_path, monkeypatch: pytest.MonkeyPatch
):
    """Making the schedule imports apscheduler: seconds under an emulated CPU (the systemd tier's agent
    was killed by its 5 s watchdog for it), and none of it may come between READY=1 and the pings."""

    class SlowSchedule(daemon.Schedule):
        def __init__(self, *args, **kwargs) -> None:
            time.sleep(1.5)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(daemon, "Schedule", SlowSchedule)
    systemd = serve_with_a_watchdog(tmp_path, serve_for=3.0, array_timeout=1)
    assert max(gaps(systemd)) < 1.0, f"the longest time without a ping was {max(gaps(systemd)):.1f} s"


class Prepared:
    """The volume service's and the probe's part in the background start: what was asked."""

    def __init__(self, fails_with: Exception | None = None) -> None:
        self.fails_with = fails_with
        self.asked: list[str] = []

    def prepare(self) -> None:
        self.asked.append("prepare")
        if self.fails_with is not None:
            raise self.fails_with

    def health(self) -> None:
        self.asked.append("health")

    def run_scheduled(self) -> None: ...


def test_a_reconciler_schedule_that_cannot_start_is_a_health_problem_and_the_rest_still_starts(
    monkeypatch: pytest.MonkeyPatch,
):
    """A failure on the background start's thread must not end it in silence: no pass would ever run
    again while health said ok."""

    def no_scheduler(*args, **kwargs):
        raise ImportError("No module named 'apscheduler'")

    monkeypatch.setattr(daemon, "Schedule", no_scheduler)
    parts = Prepared()
    background = daemon.Background(parts, 60.0, parts, parts)  # type: ignore[arg-type]
    assert background.problems == ()
    background.run()
    assert background.problems == (
        "the reconciler's schedule did not start (ImportError: No module named 'apscheduler'); "
        "no pass runs until the agent is restarted",
    )
    assert parts.asked == ["prepare", "health"]


def test_a_bug_in_the_background_reads_is_a_health_problem_naming_it(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(daemon, "Schedule", lambda *args, **kwargs: Started())
    parts = Prepared(fails_with=KeyError("target"))
    background = daemon.Background(parts, 60.0, parts, parts)  # type: ignore[arg-type]
    background.run()
    assert background.problems == ("reading the SVM's target and LIFs failed (KeyError: 'target')",)
    assert parts.asked == ["prepare", "health"]


class Started:
    def start(self) -> None: ...

    def stop(self) -> None: ...
