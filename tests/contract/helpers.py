"""Arranging the simulated array directly, as another host or a lost reply would have left it."""

from __future__ import annotations

from ontap_sim.model import Volume
from ontap_sim.simulator import Simulator

SVM = "svm1"
IQN = "iqn.1994-05.com.redhat:contract-host"
IGROUP = "openstack-contract-host"
LUN0, LUN1, LUN2, LUN3 = (f"/vol/vol1/lun{n}" for n in range(4))


def array_igroup(sim: Simulator, name: str, *initiators: str) -> None:
    with sim.state.lock:
        igroup = sim.state.create_igroup(sim.state.svm(name=SVM), name, "iscsi", "linux")
        for initiator in initiators:
            igroup = sim.state.add_initiator(igroup, initiator)


def array_map(sim: Simulator, path: str, igroup: str, lun_id: int | None = None) -> int:
    with sim.state.lock:
        lun = sim.state.lun(SVM, path=path)
        return sim.state.map_lun(lun, sim.state.igroup(SVM, name=igroup), lun_id).lun_id


def array_maps(sim: Simulator, path: str) -> list[tuple[str, int]]:
    """(igroup, LUN id) of every map of the LUN, read from the simulator's state."""
    with sim.state.lock:
        lun = sim.state.lun(SVM, path=path)
        return [(sim.state.igroups[m.igroup_uuid].name, m.lun_id) for m in sim.state.maps_of_lun(lun)]


def array_igroups_named(sim: Simulator, name: str) -> int:
    with sim.state.lock:
        return sum(1 for igroup in sim.state.igroups.values() if igroup.name == name)


def array_lun(sim: Simulator, path: str, size: int = 1 << 30) -> str:
    """Create a LUN (and its volume, on node-02, when new); its UUID."""
    volume = path.split("/")[2]
    with sim.state.lock:
        svm = sim.state.svm(name=SVM)
        if (SVM, volume) not in sim.state.volumes:
            sim.state.volumes[(SVM, volume)] = Volume(SVM, volume, sim.state.new_uuid(), "node-02")
        return sim.state.create_lun(svm, path, size).uuid
