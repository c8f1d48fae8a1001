"""The ArrayClient both APIs share: LUN cache, race resolution and recovery around ``ArrayOps``."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Collection

from iscsi_agent.array.budget import Budgets, one_budget_per_call
from iscsi_agent.array.cache import LunCache
from iscsi_agent.array.client import UUIDS_PER_QUERY
from iscsi_agent.array.errors import (
    ArrayAlreadyExists,
    ArrayApiError,
    ArrayInvalidRequest,
    ArrayMappedElsewhere,
    ArrayNotFound,
    ArrayNotMapped,
)
from iscsi_agent.array.model import (
    ChapCredentials,
    Igroup,
    IscsiService,
    Lif,
    Lun,
    LunMap,
    MapOutcome,
    Mapped,
    Svm,
    Version,
)
from iscsi_agent.array.ops import ArrayOps, LunKey
from iscsi_agent.array.recovery import write_then_verify

log = logging.getLogger(__name__)


@one_budget_per_call
class OntapClient:
    """Implements ``iscsi_agent.array.client.ArrayClient`` on top of one API's primitive calls.

    Each public method is one client call with one retry budget from ``budgets`` (the transport's,
    see ``iscsi_agent.array.budget``), shared by every request and resend it makes.
    """

    def __init__(
        self, ops: ArrayOps, *, cache: LunCache | None = None, budgets: Budgets | None = None
    ) -> None:
        self.ops = ops
        self.api = ops.api
        self.cache = cache or LunCache()
        self.budgets = budgets or Budgets()

    def version(self) -> Version:
        return self.ops.version()

    def check_svm(self) -> Svm:
        return self.ops.check_svm()

    def lun_by_path(self, path: str, *, fresh: bool = False) -> Lun:
        return self._lun(LunKey.PATH, path, self.cache.by_path, fresh)

    def lun_by_name(self, name: str, *, fresh: bool = False) -> Lun:
        return self._lun(LunKey.NAME, name, self.cache.by_name, fresh)

    def lun_by_uuid(self, uuid: str, *, fresh: bool = False) -> Lun:
        return self._lun(LunKey.UUID, uuid, self.cache.by_uuid, fresh)

    def _lun(self, key: LunKey, value: str, cached: Callable[[str], Lun | None], fresh: bool) -> Lun:
        """A LUN from the cache, or read; only a read one says to which igroups it is mapped and which
        node hosts it (the cache keeps neither: maps and volume moves change them behind it)."""
        if not fresh and (hit := cached(value)) is not None:
            return hit
        luns = self.ops.find_luns(key, value)
        if key is LunKey.NAME:
            luns = [lun for lun in luns if lun.name == value]  # wildcard queries may match more
        if len(luns) != 1:
            if key is LunKey.NAME:
                self.cache.forget_name(value)
            raise ArrayNotFound("lun", value, by=key.value, candidates=[lun.path for lun in luns])
        # only a name query that matched one LUN proves the name unique (see LunCache.by_name)
        kept = dataclasses.replace(luns[0], mapped_to=None, node="")
        self.cache.put(kept, name_unique=key is LunKey.NAME)
        return luns[0]

    def luns_by_uuid(self, uuids: Collection[str]) -> tuple[Lun, ...]:
        ordered = sorted(set(uuids))
        return tuple(
            lun
            for start in range(0, len(ordered), UUIDS_PER_QUERY)
            for lun in self.ops.luns_by_uuid(ordered[start : start + UUIDS_PER_QUERY])
        )

    def igroups_with_initiator(self, initiator: str) -> tuple[Igroup, ...]:
        return self.ops.igroups_with_initiator(initiator)

    def igroup_by_name(self, name: str) -> Igroup | None:
        return self.ops.igroup_by_name(name)

    def create_igroup(self, name: str, os_type: str, initiators: tuple[str, ...] = ()) -> Igroup:
        try:
            igroup = write_then_verify(
                lambda: self.ops.create_igroup(name, os_type, initiators),
                lambda: self.ops.igroup_by_name(name),
                what=f"create igroup {name}",
                budget=self.budgets.current(),
            )
            log.info("created igroup %s (%s)", name, os_type)
        except ArrayAlreadyExists:
            existing = self.ops.igroup_by_name(name)
            if existing is None:
                raise
            log.info("igroup %s already exists; using it", name)
            igroup = existing
        present = {i.lower() for i in igroup.initiators}
        for initiator in initiators:
            if initiator.lower() not in present:
                self.add_initiator(name, initiator)
        return dataclasses.replace(igroup, initiators=igroup.initiators | frozenset(initiators))

    def add_initiator(self, igroup: str, initiator: str) -> None:
        def add() -> bool:
            self.ops.add_initiator(igroup, initiator)
            return True

        def is_member() -> bool | None:
            found = self.ops.igroup_by_name(igroup)
            return True if found and initiator.lower() in {i.lower() for i in found.initiators} else None

        try:
            write_then_verify(
                add,
                is_member,
                what=f"add {initiator} to igroup {igroup}",
                budget=self.budgets.current(),
            )
            log.info("added %s to igroup %s", initiator, igroup)
        except ArrayAlreadyExists:
            log.debug("%s is already in igroup %s", initiator, igroup)

    def map_lun(self, path: str, igroup: str, lun_id: int | None = None) -> int:
        return self._map(path, igroup, lun_id).lun_id

    def ensure_mapped(self, path: str, igroup: str) -> MapOutcome:
        try:
            return self._map(path, igroup, None)
        except ArrayMappedElsewhere as elsewhere:
            return MapOutcome(elsewhere.lun_id, elsewhere.igroup, created=False)

    def _map(self, path: str, igroup: str, lun_id: int | None) -> MapOutcome:
        def existing() -> Mapped | None:
            found = self.lun_map(path, igroup)
            return Mapped.read(found) if found else None

        created = True  # also when a lost reply's map is found: no map of this igroup was there before
        try:
            mapped = write_then_verify(
                lambda: self.ops.map_lun(path, igroup, lun_id),
                existing,
                what=f"map {path} to {igroup}",
                budget=self.budgets.current(),
            )
            log.info("mapped %s to igroup %s as LUN %s", path, igroup, mapped.lun_id)
        except ArrayNotFound as exc:
            if exc.kind == "lun":
                self.cache.evict(path)
            raise
        except ArrayApiError as exc:
            mapped = self._resolve_refused_map(exc, path, igroup)
            created = False
        if lun_id is not None and mapped.lun_id != lun_id:
            log.warning(
                "%s is mapped to igroup %s as LUN %s, not the requested %s",
                path,
                igroup,
                mapped.lun_id,
                lun_id,
            )
        if (lun := self.cache.by_path(path)) is not None and not lun.mapped:
            self.cache.put(dataclasses.replace(lun, mapped=True))
        return MapOutcome(mapped.lun_id, igroup, created, mapped.igroup_uuid, mapped.reporting_nodes)

    def _resolve_refused_map(self, refused: ArrayApiError, path: str, igroup: str) -> Mapped:
        """Read what a refused map means: the LUN is mapped to ``igroup`` already (its id), or the host
        sees it through another igroup (ArrayMappedElsewhere); otherwise the refusal stands.

        One read of the LUN's maps; only when other igroups map it, one of ``igroup`` and one per
        initiator in it (``igroups_with_initiator``), as ONTAP lets a LUN reach an initiator once.
        """
        maps = self.ops.maps(path=path)
        ours = next((m for m in maps if m.igroup == igroup), None)
        if ours is not None:
            log.info("%s was already mapped to igroup %s as LUN %s", path, igroup, ours.lun_id)
            return Mapped.read(ours)
        others = {m.igroup: m for m in maps}
        mine = self.ops.igroup_by_name(igroup) if others else None
        seen_through: dict[str, list[str]] = {}
        for initiator in sorted(mine.initiators if mine else ()):
            for holder in self.ops.igroups_with_initiator(initiator):
                if holder.name in others and holder.name != igroup:
                    seen_through.setdefault(holder.name, []).append(initiator)
        if not seen_through:
            raise refused
        name = min(seen_through)
        elsewhere = ArrayMappedElsewhere(
            refused,
            path=path,
            requested_igroup=igroup,
            igroup=name,
            lun_id=others[name].lun_id,
            initiators=tuple(seen_through[name]),
        )
        log.info("%s", elsewhere)
        raise elsewhere from refused

    def unmap_lun(self, path: str, igroup: str, *, lun_uuid: str = "", igroup_uuid: str = "") -> bool:
        # The LUN stays cached: its identity did not change, and its next attach (a VM reboot) then
        # costs only the map. ``mapped`` is informational (see Lun); nothing decides on it.
        try:
            self.ops.unmap_lun(path, igroup, (lun_uuid, igroup_uuid) if lun_uuid and igroup_uuid else None)
        except ArrayNotMapped:
            log.debug("%s was not mapped to igroup %s", path, igroup)
            return False
        log.info("unmapped %s from igroup %s", path, igroup)
        return True

    def lun_map(self, path: str, igroup: str) -> LunMap | None:
        return next(iter(self.ops.maps(path=path, igroup=igroup)), None)

    def maps_of_lun(self, path: str) -> tuple[LunMap, ...]:
        return self.ops.maps(path=path)

    def maps_of_igroup(self, igroup: str) -> tuple[LunMap, ...]:
        return self.ops.maps(igroup=igroup)

    def maps_of_initiator(self, initiator: str) -> tuple[LunMap, ...]:
        return self.ops.maps_of_initiator(initiator)

    def portals(self) -> tuple[Lif, ...]:
        return self.ops.portals()

    def iscsi_service(self) -> IscsiService:
        return self.ops.iscsi_service()

    def chap_credentials(self, initiator: str) -> ChapCredentials | None:
        return self.ops.chap_credentials(initiator)

    def set_chap_credentials(self, credentials: ChapCredentials) -> None:
        # refused here, before any request, not by the array halfway through replacing an entry
        if (problem := credentials.refusal()) is not None:
            raise ArrayInvalidRequest(
                "set_chap_credentials", f"{credentials.initiator}: {problem}", initiator=credentials.initiator
            )
        self.ops.set_chap_credentials(credentials)
        log.info("set %s authentication for %s", credentials.auth.value, credentials.initiator)

    def close(self) -> None:
        self.ops.close()
