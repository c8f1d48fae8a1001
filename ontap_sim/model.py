"""The simulated cluster: typed records plus the SAN rules ONTAP enforces on them.

Both wire front ends (ZAPI and REST) translate requests into calls on ``State`` and
render the records it returns; every ONTAP rule (LUN id allocation, duplicate checks,
reporting nodes) lives here once. Callers hold ``State.lock`` for a whole request.
"""

from __future__ import annotations

import fnmatch
import logging
import random
import threading
import uuid as uuidlib
from collections.abc import Callable
from dataclasses import dataclass, replace

from ontap_sim import errors as e
from ontap_sim.errors import OntapError

log = logging.getLogger(__name__)

SERIAL_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789?$/"
MAX_LUN_ID = 4095
# A LUN is whole 512-byte blocks. REST's absolute limits for LUN and namespace sizes: at least 4096
# bytes, at most 128 TB on releases with large-LUN support (9.12.1 and later; older ones: just under 16 TB)
LUN_BLOCK_SIZE = 512
MIN_LUN_SIZE = 4096
MAX_LUN_SIZE = 128 * 1024**4
AUTH_TYPES = ("chap", "none", "deny")
DEFAULT_INITIATOR = "default"


@dataclass(frozen=True)
class Cluster:
    name: str
    uuid: str
    version: tuple[int, int, int]
    ontapi: tuple[int, int]

    @property
    def version_full(self) -> str:
        return "NetApp Release {}.{}.{}: Mon Jan 08 12:00:00 UTC 2024".format(*self.version)


@dataclass(frozen=True)
class Node:
    name: str
    uuid: str
    ha_partner: str | None


@dataclass(frozen=True)
class IscsiService:
    target_iqn: str
    alias: str
    enabled: bool


@dataclass(frozen=True)
class Svm:
    name: str
    uuid: str
    iscsi: IscsiService | None


@dataclass(frozen=True)
class Volume:
    svm: str
    name: str
    uuid: str
    node: str


@dataclass(frozen=True)
class Lun:
    svm: str
    volume: str
    name: str
    uuid: str
    size: int
    serial: str
    os_type: str
    node: str

    @property
    def path(self) -> str:
        return f"/vol/{self.volume}/{self.name}"


@dataclass(frozen=True)
class Igroup:
    svm: str
    name: str
    uuid: str
    protocol: str
    os_type: str
    initiators: tuple[str, ...]


@dataclass(frozen=True)
class LunMap:
    svm: str
    lun_uuid: str
    igroup_uuid: str
    lun_id: int
    reporting_nodes: tuple[str, ...]


@dataclass(frozen=True)
class Lif:
    svm: str
    name: str
    uuid: str
    ip: str
    node: str
    port_name: str
    tpgroup_tag: int
    enabled: bool
    services: tuple[str, ...]
    ip_port: int = 3260

    @property
    def state(self) -> str:
        return "up" if self.enabled else "down"


@dataclass(frozen=True)
class Chap:
    """One iSCSI security entry; passwords are kept only to configure tgtd and never rendered."""

    svm: str
    initiator: str
    auth_type: str
    inbound_user: str = ""
    inbound_password: str = ""
    outbound_user: str = ""
    outbound_password: str = ""


def wildcard_match(pattern: str, value: str) -> bool:
    """ONTAP query wildcards: only ``*`` is special (``?`` and ``[`` occur in serials)."""
    if "*" not in pattern:
        return pattern == value
    escaped = "".join(f"[{c}]" if c in "?[]" else c for c in pattern)
    return fnmatch.fnmatchcase(value, escaped)


def valid_initiator(name: str) -> bool:
    """iqn.YYYY-MM.reverse.domain[:anything] or eui.<16 hex>; enough to catch garbage."""
    if name.startswith("iqn."):
        return len(name) > 12 and name[4:8].isdigit() and name[8] == "-" and " " not in name
    if name.startswith("eui."):
        return len(name) == 20 and all(c in "0123456789abcdefABCDEF" for c in name[4:])
    return False


