"""One host's iscsiadm and kernel, played against the ONTAP simulator, for attach-service unit tests.

``SimulatedInitiator`` is a CommandRunner that answers iscsiadm as open-iscsi 2.1.8 does (node
records, SendTargets discovery of the simulator's target, login and logout making and dropping
sessions in a HostTree, record files where iscsiadm keeps them so the secrets the agent writes into
them land somewhere), and a kernel step that lets a targeted scan find exactly the LUN the
simulator maps, at that id, to an igroup holding this initiator (so unmapping, id reuse and maps
made by hand behave as on a real host), through a session to a LIF on one of the map's reporting
nodes only (Selective LUN Map: ONTAP reports a LUN through no other node's LIFs). The VM tier proves the same flows on a real kernel.

open-iscsi ifaces (``-m iface``, ``-I NAME``): an iface record per name besides the built-in
``default``; node records are per iface (``records`` holds the default iface's, ``bound_records``
the others'), and a session remembers the iface it logged in through (sysfs ``ifacename``). A
command that names no iface acts as open-iscsi's does: a discovery binds its records to every iface
record there is (the default only when there is none), a show, update or login acts on the record
of every iface that has one. One session per target and portal: a login through a second iface
finds the first's (exit 15), where open-iscsi would make a second session.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from iscsi_agent.host.command import CommandResult, CommandTimeout, mask
from iscsi_agent.host.devices import DeviceIdentity, Devices, Watch
from iscsi_agent.host.errors import SysfsError
from iscsi_agent.host.paths import HostPaths
from iscsi_agent.host.sessions import ScsiAddress, Session, Sessions
from iscsi_agent.host.waiting import Clock
from ontap_sim import Simulator
from tests.fakes import HostTree

EXIT_SESSION_EXISTS, EXIT_NO_RECORDS, EXIT_LOGIN_FAILED, EXIT_AUTH_FAILED = 15, 21, 19, 24
EXIT_IDBM = 6
DEFAULT_IFACE = "default"


@dataclass
class LiveSession:
    sid: int
    host: int
    iface: str = DEFAULT_IFACE


@dataclass
class SimulatedInitiator:
    tree: HostTree
    sim: Simulator
    initiator: str
    svm: str = "svm1"
    records: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)  # the default iface's
    bound_records: dict[str, dict[tuple[str, str], dict[str, str]]] = field(default_factory=dict)
    ifaces: dict[str, dict[str, str]] = field(default_factory=dict)  # iface records besides default
    discovery_ignores_iface: bool = False  # open-iscsi's quirk: -I ignored, default records made
    sessions: dict[tuple[str, str], LiveSession] = field(default_factory=dict)
    calls: list[tuple[str, ...]] = field(default_factory=list)
    unreachable: set[str] = field(default_factory=set)  # portals whose login times out
    hidden: set[str] = field(default_factory=set)  # serials the target never offers (a broken export)
    recovering: set[int] = field(default_factory=set)  # session ids that go down once read as logged in
    on_step: list[Callable[[], None]] = field(default_factory=list)  # other programs acting meanwhile
    before_command: list[Callable[[tuple[str, ...]], None]] = field(
        default_factory=list
    )  # ... or just before one
    rescanned: list[ScsiAddress] = field(default_factory=list)  # the devices whose rescan was written
    frozen_capacity: set[str] = field(default_factory=set)  # disks whose READ CAPACITY keeps the old size
    multipath_whole: bool = True  # False: a map that never takes a second path (its checker fails it)
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))
    _names: dict[tuple[int, int, str], str] = field(default_factory=dict)
    kernel: threading.RLock = field(default_factory=threading.RLock)  # one kernel: its acts do not interleave

    # --- the runner -------------------------------------------------------------------
    def __call__(self, argv: Sequence[str], *, timeout: float, secrets: Sequence[str] = ()) -> CommandResult:
        with self.kernel:
            return self._run(tuple(argv), timeout, secrets)

    def _run(self, args: tuple[str, ...], timeout: float, secrets: Sequence[str]) -> CommandResult:
        self.calls.append(args)  # as /proc/PID/cmdline shows it: never masked
        for act in self.before_command:
            act(args)
        if args[0] in ("multipath", "multipathd"):
            return self._multipath(args)
        if args[0] != "iscsiadm":
            return CommandResult(args, 0, "", "")
        mode = _value(args, "-m")
        if mode in ("discovery", "discoverydb"):
            return self._discover(args)
        if mode == "node":
            return self._node(args, timeout)
        if mode == "iface":
            return self._iface(args)
        return CommandResult(args, 0, "", "")

    @property
    def iscsiadm_calls(self) -> list[tuple[str, ...]]:
        return [call for call in self.calls if call[0] == "iscsiadm"]

    def _iface(self, args: tuple[str, ...]) -> CommandResult:
        name, op = _value(args, "-I"), _value(args, "-o") or "show"
        if op == "new":
            self.ifaces.setdefault(name, {"iface.iscsi_ifacename": name, "iface.net_ifacename": ""})
            return CommandResult(args, 0, f"New interface {name} added\n", "")
        record = {"iface.iscsi_ifacename": name, "iface.net_ifacename": ""} if name == DEFAULT_IFACE else None
        record = self.ifaces.get(name, record)
        if record is None:
            return CommandResult(
                args, EXIT_IDBM, "", f"iscsiadm: Could not read iface {name} ({EXIT_IDBM})\n"
            )
        if op == "update":
            record[_value(args, "-n")] = _value(args, "-v")
            return CommandResult(args, 0, f"{name} updated.\n", "")
        shown = "".join(f"{key} = {value or '<empty>'}\n" for key, value in record.items())
        return CommandResult(args, 0, "# BEGIN RECORD 2.1.8\n" + shown + "# END RECORD\n", "")

    def node_records_of(self, iface: str) -> dict[tuple[str, str], dict[str, str]]:
        """(target, portal) -> settings of the node records of one iface."""
        return self.records if iface == DEFAULT_IFACE else self.bound_records.setdefault(iface, {})

    def _discover(self, args: tuple[str, ...]) -> CommandResult:
        portal = _value(args, "-p")
        if _value(args, "-m") == "discoverydb" and "--discover" not in args:
            return self._discovery_record(args, portal)
        named = _value(args, "-I")
        iqn = self.target_iqn
        if self.discovery_ignores_iface:
            bound = [DEFAULT_IFACE]
        else:  # no -I: every iface record there is, the default only when there is none
            bound = [named] if named else sorted(self.ifaces) or [DEFAULT_IFACE]
        for iface in bound:
            records = self.node_records_of(iface)
            if (iqn, portal) not in records:  # a new target's record, one per tpgt and interface
                records[(iqn, portal)] = {"node.session.scan": "auto"}
                self._write_record(
                    self._node_record(iqn, portal).with_name(f"{self._portal_name(portal)},1") / iface
                )
        return CommandResult(args, 0, f"{portal},1 {iqn}\n", "")

    def _discovery_record(self, args: tuple[str, ...], portal: str) -> CommandResult:
        path = self.tree.root / "etc/iscsi/send_targets" / self._portal_name(portal) / "st_config"
        op = _value(args, "-o")
        if op == "new":
            self._write_record(path)
        elif not path.exists():  # ISCSI_ERR_IDBM
            return CommandResult(
                args, 6, "", f"iscsiadm: Discovery record [{self._portal_name(portal)}] not found.\n"
            )
        elif op == "show":
            return CommandResult(args, 0, path.read_text(), "")
        return CommandResult(args, 0, "", "")

    def _node_record(self, iqn: str, portal: str) -> Path:
        """Where ``-o new`` without a tpgt puts the record: a file named after the portal."""
        return self.tree.root / "etc/iscsi/nodes" / iqn / self._portal_name(portal)

    @staticmethod
    def _portal_name(portal: str) -> str:
        address, _, port = portal.rpartition(":")
        return f"{address.strip('[]')},{port}"

    @staticmethod
    def _write_record(path: Path, iface: str = DEFAULT_IFACE) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        named = f"iface.iscsi_ifacename = {iface}\n" if iface != DEFAULT_IFACE else ""
        path.write_text(f"# BEGIN RECORD 2.1.8\n{named}# END RECORD\n")

    def record_files(self) -> dict[str, str]:
        """Every record file's text, by its path under the database."""
        db = self.tree.root / "etc/iscsi"
        return {
            str(path.relative_to(db)): path.read_text() for path in sorted(db.rglob("*")) if path.is_file()
        }

    def _node(self, args: tuple[str, ...], timeout: float) -> CommandResult:
        key = (_value(args, "-T"), _value(args, "-p"))
        named = _value(args, "-I")
        if named and named != DEFAULT_IFACE and named not in self.ifaces:
            return CommandResult(args, EXIT_IDBM, "", f"iscsiadm: Could not read iface info for {named}.\n")
        if not named and _value(args, "-o") not in ("new", "delete") and "--logout" not in args:
            # without -I a show, an update or a login acts on the record of every iface that has one
            having = [
                iface for iface in (DEFAULT_IFACE, *sorted(self.ifaces)) if key in self.node_records_of(iface)
            ]
            if len(having) > 1 or (having and having[0] != DEFAULT_IFACE):
                return self._node_of_each(args, key, having, timeout)
        iface = named or DEFAULT_IFACE
        records = self.node_records_of(iface)
        if "--login" in args:
            if key[1] in self.unreachable:
                raise CommandTimeout(f"login to {key} did not finish within {timeout:g}s", argv=list(args))
            if key in self.sessions:
                return CommandResult(args, EXIT_SESSION_EXISTS, "", "session exists")
            if key not in records:
                return CommandResult(args, EXIT_NO_RECORDS, "", "no records found")
            refused = self._auth_refusal(key, iface)
            if refused:
                return CommandResult(
                    args,
                    EXIT_AUTH_FAILED,
                    "",
                    f"iscsiadm: Could not login to [iface: {iface}, target: {key[0]}, portal: {key[1]}].\n"
                    f"iscsiadm: initiator reported error (24 - iSCSI login failed due to authorization "
                    f"failure)\n",
                )
            sid = next(self._ids)
            self.sessions[key] = LiveSession(sid, sid + 1, iface)
            # iscsid hands the record's replacement_timeout to the kernel as the session's recovery_tmo
            timeout = records[key].get("node.session.timeo.replacement_timeout", "120")
            self.tree.add_session(sid, sid + 1, key[0], key[1], recovery_tmo=int(timeout), iface=iface)
            return CommandResult(
                args, 0, f"Login to [iface: {iface}, target: {key[0]}, portal: {key[1]}] successful.\n", ""
            )
        if "--logout" in args:  # without -I: the session through any iface; with it, through that one
            session = self.sessions.get(key)
            if session is None or (named and session.iface != named):
                return CommandResult(args, EXIT_NO_RECORDS, "", "iscsiadm: No matching sessions found\n")
            del self.sessions[key]
            self.tree.remove_session(session.sid, session.host)
            return CommandResult(args, 0, "", "")
        op = _value(args, "-o")
        if op == "new":
            records[key] = {"node.session.scan": "auto"}
            self._write_record(self._node_record(*key), iface)  # no tpgt: the portal's file
            return CommandResult(args, 0, "New iSCSI node added\n", "")
        if op == "delete":  # without -I: every iface's record of the target at the portal
            deleting = [named] if named else [DEFAULT_IFACE, *sorted(self.bound_records)]
            session = self.sessions.get(key)
            in_use = [iface for iface in deleting if session is not None and session.iface == iface]
            deleting = [
                iface for iface in deleting if iface not in in_use
            ]  # open-iscsi keeps a record in use
            self._delete_record_files(key, deleting)
            found = [self.node_records_of(iface).pop(key, None) for iface in deleting]
            if in_use:
                return CommandResult(
                    args,
                    EXIT_SESSION_EXISTS,
                    "",
                    "iscsiadm: ... but a session is using it. Logout session ...\n",
                )
            return CommandResult(args, 0 if any(r is not None for r in found) else EXIT_NO_RECORDS, "", "")
        if key not in records:
            return CommandResult(args, EXIT_NO_RECORDS, "", "iscsiadm: No records found\n")
        if op == "update":
            names = [args[i + 1] for i, arg in enumerate(args) if arg == "-n"]
            values = [args[i + 1] for i, arg in enumerate(args) if arg == "-v"]
            records[key].update(zip(names, values, strict=True))
            return CommandResult(args, 0, "", "")
        shown = "".join(f"{name} = {mask(value, ())}\n" for name, value in sorted(records[key].items()))
        return CommandResult(args, 0, "# BEGIN RECORD 2.1.8\n" + shown + "# END RECORD\n", "")

    def _delete_record_files(self, key: tuple[str, str], ifaces: list[str]) -> None:
        record = self._node_record(*key)
        for path in record.parent.glob(f"{record.name}*"):
            if path.is_file() and _iface_named(path) in ifaces:
                path.unlink()
            elif path.is_dir():
                for each in path.iterdir():
                    if each.name in ifaces:
                        each.unlink()
                if not any(path.iterdir()):
                    path.rmdir()

    def _node_of_each(
        self, args: tuple[str, ...], key: tuple[str, str], ifaces: list[str], timeout: float
    ) -> CommandResult:
        """What iscsiadm does on each iface's record in turn (one session per target and portal
        here: the second iface's login finds the first's, where open-iscsi would make another)."""
        results = [self._node((*args, "-I", iface), timeout) for iface in ifaces]
        failed = next(
            (result for result in results if result.exit_code not in (0, EXIT_SESSION_EXISTS)), None
        )
        chosen = failed or results[0]
        stdout = "".join(result.stdout for result in results)
        return CommandResult(args, chosen.exit_code, stdout, chosen.stderr)

    # --- dm-multipath -------------------------------------------------------------------
    def _auth_refusal(self, key: tuple[str, str], iface: str = DEFAULT_IFACE) -> str:
        """Why the target refuses this login, as ONTAP checks the initiator's security entry (else the
        SVM's default) against what the node record holds; "" when it admits it.

        The record is what iscsid logs in with: the settings ``-o update`` gave and the secret lines
        in its files. With mutual CHAP the initiator checks the target too: a record that expects the
        target to answer (``username_in``) fails unless the entry's outbound user and secret match.
        """
        with self.sim.state.lock:
            chap = self.sim.state.chap
            entry = chap.get((self.svm, self.initiator)) or chap.get((self.svm, "default"))
        record = {**self.record_values(key, iface), **self.node_records_of(iface)[key]}
        wants_target = bool(record.get("node.session.auth.username_in"))
        if entry is None or entry.auth_type == "none":
            return "the target does not answer the initiator's challenge" if wants_target else ""
        if entry.auth_type == "deny":
            return "denied"
        given = tuple(
            record.get(f"node.session.auth.{name}") for name in ("authmethod", "username", "password")
        )
        if given != ("CHAP", entry.inbound_user, entry.inbound_password):
            return "the initiator's CHAP user or secret is not the entry's"
        target = (record.get("node.session.auth.username_in"), record.get("node.session.auth.password_in"))
        if (entry.outbound_user or wants_target) and target != (entry.outbound_user, entry.outbound_password):
            return "the target's CHAP user or secret is not what the initiator expects"
        return ""

    def record_values(self, key: tuple[str, str], iface: str = DEFAULT_IFACE) -> dict[str, str]:
        """The ``name = value`` lines of the node record files of target and portal (the secrets), of
        one iface's records: what a login through that iface reads."""
        record = self._node_record(*key)
        files = [
            path
            for path in record.parent.glob(f"{record.name}*")
            if path.is_file() and _iface_named(path) == iface
        ]
        files += [
            path
            for folder in record.parent.glob(f"{record.name},*")
            if folder.is_dir()
            for path in folder.iterdir()
            if path.name == iface
        ]
        values: dict[str, str] = {}
        for path in files:
            for line in path.read_text().splitlines():
                name, equals, value = line.partition(" = ")
                if equals and not name.startswith("#"):
                    values[name] = value
        return values

    def _multipath(self, args: tuple[str, ...]) -> CommandResult:
        """multipathd builds a map by WWID from the paths it is given; ``multipath -f`` refuses a map
        anything holds, opens or mounts (the paths' own holds by the map are the map's)."""
        if args[:3] == ("multipathd", "add", "path"):
            self._add_path(args[3])
        elif args[:3] == ("multipathd", "del", "path"):
            for dm in self.multipath_maps():
                self.tree.remove_multipath_slave(dm, args[3])
        elif args[:3] == ("multipathd", "resize", "map"):
            return self._resize_map(args)
        elif args[:2] == ("multipath", "-f"):
            name = args[-1]  # multipath -f [-R retries] NAME
            dm = next((dm for dm, mapped in self.multipath_maps().items() if mapped == name), None)
            if dm is not None and self._map_in_use(dm):
                return CommandResult(args, 1, "", f"{name}: map in use\n")
            if dm is not None:
                self.tree.remove_multipath(dm)
        return CommandResult(args, 0, "", "")

    def _resize_map(self, args: tuple[str, ...]) -> CommandResult:
        """multipathd takes the size its paths show, and refuses when they differ."""
        dm = next((dm for dm, mapped in self.multipath_maps().items() if mapped == args[3]), None)
        if dm is None:
            return CommandResult(args, 1, "", f"{args[3]}: invalid map name. cannot resize\n")
        block = self.tree.root / "sys/block"
        sizes = {(block / slave / "size").read_text() for slave in self.tree.slaves(dm)}
        if len(sizes) != 1:
            return CommandResult(args, 1, "fail\n", "")
        (block / dm / "size").write_text(sizes.pop())
        return CommandResult(args, 0, "ok\n", "")

    def multipath_maps(self) -> dict[str, str]:
        """dm name -> map name of the multipath maps on the host."""
        block = self.tree.root / "sys/block"
        return {
            entry.name: (entry / "dm/name").read_text().strip()
            for entry in block.iterdir()
            if entry.name.startswith("dm-") and (entry / "slaves").exists()
        }

    def _add_path(self, name: str) -> None:
        disk = (self.tree.root / f"sys/block/{name}").resolve()  # .../<address>/block/<name>
        wwid = (disk.parent.parent / "wwid").read_text().strip()
        map_name = "3" + wwid.removeprefix("naa.")
        maps = self.multipath_maps()
        dm = next((dm for dm, existing in maps.items() if existing == map_name), None)
        if dm is None:
            dm = next(f"dm-{n}" for n in itertools.count() if f"dm-{n}" not in maps)
            self.tree.add_multipath(dm, map_name, "mpath-" + map_name, [name])
        elif self.multipath_whole:
            self.tree.add_multipath_slave(dm, name)

    def _map_in_use(self, dm: str) -> bool:
        root = self.tree.root
        number = (root / f"sys/block/{dm}/dev").read_text().strip()
        opened = any(
            fd.readlink() == Path(f"/dev/{dm}") for fd in root.glob("proc/[0-9]*/fd/*") if fd.is_symlink()
        )
        mounted = f" {number} " in (root / "proc/self/mountinfo").read_text()
        return opened or mounted or any((root / f"sys/block/{dm}/holders").iterdir())

    # --- the kernel ---------------------------------------------------------------------
    @property
    def target_iqn(self) -> str:
        service = self.sim.state.svms[self.svm].iscsi
        assert service is not None
        return service.target_iqn

    def visible_luns(self, portal: str) -> dict[int, str]:
        """LUN id -> serial of what the simulator maps to igroups holding this initiator and reports
        through the LIF at ``portal`` ("address:port")."""
        state = self.sim.state
        address = portal.rpartition(":")[0]
        with state.lock:
            node = next((lif.node for lif in state.svm_lifs(self.svm) if lif.ip == address), None)
            return {
                lun_map.lun_id: state.luns[lun_map.lun_uuid].serial
                for lun_map in state.maps
                if self.initiator.lower()
                in {i.lower() for i in state.igroups[lun_map.igroup_uuid].initiators}
                and (not lun_map.reporting_nodes or node in lun_map.reporting_nodes)
            }

    def lun_size(self, serial: str) -> int:
        """The size of the LUN with this serial on the array: what READ CAPACITY answers."""
        with self.sim.state.lock:
            return next(lun.size for lun in self.sim.state.luns.values() if lun.serial == serial)

    def kernel_step(self) -> None:
        """What the target offers now becomes what a scan finds; then the tree's kernel acts."""
        with self.kernel:
            self._kernel_step()

    def _kernel_step(self) -> None:
        for act in self.on_step:
            act()
        self.tree.mapped.clear()
        for (iqn, portal), session in self.sessions.items():
            for lun_id, serial in self.visible_luns(portal).items():
                if serial in self.hidden:
                    continue
                name = self._names.setdefault((session.host, lun_id, serial), self._next_name())
                self.tree.mapped[(session.host, lun_id)] = {
                    "name": name,
                    "serial": serial,
                    "size_bytes": self.lun_size(serial),
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

    def set_recovery_timeout(self, session: Session, seconds: int) -> None:
        if session.sid in self._world.recovering:  # the kernel refuses while the session is down
            busy = OSError(errno.EBUSY, os.strerror(errno.EBUSY))
            raise SysfsError(
                f"setting the recovery timeout of session{session.sid} to {seconds}s failed: {busy}",
                sid=session.sid,
            )
        super().set_recovery_timeout(session, seconds)


class KernelDevices(Devices):
    """Devices whose rescan reads the identity anew from what the target now offers at that LUN id, as
    Linux does: after a LUN id is reused, sysfs shows the old LUN until a rescan, the new one after."""

    def __init__(self, paths: HostPaths, clock: Clock, world: SimulatedInitiator, watch: Watch) -> None:
        super().__init__(paths, clock, watch)
        self._world = world

    def fresh_identity(self, address: ScsiAddress) -> DeviceIdentity:
        portal = next(
            (key[1] for key, session in self._world.sessions.items() if session.host == address.host), None
        )
        serial = self._world.visible_luns(portal).get(address.lun) if portal is not None else None
        name = self.block_name(address)
        self._world.rescanned.append(address)
        if serial is not None and name is not None:
            with contextlib.suppress(IsADirectoryError):  # an attribute broken to stand for EIO stays so
                self._world.tree.set_identity(address, serial)
            if name not in self._world.frozen_capacity:
                self._world.tree.set_size(name, self._world.lun_size(serial))
        return super().fresh_identity(address)


def _iface_named(record: Path) -> str:
    for line in record.read_text().splitlines():
        if line.startswith("iface.iscsi_ifacename = "):
            return line.partition(" = ")[2]
    return DEFAULT_IFACE


def _value(args: tuple[str, ...], flag: str) -> str:
    return args[args.index(flag) + 1] if flag in args else ""
