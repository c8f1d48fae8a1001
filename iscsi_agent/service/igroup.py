"""Which igroup this host's LUNs are mapped to: its name, and the choice among the array's igroups.

The name is derived from the initiator IQN, so every agent on a host, concurrent creators and
restarts all converge on one igroup instead of leaving duplicates (Cinder's ``openstack-<uuid4>``
can). An igroup that also holds other hosts' initiators is never used for a new map: a map there
exposes the LUN to those hosts too.
"""

from __future__ import annotations

import enum
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass

from iscsi_agent.array.model import Igroup
from iscsi_agent.service_api import ServiceError

IGROUP_NAME_MAX = 96  # ONTAP's limit on igroup names
USABLE_PROTOCOLS = frozenset({"iscsi", "mixed"})
_NOT_IN_NAME = re.compile(r"[^A-Za-z0-9_.\-]")


class IgroupConflict(ServiceError):
    """The agent's igroup name is taken by an igroup it must not use; an operator has to look."""

    code = "igroup_conflict"


def igroup_name(prefix: str, hostname: str, initiator: str) -> str:
    """``<prefix><short hostname>-<first 8 hex of sha256(IQN)>``, the hostname cut to fit 96 characters.

    IQNs compare case-insensitively (RFC 3722), so the hash is taken over the lower-case form.
    """
    digest = hashlib.sha256(initiator.strip().lower().encode("utf-8")).hexdigest()[:8]
    short = _NOT_IN_NAME.sub("-", hostname.split(".", 1)[0]) or "host"
    room = IGROUP_NAME_MAX - len(prefix) - len(digest) - 1
    if room < 1:
        raise ValueError(f"igroup_prefix {prefix!r} leaves no room for a name within {IGROUP_NAME_MAX}")
    return f"{prefix}{short[:room]}-{digest}"


class Passed(enum.Enum):
    """Why an igroup that holds this initiator was not chosen (logged for the operator)."""

    PROTOCOL = "not an iSCSI or mixed igroup"
    OS_TYPE = "another os_type"
    SHARED = "holds other hosts' initiators"
    NOT_FIRST = "another igroup of this host only comes first"


@dataclass(frozen=True)
class IgroupChoice:
    """Use ``igroup`` when set; otherwise create ``create`` and add the initiator to it."""

    igroup: Igroup | None
    create: str | None
    passed_over: tuple[tuple[Igroup, Passed], ...] = ()


def choose_igroup(candidates: Iterable[Igroup], initiator: str, os_type: str, own_name: str) -> IgroupChoice:
    """The design's rule over the igroups that contain this initiator.

    The agent's own igroup first; else one whose only initiator is this host, first by name; else
    create the agent's. Raises IgroupConflict when the agent's own name is an igroup it may not use.
    """
    usable: list[Igroup] = []
    passed: list[tuple[Igroup, Passed]] = []
    for igroup in sorted(candidates, key=lambda group: group.name):
        reason = _unusable(igroup, initiator, os_type)
        if reason is not None:
            if igroup.name == own_name:
                raise IgroupConflict(
                    f"igroup {own_name} holds this host's initiator but {reason.value}; "
                    "rename or fix it on the array",
                    igroup=own_name,
                    reason=reason.value,
                )
            passed.append((igroup, reason))
        else:
            usable.append(igroup)
    own = next((igroup for igroup in usable if igroup.name == own_name), None)
    chosen = own or (usable[0] if usable else None)
    passed.extend((igroup, Passed.NOT_FIRST) for igroup in usable if igroup is not chosen)
    return IgroupChoice(chosen, None if chosen else own_name, tuple(passed))


def check_created(igroup: Igroup, initiator: str, os_type: str) -> Igroup:
    """The igroup the array answered a create with must be usable: it may have existed already."""
    reason = _unusable(igroup, initiator, os_type)
    if reason is not None:
        raise IgroupConflict(
            f"igroup {igroup.name} exists on the array but {reason.value}; rename or fix it on the array",
            igroup=igroup.name,
            reason=reason.value,
        )
    return igroup


def _unusable(igroup: Igroup, initiator: str, os_type: str) -> Passed | None:
    if igroup.protocol.lower() not in USABLE_PROTOCOLS:
        return Passed.PROTOCOL
    if igroup.os_type.lower() != os_type.lower():
        return Passed.OS_TYPE
    if not igroup.has_exactly({initiator}):
        return Passed.SHARED
    return None
