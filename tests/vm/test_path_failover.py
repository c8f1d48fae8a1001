"""A portal that goes away under I/O, on a real kernel: the session's replacement timeout fits the mode.

With ``multipath = true`` the agent gives its sessions a 5 s replacement timeout (NetApp's host guide),
so an I/O stuck on a path whose portal vanished is failed back to dm-multipath after seconds and
retried on the surviving path, instead of waiting out open-iscsi's 120 s. Without multipath the 120 s
stay: the one path must ride out a short outage, and I/O queued meanwhile completes when the portal
returns, with no error. A writer does O_DIRECT writes, each read back, the whole time; the stall is
the longest gap between two completed I/Os after the portal went, printed for the record.

The portal goes as a dead LIF would: tgtd stops listening there (a re-login is refused) and the
TCP connections through it are destroyed at both ends (``ss -K``); the other portal's session is
not touched. Nothing leaves the VM.
"""

from __future__ import annotations

import itertools
import mmap
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Self

from iscsi_agent.array.settings import ApiChoice
from iscsi_agent.host.command import SubprocessRunner
from iscsi_agent.host.paths import HostPaths
from iscsi_agent.host.sessions import Sessions
from iscsi_agent.portal import Portal
from ontap_sim.tgt import Tgtadm
from tests.vm.agent_host import agent_host

MIRROR_TID = 11
VOLUME = "/vol/vol1/lun1"
BLOCK = 4096
BLOCKS = 256  # the writer cycles over the first 1 MiB
FAILOVER_BOUND = 30.0  # seconds; 5 s of replacement timeout plus detection, with room for emulation
OUTAGE = 10.0  # longer than multipath's 5 s, far shorter than the 120 s a single path waits
_run = SubprocessRunner()
_sessions = Sessions(HostPaths())


