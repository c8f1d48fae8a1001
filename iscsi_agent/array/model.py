"""The values the array client hands out: small frozen dataclasses, the same for ZAPI and REST."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from iscsi_agent.naa import netapp_wwid
from iscsi_agent.portal import Portal


@dataclass(frozen=True)
class Version:
    """An ONTAP release, e.g. 9.11.1 = generation 9, major 11, minor 1.

    ``ontapi`` is the ZAPI interface version (major, minor), known only over ZAPI.
    """

    generation: int
    major: int
    minor: int
    full: str = ""
    ontapi: tuple[int, int] | None = None

    @property
    def release(self) -> tuple[int, int, int]:
        return (self.generation, self.major, self.minor)

    def at_least(self, release: tuple[int, int, int]) -> bool:
        return self.release >= release

    def __str__(self) -> str:
        return ".".join(str(part) for part in self.release)


@dataclass(frozen=True)
class Svm:
    name: str
    uuid: str | None = None


@dataclass(frozen=True)
class Lun:
    """A LUN as the agent needs it; ``serial`` is the 12-character ONTAP serial (VPD page 0x80).

    ``mapped`` is what the array said at the lookup: maps change behind the LUN cache, so decisions
    read the maps themselves, never this flag. ``mapped_to`` holds the names of the igroups the LUN
    was mapped to when the lookup that returned it read the array; None when that is not known (a
    LUN the cache answered, which never keeps it, or a ZAPI lookup of a mapped LUN, which does not
    say to which igroups). ``node`` is the node hosting the LUN as that lookup read it ("" from the
    cache, which does not keep it either: a volume move changes it). Only the caller of that lookup
    may decide on them.
    """

    path: str
    uuid: str
    serial: str
    size: int
    os_type: str
    mapped: bool
    online: bool = True
    svm: str = ""
    mapped_to: frozenset[str] | None = field(default=None, compare=False)
    node: str = field(default="", compare=False)

    @property
    def name(self) -> str:
        """The last component of the path, the name cinder and operators use."""
        return self.path.rsplit("/", 1)[-1]

    @property
    def naa_id(self) -> str:
        """NAA type 6 identifier the host sees (without the leading '3' udev adds)."""
        return netapp_wwid(self.serial)


@dataclass(frozen=True)
class Igroup:
    name: str
    protocol: str
    os_type: str
    initiators: frozenset[str] = frozenset()
    uuid: str | None = None

    def has_exactly(self, initiators: frozenset[str] | set[str]) -> bool:
        """True when this igroup holds these initiators and no others (case-insensitive IQNs)."""
        return {i.lower() for i in self.initiators} == {i.lower() for i in initiators}


MAPS_PAGE = 4096
"""Records per page of a map listing: an igroup has at most 4,096 LUN ids (0-4095), so the maps of one
igroup (the reconciler's one request) come in one page however many LUNs the host has."""


@dataclass(frozen=True)
class LunMap:
    """A LUN mapped to an igroup; ``reporting_nodes`` is the Selective LUN Map node list."""

    lun_path: str
    igroup: str
    lun_id: int
    lun_uuid: str | None = None
    igroup_uuid: str | None = None
    reporting_nodes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Mapped:
    """What a map request (or the read that settled it) told of the map: its LUN id, and where the
    reply carried them, its igroup's UUID and its reporting nodes (None: not in the reply)."""

    lun_id: int
    igroup_uuid: str | None = None
    reporting_nodes: tuple[str, ...] | None = None

    @classmethod
    def read(cls, found: LunMap) -> Mapped:
        return cls(found.lun_id, found.igroup_uuid, found.reporting_nodes)


@dataclass(frozen=True)
class MapOutcome:
    """How a LUN reaches the host: the map's igroup and LUN id, and whether this call's request made it.

    ``created`` is False for a map that was there already (to the igroup asked for, or to another
    igroup through which the host's initiator sees the LUN): such a map is never the caller's to undo.
    ``igroup_uuid`` and ``reporting_nodes`` are there when the array's answer carried them (None
    otherwise), so that the caller need not read the map again for them.
    """

    lun_id: int
    igroup: str
    created: bool
    igroup_uuid: str | None = field(default=None, compare=False)
    reporting_nodes: tuple[str, ...] | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Lif:
    """An enabled iSCSI data LIF. REST does not report the portal group tag, so ``tpgt`` may be None."""

    portal: Portal
    tpgt: int | None
    current_node: str | None
    home_node: str | None
    name: str = ""

    @property
    def address(self) -> str:
        return self.portal.address


@dataclass(frozen=True)
class IscsiService:
    target_iqn: str
    alias: str = ""
    enabled: bool = True


class ChapAuth(enum.Enum):
    CHAP = "chap"
    NONE = "none"
    DENY = "deny"

    @classmethod
    def parse(cls, text: str) -> ChapAuth:
        """Both APIs spell these differently ("CHAP" over ZAPI, "chap" over REST)."""
        return cls(text.strip().lower())


@dataclass(frozen=True)
class ChapCredentials:
    """iSCSI security for one initiator. The array never returns secrets, so read values carry None."""

    initiator: str
    auth: ChapAuth
    inbound_user: str | None = None
    inbound_secret: str | None = field(default=None, repr=False)
    outbound_user: str | None = None
    outbound_secret: str | None = field(default=None, repr=False)

    @property
    def mutual(self) -> bool:
        return bool(self.outbound_user)

    def refusal(self) -> str | None:
        """Why ONTAP would refuse to store these credentials, or None: checked before any request."""
        if self.auth is not ChapAuth.CHAP:
            return None
        if not self.inbound_user or not self.inbound_secret:
            return "CHAP needs an inbound user and secret"
        if self.mutual and not self.outbound_secret:
            return "mutual CHAP needs an outbound secret"
        if self.mutual and self.outbound_secret == self.inbound_secret:
            return "the inbound and outbound CHAP secrets are the same; ONTAP refuses equal secrets"
        return None
