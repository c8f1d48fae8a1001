"""Keeps a real tgtd target in step with one simulated SVM, so mapped LUNs exist on the wire.

After every state change the mirror computes the target tgtd should show (``plan``, pure)
and applies the difference to what it applied before. Known simplifications, because
tgtd has one LUN namespace and one ACL per target while ONTAP masks per igroup:

- the target's ACL is the union of the initiators of every igroup that has a map, so an
  initiator in no mapped igroup cannot log in at all (ONTAP would let it in, seeing no LUNs),
  and every admitted initiator sees every mirrored LUN;
- a LUN id used by two igroups for different LUNs is mirrored for the first map only, and
  a LUN mapped at two ids appears at the first one only (both logged and skipped);
- tgtd's LUN 0 is its controller LU, so maps at LUN id 0 are skipped (the simulator
  allocates from 1 when mirroring); an unmap deletes the backing file, so data does not
  survive unmap + map (a resize of a mapped LUN keeps it: the LU is recreated on the same file);
- inbound CHAP accounts are bound to the whole target, so once any initiator has CHAP
  every initiator must use one of the bound accounts.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from ontap_sim.model import State, Svm
from ontap_sim.tgt import FIRST_DATA_LUN_ID

log = logging.getLogger(__name__)


class TgtadmLike(Protocol):
    def create_target(self, tid: int, iqn: str) -> None: ...
    def delete_target(self, tid: int) -> None: ...
    def bind_initiator(self, tid: int, initiator: str) -> None: ...
    def unbind_initiator(self, tid: int, initiator: str) -> None: ...
    def add_lun(self, tid: int, lun_id: int, serial: str, size_bytes: int) -> object: ...
    def remove_lun(self, tid: int, lun_id: int) -> None: ...
    def resize_lun(self, tid: int, lun_id: int, serial: str, size_bytes: int) -> object: ...
    def add_portal(self, address: str, port: int = 3260) -> None: ...
    def remove_portal(self, address: str, port: int = 3260) -> None: ...
    def set_account(self, user: str, password: str) -> None: ...
    def delete_account(self, user: str) -> None: ...
    def bind_account(self, tid: int, user: str, outgoing: bool = False) -> None: ...
    def unbind_account(self, tid: int, user: str, outgoing: bool = False) -> None: ...


@dataclass(frozen=True)
class MirroredLun:
    uuid: str
    serial: str
    size: int


@dataclass(frozen=True)
class Target:
    """What tgtd should show for the mirrored SVM."""

    luns: dict[int, MirroredLun] = field(default_factory=dict)
    initiators: frozenset[str] = frozenset()
    inbound: dict[str, str] = field(default_factory=dict)  # CHAP user -> password
    outbound: dict[str, str] = field(default_factory=dict)
    skipped: tuple[str, ...] = ()


def plan(state: State, svm: str) -> Target:
    """The target for ``svm``: maps in creation order, first claim on an id or a LUN wins."""
    luns: dict[int, MirroredLun] = {}
    placed: set[str] = set()
    initiators: set[str] = set()
    skipped: list[str] = []
    for lun_map in state.maps:
        if lun_map.svm != svm:
            continue
        lun, igroup = state.luns[lun_map.lun_uuid], state.igroups[lun_map.igroup_uuid]
        initiators.update(igroup.initiators)
        if lun_map.lun_id < FIRST_DATA_LUN_ID:
            skipped.append(f"{lun.path} at LUN 0 for igroup {igroup.name}: tgtd's controller LU")
        elif lun_map.lun_id in luns and luns[lun_map.lun_id].uuid != lun.uuid:
            skipped.append(
                f"{lun.path} at LUN {lun_map.lun_id} for igroup {igroup.name}: id holds another LUN"
            )
        elif lun.uuid in placed and lun_map.lun_id not in luns:
            skipped.append(
                f"{lun.path} at LUN {lun_map.lun_id} for igroup {igroup.name}: already at another id"
            )
        else:
            luns[lun_map.lun_id] = MirroredLun(lun.uuid, lun.serial, lun.size)
            placed.add(lun.uuid)
    inbound: dict[str, str] = {}
    outbound: dict[str, str] = {}
    for (owner, _), entry in sorted(state.chap.items()):
        if owner == svm and entry.auth_type == "chap":
            inbound[entry.inbound_user] = entry.inbound_password
            if entry.outbound_user:
                outbound[entry.outbound_user] = entry.outbound_password
    return Target(luns, frozenset(initiators), inbound, outbound, tuple(skipped))


class TgtMirror:
    """One tgtd target (``tid``) standing in for one SVM's iSCSI service."""

    def __init__(self, tgtadm: TgtadmLike, tid: int = 1, svm: str | None = None) -> None:
        self.tgtadm = tgtadm
        self.tid = tid
        self.svm_name = svm
        self._applied = Target()
        self._portals: list[tuple[str, int]] = []
        self._reported: set[str] = set()

    def start(self, state: State) -> None:
        """Create the target with the SVM's IQN, open its portals, mirror the current maps."""
        svm = self._svm(state)
        assert svm.iscsi is not None
        self.svm_name = svm.name
        self.tgtadm.create_target(self.tid, svm.iscsi.target_iqn)
        for lif in state.svm_lifs(svm.name):
            if lif.enabled and "data_iscsi" in lif.services:
                try:
                    self.tgtadm.add_portal(lif.ip, lif.ip_port)
                except Exception as exc:  # noqa: BLE001 - tgtd already listening there refuses it; that is fine
                    log.info("tgtd portal %s:%s left as it is: %s", lif.ip, lif.ip_port, exc)
                    continue
                self._portals.append((lif.ip, lif.ip_port))
        log.info(
            "tgtd target %s is %s (SVM %s) on %s", self.tid, svm.iscsi.target_iqn, svm.name, self._portals
        )
        self.sync(state)
        state.listeners.append(self.sync)

    def sync(self, state: State) -> None:
        assert self.svm_name is not None
        wanted = plan(state, self.svm_name)
        for reason in set(wanted.skipped) - self._reported:
            log.warning("not mirrored into tgtd: %s", reason)
        self._reported = set(wanted.skipped)
        self._apply(self._applied, wanted)
        self._applied = wanted

    def close(self) -> None:
        """Remove everything this mirror created from tgtd."""
        self._apply(self._applied, Target())
        self._applied = Target()
        tgt = _Forgiving(self.tgtadm)
        tgt.delete_target(self.tid)
        for address, port in self._portals:
            tgt.remove_portal(address, port)
        self._portals.clear()

    def _svm(self, state: State) -> Svm:
        if self.svm_name is not None:
            svm = state.svm(name=self.svm_name)
        else:
            svm = next((s for s in state.svms.values() if s.iscsi is not None), None)
        if svm is None or svm.iscsi is None:
            raise ValueError("no SVM with an iSCSI service to mirror into tgtd")
        return svm

    def _apply(self, old: Target, new: Target) -> None:
        tgt, tid = _Forgiving(self.tgtadm), self.tid
        for outgoing, before, after in (
            (False, old.inbound, new.inbound),
            (True, old.outbound, new.outbound),
        ):
            for user in before.keys() - after.keys():
                tgt.unbind_account(tid, user, outgoing=outgoing)
                tgt.delete_account(user)
            for user, password in after.items():
                if before.get(user) != password:
                    tgt.set_account(user, password)
                    tgt.bind_account(tid, user, outgoing=outgoing)
        for initiator in sorted(new.initiators - old.initiators):
            tgt.bind_initiator(tid, initiator)
        resized = {i for i, lun in new.luns.items() if _resized(old.luns.get(i), lun)}
        for lun_id, lun in sorted(old.luns.items()):
            if lun_id not in resized and new.luns.get(lun_id) != lun:
                tgt.remove_lun(tid, lun_id)
        for lun_id in sorted(resized):
            tgt.resize_lun(tid, lun_id, new.luns[lun_id].serial, new.luns[lun_id].size)
        for lun_id, lun in sorted(new.luns.items()):
            if lun_id not in resized and old.luns.get(lun_id) != lun:
                tgt.add_lun(tid, lun_id, lun.serial, lun.size)
        for initiator in sorted(old.initiators - new.initiators):
            tgt.unbind_initiator(tid, initiator)


def _resized(before: MirroredLun | None, after: MirroredLun) -> bool:
    """The same LUN at the same id with a new size: its LU is resized in place, its data kept."""
    return before is not None and before.uuid == after.uuid and before.size != after.size


class _Forgiving:
    """The mirror is best effort: a tgtadm failure is logged and must not fail the ONTAP request."""

    def __init__(self, tgtadm: TgtadmLike) -> None:
        self._tgtadm = tgtadm

    def __getattr__(self, name: str) -> Callable[..., bool]:
        action = getattr(self._tgtadm, name)

        def attempt(*args: Any, **kwargs: Any) -> bool:
            try:
                action(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - any tgtd trouble; args may hold a CHAP secret
                log.error("tgtadm %s failed: %s", name, exc)
                return False
            return True

        return attempt
