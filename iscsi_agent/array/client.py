"""The array client interface everything above the array layer uses, whichever API is underneath.

Get one from ``iscsi_agent.array.connect.connect(settings)``. Every method raises only
``iscsi_agent.array.errors`` types. Writes are idempotent from the caller's view: creating an
igroup that exists, adding an initiator that is there, mapping a LUN that is mapped to that
igroup, and unmapping a map that is gone all succeed, also when a connection broke halfway.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Protocol

from iscsi_agent.array.model import (
    ChapCredentials,
    Igroup,
    IscsiService,
    Lif,
    Lun,
    LunMap,
    MapOutcome,
    Svm,
    Version,
)

# UUIDs a luns_by_uuid query names at once: 50 keep its URL (or ZAPI query) near 2,000 characters
UUIDS_PER_QUERY = 50
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


class ArrayClient(Protocol):
    api: str
    """ "zapi" or "rest": for logs and health output only; behaviour must not depend on it."""

    def version(self) -> Version:
        """The cluster's ONTAP release (and, over ZAPI, the ONTAPI version)."""
        ...

    def check_svm(self) -> Svm:
        """The configured SVM, or ArrayNotFound(kind="svm") when the array has no such SVM."""
        ...

    def lun_by_path(self, path: str, *, fresh: bool = False) -> Lun:
        """A LUN by ``/vol/<vol>[/<qtree>]/<lun>``; served from the LUN cache unless ``fresh``."""
        ...

    def lun_by_name(self, name: str, *, fresh: bool = False) -> Lun:
        """A LUN by its last path component; ArrayNotFound when none or several match.

        Served from the cache only for a name the array reported unique (a cached path does not
        prove that no other volume holds a LUN of the same name).
        """
        ...

    def lun_by_uuid(self, uuid: str, *, fresh: bool = False) -> Lun: ...

    def luns_by_uuid(self, uuids: Collection[str]) -> tuple[Lun, ...]:
        """Fresh reads of the LUNs of these UUIDs that still exist (those deleted are left out), in
        one request per ``UUIDS_PER_QUERY``; none for no UUIDs. The cache is neither read nor filled."""
        ...

    def igroups_with_initiator(self, initiator: str) -> tuple[Igroup, ...]:
        """Every igroup of the SVM that contains this initiator (check ``has_exactly`` yourself)."""
        ...

    def igroup_by_name(self, name: str) -> Igroup | None: ...

    def create_igroup(self, name: str, os_type: str, initiators: tuple[str, ...] = ()) -> Igroup:
        """Create an iSCSI igroup holding ``initiators``, or return the existing one with them added."""
        ...

    def add_initiator(self, igroup: str, initiator: str) -> None: ...

    def map_lun(self, path: str, igroup: str, lun_id: int | None = None) -> int:
        """Map and return the LUN id; when already mapped to this igroup, the existing id.

        ArrayNotFound(kind="lun"|"igroup") when either does not exist; ArrayMappedElsewhere
        (with ``igroup`` and ``lun_id``) when the igroup's initiator already sees the LUN through
        another igroup, which ONTAP allows only once per initiator.
        """
        ...

    def ensure_mapped(self, path: str, igroup: str) -> MapOutcome:
        """Map the LUN to igroup unless this host sees it already: through igroup (that map, its id) or
        through another igroup of its initiators (that map). ``created`` only for a map this call made."""
        ...

    def unmap_lun(self, path: str, igroup: str, *, lun_uuid: str = "", igroup_uuid: str = "") -> bool:
        """Remove the map; False when there was none (not an error), also when the LUN or igroup is gone.

        With both UUIDs (an attach learnt them) the map is named by them, which spares REST a read;
        a LUN or igroup made again under the same name since is then another object, not this map's.
        """
        ...

    def lun_map(self, path: str, igroup: str) -> LunMap | None:
        """One map, with its Selective LUN Map reporting nodes; None when not mapped."""
        ...

    def maps_of_lun(self, path: str) -> tuple[LunMap, ...]: ...

    def maps_of_igroup(self, igroup: str) -> tuple[LunMap, ...]:
        """Every map of one igroup, in one array request."""
        ...

    def maps_of_initiator(self, initiator: str) -> tuple[LunMap, ...]:
        """Every map that reaches this initiator, through any igroup of the SVM that holds it, in one
        array request (the reconciler's view). ``lun_uuid`` may be None (over ZAPI the call used is
        not documented to carry it); ``lun_path`` and ``igroup`` are always there."""
        ...

    def portals(self) -> tuple[Lif, ...]:
        """Enabled iSCSI data LIFs of the SVM."""
        ...

    def iscsi_service(self) -> IscsiService:
        """The SVM's iSCSI target (its IQN); ArrayNotFound(kind="iscsi_service") when there is none."""
        ...

    def chap_credentials(self, initiator: str) -> ChapCredentials | None:
        """The initiator's own security entry (secrets are never readable); None when it has none."""
        ...

    def set_chap_credentials(self, credentials: ChapCredentials) -> None:
        """Create or replace the initiator's entry; one-way or mutual CHAP, or none/deny."""
        ...

    def close(self) -> None: ...


def is_lun_name(ref: str) -> bool:
    """A bare LUN name, neither a path nor a UUID: not an identity, since two volumes may hold a LUN
    of that name, so only the array can say which LUN it names, or that it names several."""
    return not ref.startswith("/vol/") and not _UUID.match(ref)


def find_lun(client: ArrayClient, ref: str, *, fresh: bool = False) -> Lun:
    """Look a volume reference up the way the socket API accepts it: path, UUID or name."""
    if is_lun_name(ref):
        return client.lun_by_name(ref, fresh=fresh)
    if _UUID.match(ref):
        return client.lun_by_uuid(ref, fresh=fresh)
    return client.lun_by_path(ref, fresh=fresh)
