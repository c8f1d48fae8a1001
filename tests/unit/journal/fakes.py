"""A wall clock that only moves when told, and a complete attachment to vary in tests."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, datetime

from iscsi_agent.journal.model import Attachment, AttachmentState
from iscsi_agent.portal import Portal

START = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)


@dataclass
class FakeWallClock:
    now: float = START.timestamp()

    def time(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


ATTACHMENT = Attachment(
    lun_uuid="6c1a5e7b-2f4d-4c1e-9a77-0d3b8e2f1a90",
    lun_path="/vol/vol1/lun0",
    volume="lun0",
    svm="svm1",
    serial="wH5?k2Lm/9Qa",
    wwid="600a0980" + b"wH5?k2Lm/9Qa".hex(),
    lun_id=1,
    igroup="openstack-compute1-1a2b3c4d",
    map_created=True,
    target_iqn="iqn.1992-08.com.netapp:sn.0123456789abcdef:vs.3",
    portals=(Portal("127.0.0.1"), Portal("fd00::11", 3261)),
    multipath=True,
    state=AttachmentState.ATTACHED,
    device="/dev/mapper/3600a0980775835",
)


def an_attachment(number: int = 0, **changes: object) -> Attachment:
    """ATTACHMENT, or the number-th other LUN, with some fields changed."""
    if number:
        changes = {
            "lun_uuid": f"00000000-0000-4000-8000-{number:012d}",
            "lun_path": f"/vol/vol1/lun{number}",
            "volume": f"lun{number}",
            "lun_id": number,
            **changes,
        }
    return dataclasses.replace(ATTACHMENT, **changes)
