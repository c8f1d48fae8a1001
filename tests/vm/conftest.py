"""Fixtures for tests that run inside the VM: an ONTAP-looking tgtd target, and a clean slate after each test.

The guest's set-up (tests/vmtier/guest.py) has already started udevd, tgtd on portals
127.0.0.1:3260 and 127.0.0.2:3260, iscsid and multipathd. Cleanup uses the tools directly,
not the agent's host layer, so a bug under test cannot hide behind its own cleanup.
"""

from __future__ import annotations

import random
import string
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ontap_sim.tgt import Tgtadm
from tests.vm.cleanup import reset_initiator

TARGET_TID = 1
TARGET_IQN = "iqn.1992-08.com.netapp:sn.4b1d6e0f2a9c11efb3c1005056a7d2e4:vs.3"
PORTALS = ("127.0.0.1:3260", "127.0.0.2:3260")
INITIATOR_NAME_FILE = Path("/etc/iscsi/initiatorname.iscsi")
# ONTAP serials are 12 printable characters and do use ?, $ and /; tgtadm cannot carry , or =.
SERIAL_ALPHABET = string.ascii_letters + string.digits + "?$/-_+#"


def ontap_like_serial(rng: random.Random) -> str:
    return "".join(rng.choice(SERIAL_ALPHABET) for _ in range(12))


@dataclass
class OntapLikeTarget:
    """One tgtd target that looks like an ONTAP SVM's iSCSI target, on both loopback portals."""

    tgt: Tgtadm
    iqn: str = TARGET_IQN
    tid: int = TARGET_TID
    portals: tuple[str, ...] = PORTALS
    luns: dict[int, str] = field(default_factory=dict)
    rng: random.Random = field(default_factory=random.Random)

    def add_lun(self, lun_id: int, serial: str | None = None, size_mb: int = 64) -> str:
        """Stage a LUN with ONTAP's identity; returns its serial."""
        serial = serial or ontap_like_serial(self.rng)
        self.tgt.add_lun(self.tid, lun_id, serial, size_mb * 1024 * 1024)
        self.luns[lun_id] = serial
        print(f"target {self.iqn}: staged LUN {lun_id} serial {serial!r}")
        return serial

    def remove_lun(self, lun_id: int) -> None:
        self.tgt.remove_lun(self.tid, lun_id)
        self.luns.pop(lun_id, None)

    def set_chap(
        self, user: str, password: str, out_user: str | None = None, out_password: str | None = None
    ) -> None:
        self.tgt.set_account(user, password)
        self.tgt.bind_account(self.tid, user)
        if out_user and out_password:
            self.tgt.set_account(out_user, out_password)
            self.tgt.bind_account(self.tid, out_user, outgoing=True)

    def show(self) -> str:
        return self.tgt.show()


@pytest.fixture
def initiator_iqn() -> str:
    for line in INITIATOR_NAME_FILE.read_text().splitlines():
        if line.startswith("InitiatorName="):
            return line.partition("=")[2].strip()
    raise AssertionError(f"{INITIATOR_NAME_FILE} has no InitiatorName")


@pytest.fixture
def target(tmp_path: Path) -> Iterator[OntapLikeTarget]:
    tgt = Tgtadm(backing_dir=tmp_path / "backing")
    tgt.create_target(TARGET_TID, TARGET_IQN)
    tgt.bind_initiator(TARGET_TID, "ALL")
    staged = OntapLikeTarget(tgt)
    try:
        yield staged
    finally:
        reset_initiator()  # sessions must end before tgtd lets the target go
        tgt.delete_target(TARGET_TID)
        for user in tgt.accounts():
            tgt.delete_account(user)
