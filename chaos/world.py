"""What the soak knows besides the daemon's answers: the markers it wrote, the maps it made behind the
agent's back, the processes holding devices, and the array's view of this host (the simulator's state)."""

from __future__ import annotations

from dataclasses import dataclass, field

from chaos.host import Holder
from ontap_sim import Simulator


@dataclass
class Marked:
    generation: int
    device: str


@dataclass
class World:
    seed: int
    initiator: str
    markers: dict[str, Marked] = field(default_factory=dict)  # volume -> its marker, while it is valid
    operator_maps: set[str] = field(default_factory=set)  # LUN paths the soak mapped behind the back
    holders: list[Holder] = field(default_factory=list)
    generation: int = 0

    def next_generation(self) -> int:
        self.generation += 1
        return self.generation

    def held_nodes(self) -> set[str]:
        return {holder.node for holder in self.holders if holder.node}


def host_igroups(sim: Simulator, initiator: str) -> list[str]:
    with sim.state.lock:
        return sorted(ig.name for ig in sim.state.igroups.values() if initiator in ig.initiators)


def host_maps(sim: Simulator, initiator: str) -> dict[str, int]:
    """LUN path -> LUN id of every map that reaches this host's initiator."""
    with sim.state.lock:
        state = sim.state
        return {
            state.luns[m.lun_uuid].path: m.lun_id
            for m in state.maps
            if initiator in state.igroups[m.igroup_uuid].initiators
        }


def serial(sim: Simulator, path: str) -> str:
    with sim.state.lock:
        return sim.state.lun("svm1", path=path).serial


def own_igroup(sim: Simulator, initiator: str) -> str | None:
    names = host_igroups(sim, initiator)
    return names[0] if names else None


def unmap(sim: Simulator, path: str, initiator: str) -> int | None:
    """Unmap ``path`` from every igroup of this host, as an admin on the array would; its id, or None."""
    with sim.state.lock:
        state = sim.state
        lun = state.lun("svm1", path=path)
        lun_id = None
        for lun_map in state.maps_of_lun(lun):
            igroup = state.igroups[lun_map.igroup_uuid]
            if initiator in igroup.initiators:
                state.unmap_lun(lun, igroup)
                lun_id = lun_map.lun_id
        return lun_id


def map_into(sim: Simulator, path: str, igroup: str, lun_id: int | None = None) -> int:
    with sim.state.lock:
        state = sim.state
        lun_map = state.map_lun(state.lun("svm1", path=path), state.igroup("svm1", name=igroup), lun_id)
        return lun_map.lun_id