def pattern(seq: int) -> bytes:
    return seq.to_bytes(8, "big") * (BLOCK // 8)


class Writer:
    """One thread writing a block with O_DIRECT, reading it back and comparing, over and over; it
    records when each write+read completed and stops at the first error."""

    def __init__(self, device: Path) -> None:
        self._fd = os.open(device, os.O_RDWR | os.O_DIRECT)
        self._device = device
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._done: list[float] = []
        self.errors: list[str] = []
        self.written: dict[int, int] = {}  # block -> the sequence number last written there
        self._thread = threading.Thread(target=self._run, name="writer", daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(180)
        if not self._thread.is_alive():
            os.close(self._fd)

    def _run(self) -> None:
        out, back = mmap.mmap(-1, BLOCK), mmap.mmap(-1, BLOCK)  # page-aligned, as O_DIRECT needs
        seq = 0
        while not self._stop.is_set():
            seq += 1
            block = seq % BLOCKS
            out[:] = pattern(seq)
            try:
                os.pwrite(self._fd, out, block * BLOCK)
                os.preadv(self._fd, [back], block * BLOCK)
            except OSError as exc:
                self.errors.append(f"I/O {seq} at block {block}: {exc}")
                return
            if back[:] != out[:]:
                self.errors.append(f"I/O {seq} at block {block}: read back other data")
                return
            with self._lock:
                self.written[block] = seq
                self._done.append(time.monotonic())

    def completed_since(self, moment: float) -> int:
        with self._lock:
            return sum(1 for done in self._done if done > moment)

    def wait_completed_since(self, moment: float, count: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self.errors:
            if self.completed_since(moment) >= count:
                return True
            time.sleep(0.2)
        return False

    def longest_stall_since(self, moment: float) -> float:
        """The longest time without a completed I/O from ``moment`` until now."""
        with self._lock:
            times = [moment, *(done for done in self._done if done > moment), time.monotonic()]
        return max(later - earlier for earlier, later in itertools.pairwise(times))

    def verify(self) -> list[int]:
        """Blocks whose content is not what was last written there (read afresh, O_DIRECT)."""
        assert not self._thread.is_alive()
        fd = os.open(self._device, os.O_RDONLY | os.O_DIRECT)
        back = mmap.mmap(-1, BLOCK)
        try:
            wrong = []
            for block, seq in sorted(self.written.items()):
                os.preadv(fd, [back], block * BLOCK)
                if back[:] != pattern(seq):
                    wrong.append(block)
            return wrong
        finally:
            os.close(fd)


@contextmanager
def portal_away(tgt: Tgtadm, portal: Portal) -> Iterator[float]:
    """The portal gone until exit; yields when it went. tgtd stops listening there, and every TCP
    connection through it is destroyed at both ends, as a dead network leaves them."""
    tgt.remove_portal(portal.address, portal.port)
    try:
        went = time.monotonic()
        for end in (["dst", portal.address, "dport"], ["src", portal.address, "sport"]):
            killed = _run(["ss", "-tnK", *end, "=", f":{portal.port}"], timeout=30)
            print(f"ss -K {' '.join(end)} :{portal.port} -> exit {killed.exit_code}\n{killed.stdout}")
        established = ["state", "established", "dst", portal.address, "dport", "=", f":{portal.port}"]
        left = _run(["ss", "-Htn", *established], timeout=30).stdout  # iscsid's re-logins are refused
        assert not left.strip(), f"connections to {portal} survived ss -K: {left}"
        listening = _run(["ss", "-Hltn", "sport", "=", f":{portal.port}"], timeout=30).stdout
        print(f"listening on :{portal.port} with {portal} away:\n{listening}")
        yield went
    finally:
        tgt.add_portal(portal.address, portal.port)


def session_states(target_iqn: str) -> dict[str, tuple[str, str]]:
    """Portal -> (state, recovery_tmo) of each session to the target, as sysfs shows them."""
    return {
        str(session.portal): (
            session.state,
            Path(f"/sys/class/iscsi_session/session{session.sid}/recovery_tmo").read_text().strip(),
        )
        for session in _sessions.current()
        if session.target_iqn == target_iqn
    }


def record_timeouts(target_iqn: str, portals: tuple[Portal, ...]) -> set[str]:
    """node.session.timeo.replacement_timeout of the node records, as iscsiadm shows them."""
    found = set()
    for portal in portals:
        shown = _run(["iscsiadm", "-m", "node", "-T", target_iqn, "-p", str(portal)], timeout=30).check()
        found |= {
            line.partition("=")[2].strip()
            for line in shown.stdout.splitlines()
            if line.startswith("node.session.timeo.replacement_timeout")
        }
    return found


def path_states(dm: str) -> list[str]:
    """The dm-multipath path states (A active, F failed) of the map, from ``dmsetup status``::

    0 131072 multipath 2 0 0 0 1 1 A 0 2 0 8:16 A 0 0 1 8:32 A 0 0 1
    """
    words = _run(["dmsetup", "status", dm], timeout=30).check().stdout.split()
    return [words[i + 1] for i, word in enumerate(words) if ":" in word and word.split(":")[0].isdigit()]


def busiest_portal(kernel_name: str) -> Portal:
    """The portal of the map's path that carries the writer's I/O now (the most writes in a second):
    dm-multipath's default service-time selector may send a lone writer's I/O down one path only,
    and a path with no I/O on it can go away without anyone waiting."""

    def writes() -> dict[str, int]:  # field 5 of /sys/block/sdX/stat: writes completed
        slaves = Path(f"/sys/block/{kernel_name}/slaves").iterdir()
        return {
            path.name: int(Path(f"/sys/block/{path.name}/stat").read_text().split()[4]) for path in slaves
        }

    before = writes()
    time.sleep(1)
    after = writes()
    busiest = max(after, key=lambda name: after[name] - before.get(name, 0))
    host = int(Path(f"/sys/block/{busiest}/device").resolve().name.split(":")[0])  # H:C:T:L
    [portal] = [session.portal for session in _sessions.current() if session.host_number == host]
    assert portal is not None
    print(f"writes per path in a second: { {name: after[name] - before.get(name, 0) for name in after} }")
    return portal


def wait_for(what: str, predicate: Callable[[], object], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.5)
    print(f"{what}: not within {timeout:g}s")
    return False


def test_with_multipath_io_goes_on_over_the_surviving_path_within_seconds_of_a_portal_going_away(
    tmp_path: Path, initiator_iqn: str
) -> None:
    with agent_host(
        ApiChoice.REST, tmp_path / "state", initiator_iqn, MIRROR_TID, "multipath = true\n"
    ) as agent:
        attachment, _ = agent.service.attach(VOLUME)
        dm = attachment.device.name  # the map's name (its WWID), as dmsetup knows it
        assert wait_for(f"both paths of {dm} active", lambda: path_states(dm) == ["A", "A"], 60)
        before = session_states(attachment.target_iqn)
        records = record_timeouts(attachment.target_iqn, attachment.portals)
        print(
            f"{attachment.device} -> {attachment.device.resolve()}, sessions (state, recovery_tmo): {before}, "
            f"node records' replacement_timeout: {records}"
        )
        with Writer(attachment.device) as writer:
            assert writer.wait_completed_since(time.monotonic(), 20, 60), writer.errors
            gone = busiest_portal(attachment.device.resolve().name)
            with portal_away(agent.tgt, gone) as went:
                resumed = writer.wait_completed_since(went, 50, 150)
                stall = writer.longest_stall_since(went)
                failed_over = wait_for(
                    "the path failed in the map", lambda: sorted(path_states(dm)) == ["A", "F"], 30
                )
                during = (path_states(dm), session_states(attachment.target_iqn))
                print(
                    f"{gone} away: I/O resumed {resumed}, longest stall {stall:.1f}s; paths, sessions: {during}"
                )
            assert wait_for("the path back", lambda: path_states(dm) == ["A", "A"], 90)
        print(f"{writer.completed_since(0)} I/Os, errors: {writer.errors}")
        assert writer.errors == [] and writer.verify() == []
        assert resumed and stall <= FAILOVER_BOUND, f"I/O stalled {stall:.1f}s after {gone} went away"
        assert failed_over  # it went on over the surviving path
        # multipathd also writes its fast_io_fail_tmo (5 by default) into the sessions of a map's paths
        assert {tmo for _, tmo in before.values()} == {"5"} and len(before) == 2 and records == {"5"}
        agent.service.detach(VOLUME, force=False)


def test_without_multipath_io_waits_through_a_portal_outage_shorter_than_the_timeout_and_loses_nothing(
    tmp_path: Path, initiator_iqn: str
) -> None:
    with agent_host(ApiChoice.REST, tmp_path / "state", initiator_iqn, MIRROR_TID) as agent:
        attachment, _ = agent.service.attach(VOLUME)
        [portal] = attachment.portals
        before = session_states(attachment.target_iqn)
        records = record_timeouts(attachment.target_iqn, attachment.portals)
        print(f"{attachment.device} -> {attachment.device.resolve()}, sessions: {before}; {OUTAGE:g}s outage")
        with Writer(attachment.device) as writer:
            assert writer.wait_completed_since(time.monotonic(), 20, 60), writer.errors
            with portal_away(agent.tgt, portal) as went:
                states: list[tuple[float, str]] = []  # (seconds since the portal went, state), each change
                while time.monotonic() < went + OUTAGE:
                    state = _state(attachment.target_iqn)
                    if not states or states[-1][1] != state:
                        states.append((round(time.monotonic() - went, 1), state))
                    time.sleep(0.3)
                failed = "FAILED" in (state for _, state in states)
                during = (writer.completed_since(went + 3), list(writer.errors))
            back = time.monotonic()
            resumed = writer.wait_completed_since(back, 50, 120)
            stall = writer.longest_stall_since(went)
            print(
                f"session states: {states}; I/Os completed 3-{OUTAGE:g}s into the outage, errors: {during}; "
                f"resumed {time.monotonic() - back:.1f}s after the portal returned: {resumed}; "
                f"longest stall {stall:.1f}s"
            )
        print(f"{writer.completed_since(0)} I/Os, errors: {writer.errors}")
        assert failed and during == (0, [])  # I/O was held, not failed, while the portal was away
        assert resumed and writer.errors == [] and writer.verify() == []
        assert {tmo for _, tmo in before.values()} == {"120"} and records == {"120"}
        agent.service.detach(VOLUME, force=False)


def _state(target_iqn: str) -> str:
    [(state, _)] = session_states(target_iqn).values()
    return state
