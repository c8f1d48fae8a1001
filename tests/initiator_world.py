"""One host's iscsiadm and kernel, played against the ONTAP simulator, for attach-service unit tests.

``SimulatedInitiator`` is a CommandRunner that answers iscsiadm as open-iscsi 2.1.8 does (node
records, SendTargets discovery of the simulator's target, login and logout making and dropping
sessions in a HostTree), and a kernel step that lets a targeted scan find exactly the LUN the
simulator maps, at that id, to an igroup holding this initiator (so unmapping, id reuse and maps
made by hand behave as on a real host). The VM tier proves the same flows on a real kernel.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from iscsi_agent.host.command import CommandResult, CommandTimeout, mask
from iscsi_agent.host.devices import DeviceIdentity, Devices, Watch
from iscsi_agent.host.paths import HostPaths
from iscsi_agent.host.sessions import ScsiAddress, Sessions
from iscsi_agent.host.waiting import Clock
from ontap_sim import Simulator
from tests.fakes import HostTree

EXIT_SESSION_EXISTS, EXIT_NO_RECORDS, EXIT_LOGIN_FAILED = 15, 21, 19


@dataclass
class LiveSession:
    sid: int
    host: int


@dataclass
class SimulatedInitiator:
    tree: HostTree
    sim: Simulator
    initiator: str
    svm: str = "svm1"
    records: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)
    sessions: dict[tuple[str, str], LiveSession] = field(default_factory=dict)
    calls: list[tuple[str, ...]] = field(default_factory=list)
    unreachable: set[str] = field(default_factory=set)  # portals whose login times out
    hidden: set[str] = field(default_factory=set)  # serials the target never offers (a broken export)
    on_step: list[Callable[[], None]] = field(default_factory=list)  # other programs acting meanwhile
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))
    _names: dict[tuple[int, int, str], str] = field(default_factory=dict)
    kernel: threading.RLock = field(default_factory=threading.RLock)  # one kernel: its acts do not interleave

    # --- the runner -------------------------------------------------------------------
    def __call__(self, argv: Sequence[str], *, timeout: float, secrets: Sequence[str] = ()) -> CommandResult:
        with self.kernel:
            return self._run(tuple(argv), timeout, secrets)

    def _run(self, args: tuple[str, ...], timeout: float, secrets: Sequence[str]) -> CommandResult:
        self.calls.append(tuple(mask(arg, secrets) for arg in args))
        if args[:2] == ("multipath", "-f"):  # the map goes and lets go of its paths
            self.tree.remove_multipath_named(args[-1])
        if args[0] != "iscsiadm":
            return CommandResult(args, 0, "", "")
        mode = _value(args, "-m")
        if mode in ("discovery", "discoverydb"):
            return self._discover(args)
        if mode == "node":
            return self._node(args, timeout)
        return CommandResult(args, 0, "", "")

    @property
    def iscsiadm_calls(self) -> list[tuple[str, ...]]:
        return [call for call in self.calls if call[0] == "iscsiadm"]

    def _discover(self, args: tuple[str, ...]) -> CommandResult:
        if _value(args, "-m") == "discoverydb" and "--discover" not in args:
            return CommandResult(args, 0, "", "")
        portal = _value(args, "-p")
        iqn = self.target_iqn
        for record_portal in (portal,):
            self.records.setdefault((iqn, record_portal), {"node.session.scan": "auto"})
        return CommandResult(args, 0, f"{portal},1 {iqn}\n", "")

    def _node(self, args: tuple[str, ...], timeout: float) -> CommandResult:
        key = (_value(args, "-T"), _value(args, "-p"))
        if "--login" in args:
            if key[1] in self.unreachable:
                raise CommandTimeout(f"login to {key} did not finish within {timeout:g}s", argv=list(args))
            if key in self.sessions:
                return CommandResult(args, EXIT_SESSION_EXISTS, "", "session exists")
            if key not in self.records:
                return CommandResult(args, EXIT_NO_RECORDS, "", "no records found")
            sid = next(self._ids)
            self.sessions[key] = LiveSession(sid, sid + 1)
            self.tree.add_session(sid, sid + 1, key[0], key[1])
            return CommandResult(
                args, 0, f"Login to [iface: default, target: {key[0]}, portal: {key[1]}] successful.\n", ""
            )
        if "--logout" in args:
            session = self.sessions.pop(key, None)
            if session is None:
                return CommandResult(args, EXIT_NO_RECORDS, "", "no matching sessions")
            self.tree.remove_session(session.sid, session.host)
            return CommandResult(args, 0, "", "")
        op = _value(args, "-o")
        if op == "new":
            self.records[key] = {"node.session.scan": "auto"}
            return CommandResult(args, 0, "New iSCSI node added\n", "")
        if op == "delete":
            return CommandResult(
                args, 0 if self.records.pop(key, None) is not None else EXIT_NO_RECORDS, "", ""
            )
        if key not in self.records:
            return CommandResult(args, EXIT_NO_RECORDS, "", "iscsiadm: No records found\n")
        if op == "update":
            names = [args[i + 1] for i, arg in enumerate(args) if arg == "-n"]
            values = [args[i + 1] for i, arg in enumerate(args) if arg == "-v"]
            self.records[key].update(zip(names, values, strict=True))
            return CommandResult(args, 0, "", "")
        shown = "".join(f"{name} = {mask(value, ())}\n" for name, value in sorted(self.records[key].items()))
        return CommandResult(args, 0, "# BEGIN RECORD 2.1.8\n" + shown + "# END RECORD\n", "")

    # --- the kernel ---------------------------------------------------------------------
    @property
    def target_iqn(self) -> str:
        service = self.sim.state.svms[self.svm].iscsi
        assert service is not None
        return service.target_iqn

    def visible_luns(self) -> dict[int, str]:
        """LUN id -> serial of what the simulator maps to igroups holding this initiator."""
        state = self.sim.state
        with state.lock:
            return {
                lun_map.lun_id: state.luns[lun_map.lun_uuid].serial
                for lun_map in state.maps
                if self.initiator.lower()
                in {i.lower() for i in state.igroups[lun_map.igroup_uuid].initiators}
            }

    def kernel_step(self) -> None:
        """What the target offers now becomes what a scan finds; then the tree's kernel acts."""
        with self.kernel:
            self._kernel_step()

    def _kernel_step(self) -> None:
        for act in self.on_step:
            act()
        visible = self.visible_luns()
        self.tree.mapped.clear()
        for (iqn, portal), session in self.sessions.items():
            for lun_id, serial in visible.items():
                if serial in self.hidden:
                    continue
                name = self._names.setdefault((session.host, lun_id, serial), self._next_name())
                self.tree.mapped[(session.host, lun_id)] = {
                    "name": name,
                    "serial": serial,
                    "sid": session.sid,
                    "iqn": iqn,
                    "portal": portal,
                }
        self.tree.kernel_step()

    def _next_name(self) -> str:
        used = set(self._names.values())
        return next(f"sd{c}" for c in "abcdefghijklmnopqrstuvwxyz" if f"sd{c}" not in used)

    def disk_at(self, host: int, lun_id: int) -> str | None:
        folder = self.tree.root / f"sys/class/scsi_device/{ScsiAddress(host, 0, 0, lun_id)}/device/block"
        return next((entry.name for entry in folder.iterdir()), None) if folder.exists() else None


