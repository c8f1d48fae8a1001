"""What the agent keeps knowing about the array between attaches, so a steady attach costs one call.

This host's igroup, the SVM's target IQN and its iSCSI LIFs change rarely; each is read once and
kept until an error proves it wrong (``forget``). The Selective LUN Map reporting nodes are those
of the LUN's owning HA pair, shared by every LUN of one volume, so they are kept per volume, and so
is the node hosting the volume's LUNs; a volume move to another HA pair makes both stale, and the
LUN then shows on none of the LIFs chosen from them: an attach whose device does not show forgets
them, so the next attach reads them again.
"""

from __future__ import annotations

import logging
import threading

from iscsi_agent.array.client import ArrayClient
from iscsi_agent.array.model import Igroup, Lif, Lun
from iscsi_agent.service.igroup import check_created, choose_igroup

log = logging.getLogger(__name__)


def volume_of(lun_path: str) -> str:
    """``/vol/vol1/lun0`` → ``vol1`` (qtree LUNs ``/vol/vol1/q1/lun0`` share the volume too)."""
    parts = lun_path.split("/")
    return parts[2] if len(parts) > 2 and parts[1] == "vol" else lun_path


class ArrayView:
    def __init__(
        self,
        array: ArrayClient,
        *,
        initiator: str,
        igroup_name: str,
        os_type: str,
    ) -> None:
        self._array = array
        self._initiator = initiator
        self._own_name = igroup_name
        self._os_type = os_type
        self._lock = threading.Lock()
        self._igroup: Igroup | None = None
        self._target_iqn: str | None = None
        self._lifs: tuple[Lif, ...] | None = None
        self._reporting: dict[str, tuple[str, ...]] = {}
        self._hosts: dict[str, str] = {}  # volume -> the node hosting its LUNs

    @property
    def own_igroup_name(self) -> str:
        """The igroup name this host derives (used unless another igroup of this host alone exists)."""
        return self._own_name

    def igroup(self) -> Igroup:
        """This host's igroup by the design's rule, created (with the initiator) when there is none.

        The initiator's CHAP entry is not this view's: ``service/chap.py`` sets it, and again
        whenever a secret file changes.
        """
        with self._lock:
            if self._igroup is None:
                self._igroup = self._find_or_create_igroup()
            return self._igroup

    def prepare(self) -> None:
        """Read the SVM's target and LIFs, which no host or LUN changes, before an attach waits for them.

        The igroup is not: reading it ahead would answer an attach with what the array held at start,
        and making it would leave an igroup on the array for a host that may never attach."""
        self.target_iqn()
        self.lifs()

    def target_iqn(self) -> str:
        with self._lock:
            if self._target_iqn is None:
                self._target_iqn = self._array.iscsi_service().target_iqn
            return self._target_iqn

    def lifs(self) -> tuple[Lif, ...]:
        with self._lock:
            if self._lifs is None:
                self._lifs = self._array.portals()
            return self._lifs

    def reporting_nodes(self, lun_path: str, igroup: str) -> tuple[str, ...]:
        """The nodes that report the LUN (SLM); empty when the array gave none (then every LIF may)."""
        volume = volume_of(lun_path)
        with self._lock:
            known = self._reporting.get(volume)
        if known is not None:
            return known
        found = self._array.lun_map(lun_path, igroup)
        nodes = found.reporting_nodes if found is not None else ()
        with self._lock:
            self._reporting[volume] = nodes
        return nodes

    def hosting_node(self, lun: Lun) -> str:
        """The node hosting the LUN: as its lookup read it (kept for its volume from then on: all
        LUNs of a volume are hosted by one node), else as kept for its volume; "" when unknown."""
        volume = volume_of(lun.path)
        with self._lock:
            if lun.node:
                self._hosts[volume] = lun.node
            return self._hosts.get(volume, "")

    def learn_reporting_nodes(self, lun_path: str, nodes: tuple[str, ...]) -> None:
        """The reporting nodes a map's own answer gave: those of the LUN's volume, as ``reporting_nodes``
        would have read them."""
        with self._lock:
            self._reporting[volume_of(lun_path)] = nodes

    def forget(self, *, igroup: bool = False, target: bool = False, lun_path: str | None = None) -> None:
        """Drop what an error proved stale; the next attach reads it again."""
        with self._lock:
            if igroup:
                self._igroup = None
            if target:
                self._target_iqn = None
                self._lifs = None
            if lun_path is not None:
                self._reporting.pop(volume_of(lun_path), None)
                self._hosts.pop(volume_of(lun_path), None)

    def _find_or_create_igroup(self) -> Igroup:
        choice = choose_igroup(
            self._array.igroups_with_initiator(self._initiator),
            self._initiator,
            self._os_type,
            self._own_name,
        )
        for igroup, reason in choice.passed_over:
            log.info("igroup %s holds %s but is not used: %s", igroup.name, self._initiator, reason.value)
        if choice.igroup is not None:
            log.info("using igroup %s for %s", choice.igroup.name, self._initiator)
            return choice.igroup
        assert choice.create is not None  # choose_igroup answers one or the other
        created = self._array.create_igroup(choice.create, self._os_type, (self._initiator,))
        return check_created(created, self._initiator, self._os_type)
