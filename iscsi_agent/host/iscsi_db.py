"""open-iscsi's record database on disk: the CHAP secrets go into the record files here, never onto a
command line.

iscsiadm takes a value only as ``-v VALUE`` on its command line, and every local user can read a
process's command line in /proc/PID/cmdline while it runs; iscsiadm has no other way in for a
value (no stdin, no file). Its records are files only root can read, in the format iscsiadm writes
them (open-iscsi 2.1.8, usr/idbm.c: idbm_print, read back by idbm_recinfo_config)::

    # BEGIN RECORD 2.1.8
    node.name = iqn.1992-08.com.netapp:sn.4b1d6e0f2a9c11efb3c1005056a7d2e4:vs.3
    node.session.auth.authmethod = CHAP
    node.session.auth.username = compute-7
    node.session.auth.password = s3cret-of-16chars
    # END RECORD

one ``name = value`` line each, read back by name in any order; a value that is not set has no
line. So the settings that are not secret still go through ``iscsiadm -o update`` (which checks
every name), and afterwards the secret lines are written here, as iscsiadm itself writes a record:

- under iscsiadm's own database lock (idbm_lock: ``link(LOCK_FILE, LOCK_WRITE_FILE)``, waiting
  up to 30 s as iscsiadm does), so no iscsiadm reads or rewrites a record meanwhile;
- atomically: a new file (0600) in the record's folder, synced, renamed over the record. Its name
  has no comma, so iscsiadm's scan of a target's folder never takes it for a record.

Where the records of target T at portal A:P are (iscsiadm's compiled-in paths, in HostPaths):
``nodes/T/A,P`` (a file: a record made by ``-o new`` without a tpgt; its ``iface.iscsi_ifacename``
line names its iface, ``default`` when it has none), or ``nodes/T/A,P,TPGT/IFACE`` (a file per iface:
a record a discovery made); ``send_targets/A,P/st_config`` for discovery.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from iscsi_agent.host.errors import IscsiRecordError, WaitTimeout
from iscsi_agent.host.paths import HostPaths
from iscsi_agent.host.waiting import Clock, wait_until
from iscsi_agent.portal import Portal

log = logging.getLogger(__name__)

LOCK_WAIT = 30.0  # iscsiadm tries 3000 times, 10 ms apart
LOCK_POLL = 0.01
MAX_VALUE = 255  # AUTH_STR_MAX_LEN (256) holds the value and its terminating NUL
_BEGIN, _END = "# BEGIN RECORD", "# END RECORD"
# iscsiadm writes the auth values in this order; a line that is new goes after its predecessor.
_AFTER = {"password": "username", "password_in": "username_in"}

Pairs = Sequence[tuple[str, str]]


def check_value(name: str, value: str) -> None:
    """Refuse a value a record line cannot hold as it is: iscsiadm strips spaces at either end and
    stops at a line break, so a secret with a newline would add lines (settings) of its own."""
    problem = None
    if not value:
        problem = "is empty"
    elif len(value) > MAX_VALUE:
        problem = f"is longer than {MAX_VALUE} characters"
    elif any(ord(char) < 32 or ord(char) == 127 for char in value):
        problem = "holds a control character (a line break, a tab, ...)"
    elif value != value.strip():
        problem = "starts or ends with a space"
    if problem:
        raise IscsiRecordError(
            f"the value of {name} {problem}: open-iscsi's record cannot hold it", name=name
        )


def record_with(text: str, values: Pairs) -> str:
    """The record ``text`` holding ``values``: each line replaced where it is, else added after the
    line of the name iscsiadm writes before it (else before ``# END RECORD``); nothing else moves."""
    lines = text.splitlines(keepends=True)
    if not lines or not lines[0].startswith(_BEGIN) or not any(line.startswith(_END) for line in lines):
        raise ValueError("not an open-iscsi record (no BEGIN and END RECORD lines)")
    for name, value in values:
        line = f"{name} = {value}\n"
        at = _line_of(lines, name)
        if at is not None:
            lines[at] = line
            continue
        prefix, _, last = name.rpartition(".")
        before = _line_of(lines, f"{prefix}.{_AFTER[last]}") if last in _AFTER else None
        end = next(i for i, text_line in enumerate(lines) if text_line.startswith(_END))
        lines.insert(before + 1 if before is not None else end, line)
    return "".join(lines)


def _line_of(lines: list[str], name: str) -> int | None:
    for index, line in enumerate(lines):
        key, equals, _ = line.partition("=")
        if equals and key.strip() == name:
            return index
    return None


def _component(text: str, what: str) -> str:
    """A target name or address as one folder name; anything that would lead elsewhere is refused."""
    if not text or text in (".", "..") or "/" in text or "\0" in text:
        raise IscsiRecordError(f"{what} {text!r} cannot name a record folder", name=text)
    return text


def _iface_of(record: Path) -> str:
    """The iface an old-style record file is for: its ``iface.iscsi_ifacename`` line, else default."""
    try:
        lines = record.read_text(encoding="utf-8", errors="surrogateescape").splitlines()
    except OSError:
        return ""  # gone or unreadable: nobody's, and _set's read says why if it is needed
    for line in lines:
        name, equals, value = line.partition("=")
        if equals and name.strip() == "iface.iscsi_ifacename":
            return value.strip()
    return "default"


class IscsiDatabase:
    """The node and discovery record files under HostPaths' open-iscsi folders."""

    def __init__(self, paths: HostPaths, clock: Clock, *, lock_wait: float = LOCK_WAIT) -> None:
        self._paths = paths
        self._clock = clock
        self._lock_wait = lock_wait

    def set_node_values(self, iqn: str, portal: Portal, values: Pairs, *, iface: str | None = None) -> bool:
        """Make every node record of iqn at portal (of that iface only, when one is named) hold values;
        True when a file had to be written."""
        what = f"node record {iqn} at {portal}" + (f" (iface {iface})" if iface else "")
        return self._set(what, lambda: self.node_files(iqn, portal, iface=iface), values)

    def set_discovery_values(self, portal: Portal, values: Pairs) -> bool:
        """Make the sendtargets discovery record of portal hold values; True when it had to be written."""
        return self._set(f"discovery record {portal}", lambda: self.discovery_files(portal), values)

    def node_files(self, iqn: str, portal: Portal, *, iface: str | None = None) -> tuple[Path, ...]:
        """The record files of iqn at portal: the old-style file, and one per tpgt and iface; with
        ``iface``, only that iface's (a discovery may have made the default iface's beside it)."""
        folder = self._paths.iscsi_db("nodes", _component(iqn, "target"))
        wanted = (_component(portal.address, "portal address"), str(portal.port))
        try:
            entries = sorted(folder.iterdir())
        except FileNotFoundError:
            return ()
        except OSError as exc:
            raise self._failed(f"cannot list {self._paths.host_view(folder)}", folder, exc) from exc
        files: list[Path] = []
        for entry in entries:
            if tuple(entry.name.split(",")[:2]) != wanted:
                continue
            if entry.is_dir() and not entry.is_symlink():
                files.extend(
                    sorted(
                        path
                        for path in entry.iterdir()
                        if path.is_file() and (iface is None or path.name == _component(iface, "iface"))
                    )
                )
            elif entry.is_file() and (iface is None or _iface_of(entry) == iface):
                files.append(entry)
        return tuple(files)

    def discovery_files(self, portal: Portal) -> tuple[Path, ...]:
        entry = self._paths.iscsi_db(
            "send_targets", f"{_component(portal.address, 'portal address')},{portal.port}"
        )
        if entry.is_dir() and not entry.is_symlink():
            entry = entry / "st_config"
        return (entry,) if entry.is_file() else ()

    def _set(self, what: str, find: Callable[[], tuple[Path, ...]], values: Pairs) -> bool:
        for name, value in values:
            check_value(name, value)
        with self._locked():
            files = find()
            if not files:
                folder = self._paths.host_view(self._paths.iscsi_db())
                raise IscsiRecordError(f"{what}: no record file under {folder}", file=folder)
            written = [path for path in files if self._rewrite(path, values)]
        for path in written:
            log.info("%s: wrote %s into %s", what, ", ".join(name for name, _ in values), self._shown(path))
        return bool(written)

    def _rewrite(self, path: Path, values: Pairs) -> bool:
        """Write values into one record file unless it holds them already; True when it wrote."""
        try:
            descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            with os.fdopen(descriptor, "rb") as record:
                text = record.read().decode("utf-8", "surrogateescape")
        except OSError as exc:
            raise self._failed(f"cannot read {self._shown(path)}", path, exc) from exc
        try:
            wanted = record_with(text, values)
        except ValueError as exc:
            raise IscsiRecordError(f"{self._shown(path)}: {exc}", file=self._shown(path)) from None
        if wanted == text:
            return False
        self._replace(path, wanted.encode("utf-8", "surrogateescape"))
        return True

    def _replace(self, path: Path, data: bytes) -> None:
        descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".record-", suffix=".new")
        try:
            with os.fdopen(descriptor, "wb") as new:  # mkstemp made it 0600
                new.write(data)
                new.flush()
                os.fsync(new.fileno())
            os.replace(temporary, path)
            folder = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                os.fsync(folder)
            finally:
                os.close(folder)
        except OSError as exc:
            Path(temporary).unlink(missing_ok=True)
            raise self._failed(f"cannot write {self._shown(path)}", path, exc) from exc

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """iscsiadm's database lock: whoever links ``lock`` to ``lock.write`` first holds it."""
        folder = self._paths.iscsi_lock_dir()
        lock, held = folder / "lock", folder / "lock.write"

        def take() -> bool:
            try:
                os.link(lock, held)
            except FileExistsError:
                return False
            return True

        try:
            folder.mkdir(mode=0o770, parents=True, exist_ok=True)
            os.close(os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600))
            wait_until(
                take, self._lock_wait, self._clock, what="open-iscsi's database lock", interval=LOCK_POLL
            )
        except WaitTimeout:
            raise IscsiRecordError(
                f"open-iscsi's database lock {self._shown(held)} is still held after {self._lock_wait:g}s "
                "(left behind by a killed iscsiadm? then remove it)",
                file=self._shown(held),
            ) from None
        except OSError as exc:
            raise self._failed(
                f"cannot take open-iscsi's database lock {self._shown(held)}", held, exc
            ) from exc
        try:
            yield
        finally:
            held.unlink(missing_ok=True)

    def _shown(self, path: Path) -> str:
        return self._paths.host_view(path)

    def _failed(self, message: str, path: Path, exc: OSError) -> IscsiRecordError:
        return IscsiRecordError(f"{message}: {exc.strerror or exc}", file=self._shown(path))