class KernelSessions(Sessions):
    """Sessions whose targeted scan the simulated kernel carries out before the write returns, as Linux
    does (a write to ``scan`` probes synchronously), so parallel scans on one host are not lost."""

    def __init__(self, paths: HostPaths, world: SimulatedInitiator) -> None:
        super().__init__(paths)
        self._world = world

    def scan_lun(self, host: int, lun: int, channel: int = 0, target: int = 0) -> None:
        with self._world.kernel:
            super().scan_lun(host, lun, channel, target)
            self._world.kernel_step()


class KernelDevices(Devices):
    """Devices whose rescan reads the identity anew from what the target now offers at that LUN id, as
    Linux does: after a LUN id is reused, sysfs shows the old LUN until a rescan, the new one after."""

    def __init__(self, paths: HostPaths, clock: Clock, world: SimulatedInitiator, watch: Watch) -> None:
        super().__init__(paths, clock, watch)
        self._world = world

    def fresh_identity(self, address: ScsiAddress) -> DeviceIdentity:
        serial = self._world.visible_luns().get(address.lun)
        if serial is not None and self.block_name(address) is not None:
            self._world.tree.set_identity(address, serial)
        return super().fresh_identity(address)


def _value(args: tuple[str, ...], flag: str) -> str:
    return args[args.index(flag) + 1] if flag in args else ""
