"""The primitive array calls each API implements once (``zapi_ops``, ``rest_ops``).

These are single attempts with no race handling: they report "already exists", "already
mapped" and "not mapped" as the typed errors and leave resolving them, the LUN cache and
recovery after transport failures to ``iscsi_agent.array.ontap.OntapClient``, which is shared.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Protocol

from iscsi_agent.array.model import (
    ChapCredentials,
    Igroup,
    IscsiService,
    Lif,
    Lun,
    LunMap,
    Mapped,
    Svm,
    Version,
)


class LunKey(enum.Enum):
    PATH = "path"
    NAME = "name"
    UUID = "uuid"


class ArrayOps(Protocol):
    api: str

    def version(self) -> Version: ...

    def check_svm(self) -> Svm: ...

    def find_luns(self, key: LunKey, value: str) -> list[Lun]:
        """LUNs whose path, name (last path component) or UUID equals ``value``: one query."""
        ...

    def luns_by_uuid(self, uuids: Sequence[str]) -> list[Lun]:
        """The LUNs of these UUIDs that exist, in one query (ONTAP's ``a|b`` alternatives)."""
        ...

    def igroups_with_initiator(self, initiator: str) -> tuple[Igroup, ...]: ...

    def igroup_by_name(self, name: str) -> Igroup | None: ...

    def create_igroup(self, name: str, os_type: str, initiators: tuple[str, ...]) -> Igroup:
        """Create an iSCSI igroup; ArrayAlreadyExists when the name is taken."""
        ...

    def add_initiator(self, igroup: str, initiator: str) -> None:
        """ArrayAlreadyExists when present; ArrayNotFound(kind="igroup") when the igroup is gone."""
        ...

    def map_lun(self, path: str, igroup: str, lun_id: int | None) -> Mapped:
        """The assigned LUN id (and what else the reply says of the map); ArrayAlreadyMapped when this LUN is mapped to this igroup;
        ArrayNotFound(kind="lun"|"igroup") when the LUN or the igroup does not exist."""
        ...

    def unmap_lun(self, path: str, igroup: str, uuids: tuple[str, str] | None = None) -> None:
        """ArrayNotMapped when there is no such map, also when the LUN or the igroup does not exist.

        ``uuids`` (the LUN's, the igroup's), when the caller knows them, name the map without a read."""
        ...

    def maps(self, *, path: str | None = None, igroup: str | None = None) -> tuple[LunMap, ...]:
        """Maps filtered by LUN path and/or igroup name, in one query."""
        ...

    def maps_of_initiator(self, initiator: str) -> tuple[LunMap, ...]:
        """Every map of every igroup holding this initiator, in one request; ``lun_uuid`` may be None."""
        ...

    def portals(self) -> tuple[Lif, ...]: ...

    def iscsi_service(self) -> IscsiService: ...

    def chap_credentials(self, initiator: str) -> ChapCredentials | None: ...

    def set_chap_credentials(self, credentials: ChapCredentials) -> None: ...

    def close(self) -> None: ...