class State:
    """Every object of the simulated cluster, mutated only through the SAN rules below."""

    def __init__(self, cluster: Cluster, rng: random.Random) -> None:
        self.lock = threading.RLock()
        self.cluster = cluster
        self.nodes: dict[str, Node] = {}
        self.svms: dict[str, Svm] = {}
        self.volumes: dict[tuple[str, str], Volume] = {}
        self.luns: dict[str, Lun] = {}  # by uuid, in creation order
        self.igroups: dict[str, Igroup] = {}  # by uuid
        self.maps: list[LunMap] = []
        self.lifs: dict[str, Lif] = {}
        self.chap: dict[tuple[str, str], Chap] = {}
        self.reserved_lun_ids: frozenset[int] = frozenset()
        self.listeners: list[Callable[[State], None]] = []
        self._rng = rng

    # -- identity -------------------------------------------------------------------

    def new_uuid(self) -> str:
        return str(uuidlib.UUID(int=self._rng.getrandbits(128), version=4))

    def new_serial(self) -> str:
        taken = {lun.serial for lun in self.luns.values()}
        while True:
            serial = "".join(self._rng.choice(SERIAL_ALPHABET) for _ in range(12))
            if serial not in taken:
                return serial

    def changed(self) -> None:
        for listener in self.listeners:
            listener(self)

    # -- lookups --------------------------------------------------------------------

    def svm(self, name: str | None = None, uuid: str | None = None) -> Svm:
        for svm in self.svms.values():
            if (name is None or svm.name == name) and (uuid is None or svm.uuid == uuid):
                return svm
        raise OntapError(e.SVM_NOT_FOUND, target="svm", svm=name or uuid)

    def lun(
        self,
        svm: str | None,
        path: str | None = None,
        uuid: str | None = None,
        missing: e.Condition = e.LUN_NOT_FOUND,
    ) -> Lun:
        for lun in self.luns.values():
            if (
                (svm is None or lun.svm == svm)
                and (path is None or lun.path == path)
                and (uuid is None or lun.uuid == uuid)
            ):
                return lun
        raise OntapError(missing, target="lun", lun=path or uuid)

    def igroup(
        self,
        svm: str | None,
        name: str | None = None,
        uuid: str | None = None,
        missing: e.Condition = e.IGROUP_NOT_FOUND,
    ) -> Igroup:
        for igroup in self.igroups.values():
            if (
                (svm is None or igroup.svm == svm)
                and (name is None or igroup.name == name)
                and (uuid is None or igroup.uuid == uuid)
            ):
                return igroup
        raise OntapError(missing, target="igroup", igroup=name or uuid)

    def maps_of_lun(self, lun: Lun) -> list[LunMap]:
        return [m for m in self.maps if m.lun_uuid == lun.uuid]

    def maps_of_igroup(self, igroup: Igroup) -> list[LunMap]:
        return [m for m in self.maps if m.igroup_uuid == igroup.uuid]

    def svm_lifs(self, svm: str) -> list[Lif]:
        return [lif for lif in self.lifs.values() if lif.svm == svm]

    # -- LUNs -----------------------------------------------------------------------

    def create_lun(
        self, svm: Svm, path: str, size: int, os_type: str = "linux", serial: str | None = None
    ) -> Lun:
        parts = path.split("/")
        if len(parts) != 4 or parts[:2] != ["", "vol"] or not parts[2] or not parts[3]:
            raise OntapError(
                e.INVALID_INPUT,
                target="name",
                detail=f'Invalid LUN path "{path}"; expected /vol/<volume>/<lun>.',
            )
        volume = self.volumes.get((svm.name, parts[2]))
        if volume is None:
            raise OntapError(e.VOLUME_NOT_FOUND, target="location.volume.name", volume=parts[2])
        if any(lun.svm == svm.name and lun.path == path for lun in self.luns.values()):
            raise OntapError(e.LUN_EXISTS, target="name", path=path)
        if size <= 0:
            raise OntapError(e.INVALID_INPUT, target="space.size", detail="LUN size must be positive.")
        lun = Lun(
            svm.name,
            volume.name,
            parts[3],
            self.new_uuid(),
            size,
            serial or self.new_serial(),
            os_type,
            volume.node,
        )
        self.luns[lun.uuid] = lun
        log.info("created LUN %s (serial %s) in SVM %s", lun.path, lun.serial, svm.name)
        self.changed()
        return lun

    def resize_lun(self, lun: Lun, size: int, allow_shrink: bool = False) -> Lun:
        """ONTAP's ``lun resize``: the size set is ``size`` rounded up to whole blocks ("at least the
        requested size"); a shrink only when forced (it truncates data); same identity, same maps."""
        if size <= 0:
            raise OntapError(e.LUN_SIZE_INVALID, target="space.size", size=size)
        wanted = -(-size // LUN_BLOCK_SIZE) * LUN_BLOCK_SIZE
        if wanted < MIN_LUN_SIZE:
            raise OntapError(e.LUN_SIZE_TOO_SMALL, target="space.size", size=size)
        if wanted > MAX_LUN_SIZE:
            raise OntapError(e.LUN_SIZE_TOO_LARGE, target="space.size", size=size, maximum=MAX_LUN_SIZE)
        if wanted < lun.size and not allow_shrink:
            raise OntapError(e.LUN_SHRINK_REFUSED, target="space.size")
        if wanted == lun.size:
            return lun
        resized = replace(lun, size=wanted)
        self.luns[lun.uuid] = resized
        log.info("resized LUN %s from %s to %s bytes", lun.path, lun.size, wanted)
        self.changed()
        return resized

    def delete_lun(self, lun: Lun) -> None:
        if self.maps_of_lun(lun):
            raise OntapError(e.LUN_MAPPED, target="uuid")
        del self.luns[lun.uuid]
        self.changed()

    # -- igroups --------------------------------------------------------------------

    def create_igroup(
        self,
        svm: Svm,
        name: str,
        protocol: str = "iscsi",
        os_type: str = "linux",
        initiators: tuple[str, ...] = (),
    ) -> Igroup:
        if not name or len(name) > 96:
            raise OntapError(e.INVALID_INPUT, target="name", detail=f'Invalid initiator group name "{name}".')
        if any(ig.svm == svm.name and ig.name == name for ig in self.igroups.values()):
            raise OntapError(e.IGROUP_EXISTS, target="name", igroup=name)
        for initiator in initiators:
            self._check_initiator_name(initiator)
        igroup = Igroup(svm.name, name, self.new_uuid(), protocol, os_type, tuple(dict.fromkeys(initiators)))
        self.igroups[igroup.uuid] = igroup
        log.info("created igroup %s in SVM %s with %s", name, svm.name, igroup.initiators)
        self.changed()
        return igroup

    def add_initiator(self, igroup: Igroup, initiator: str) -> Igroup:
        self._check_initiator_name(initiator)
        if initiator in igroup.initiators:
            raise OntapError(e.INITIATOR_PRESENT, target="name", initiator=initiator, igroup=igroup.name)
        for lun_map in self.maps_of_igroup(igroup):
            self._check_initiator_can_see(initiator, self.luns[lun_map.lun_uuid], lun_map.lun_id, igroup)
        return self._replace_igroup(replace(igroup, initiators=(*igroup.initiators, initiator)))

    def remove_initiator(self, igroup: Igroup, initiator: str, allow_mapped: bool = True) -> Igroup:
        if initiator not in igroup.initiators:
            raise OntapError(e.INITIATOR_ABSENT, target="name", initiator=initiator, igroup=igroup.name)
        if not allow_mapped and self.maps_of_igroup(igroup):
            raise OntapError(e.IGROUP_MAPPED, target="name", igroup=igroup.name)
        remaining = tuple(i for i in igroup.initiators if i != initiator)
        return self._replace_igroup(replace(igroup, initiators=remaining))

    def destroy_igroup(self, igroup: Igroup, allow_mapped: bool = False) -> None:
        maps = self.maps_of_igroup(igroup)
        if maps and not allow_mapped:
            raise OntapError(e.IGROUP_MAPPED, target="uuid", igroup=igroup.name)
        self.maps = [m for m in self.maps if m.igroup_uuid != igroup.uuid]
        del self.igroups[igroup.uuid]
        log.info("destroyed igroup %s in SVM %s", igroup.name, igroup.svm)
        self.changed()

    def _replace_igroup(self, igroup: Igroup) -> Igroup:
        self.igroups[igroup.uuid] = igroup
        log.info("igroup %s now holds %s", igroup.name, igroup.initiators)
        self.changed()
        return igroup

    def _check_initiator_name(self, initiator: str) -> None:
        if not valid_initiator(initiator):
            raise OntapError(e.INVALID_INITIATOR, target="initiators.name", initiator=initiator)

    # -- maps -----------------------------------------------------------------------

    def map_lun(self, lun: Lun, igroup: Igroup, lun_id: int | None = None) -> LunMap:
        """ONTAP's rules: once per igroup, id unique in the igroup and per initiator, lowest free id."""
        if any(m.igroup_uuid == igroup.uuid for m in self.maps_of_lun(lun)):
            raise OntapError(e.ALREADY_MAPPED, target="lun")
        for initiator in igroup.initiators:
            self._check_initiator_can_see(initiator, lun, lun_id, igroup)
        taken = self._ids_visible_to(igroup)
        if lun_id is None:
            lun_id = next(
                i for i in range(MAX_LUN_ID + 1) if i not in taken and i not in self.reserved_lun_ids
            )
        elif not 0 <= lun_id <= MAX_LUN_ID:
            raise OntapError(
                e.INVALID_INPUT,
                target="logical_unit_number",
                detail=f"LUN ID {lun_id} is out of range 0-{MAX_LUN_ID}.",
            )
        elif any(m.lun_id == lun_id for m in self.maps_of_igroup(igroup)):
            raise OntapError(e.LUN_ID_IN_USE, target="logical_unit_number", lun_id=lun_id, igroup=igroup.name)
        lun_map = LunMap(lun.svm, lun.uuid, igroup.uuid, lun_id, self.reporting_nodes(lun))
        self.maps.append(lun_map)
        log.info("mapped %s to igroup %s as LUN %s", lun.path, igroup.name, lun_id)
        self.changed()
        return lun_map

    def unmap_lun(self, lun: Lun, igroup: Igroup) -> LunMap:
        for lun_map in self.maps_of_lun(lun):
            if lun_map.igroup_uuid == igroup.uuid:
                self.maps.remove(lun_map)
                log.info("unmapped %s from igroup %s (LUN %s)", lun.path, igroup.name, lun_map.lun_id)
                self.changed()
                return lun_map
        raise OntapError(e.NO_SUCH_MAP, target="lun")

    def reporting_nodes(self, lun: Lun) -> tuple[str, ...]:
        """Selective LUN Map: the owner node and its HA partner report the LUN."""
        partner = self.nodes[lun.node].ha_partner if lun.node in self.nodes else None
        return (lun.node, partner) if partner else (lun.node,)

    def _ids_visible_to(self, igroup: Igroup) -> set[int]:
        """Ids this igroup uses plus ids its initiators already see through other igroups."""
        members = set(igroup.initiators)
        return {
            m.lun_id
            for m in self.maps
            if m.igroup_uuid == igroup.uuid or members.intersection(self.igroups[m.igroup_uuid].initiators)
        }

    def _check_initiator_can_see(self, initiator: str, lun: Lun, lun_id: int | None, via: Igroup) -> None:
        """A LUN reaches an initiator once, at one id, whichever igroups carry it."""
        for lun_map in self.maps:
            other = self.igroups[lun_map.igroup_uuid]
            if other.uuid == via.uuid or initiator not in other.initiators:
                continue
            if lun_map.lun_uuid == lun.uuid:
                raise OntapError(e.INITIATOR_SEES_LUN, target="lun", initiator=initiator)
            if lun_id is not None and lun_map.lun_id == lun_id:
                raise OntapError(
                    e.LUN_ID_USED_BY_INITIATOR,
                    target="logical_unit_number",
                    lun_id=lun_id,
                    initiator=initiator,
                )

    # -- CHAP -----------------------------------------------------------------------

    def chap_entry(self, svm: Svm, initiator: str) -> Chap:
        entry = self.chap.get((svm.name, initiator))
        if entry is None:
            raise OntapError(e.CHAP_NOT_FOUND, target="initiator", initiator=initiator)
        return entry

    def add_chap(self, entry: Chap) -> Chap:
        if (entry.svm, entry.initiator) in self.chap:
            raise OntapError(e.CHAP_EXISTS, target="initiator", initiator=entry.initiator)
        if entry.initiator != DEFAULT_INITIATOR:
            self._check_initiator_name(entry.initiator)
        return self._store_chap(entry)

    def modify_chap(self, entry: Chap) -> Chap:
        if (entry.svm, entry.initiator) not in self.chap:
            raise OntapError(e.CHAP_NOT_FOUND, target="initiator", initiator=entry.initiator)
        return self._store_chap(entry)

    def delete_chap(self, svm: Svm, initiator: str) -> None:
        if initiator == DEFAULT_INITIATOR:
            raise OntapError(e.CHAP_DEFAULT_UNDELETABLE, target="initiator")
        self.chap_entry(svm, initiator)
        del self.chap[(svm.name, initiator)]
        log.info("deleted iSCSI security entry for %s in SVM %s", initiator, svm.name)
        self.changed()

    def _store_chap(self, entry: Chap) -> Chap:
        entry = replace(entry, auth_type=entry.auth_type.lower())
        if entry.auth_type not in AUTH_TYPES:
            raise OntapError(
                e.INVALID_INPUT,
                target="authentication_type",
                detail=f'Invalid authentication type "{entry.auth_type}".',
            )
        if entry.auth_type == "chap":
            if not entry.inbound_user or not entry.inbound_password:
                raise OntapError(e.CHAP_NEEDS_INBOUND, target="chap.inbound")
            if entry.outbound_user and not entry.outbound_password:
                raise OntapError(e.CHAP_NEEDS_OUTBOUND_PASSWORD, target="chap.outbound.password")
            if entry.outbound_user and entry.outbound_password == entry.inbound_password:
                raise OntapError(e.CHAP_SAME_PASSWORDS, target="chap.outbound.password")
        elif entry.inbound_user or entry.outbound_user:
            raise OntapError(e.CHAP_NOT_ALLOWED, target="chap", auth_type=entry.auth_type)
        self.chap[(entry.svm, entry.initiator)] = entry
        log.info("iSCSI security for %s in SVM %s is now %s", entry.initiator, entry.svm, entry.auth_type)
        self.changed()
        return entry
