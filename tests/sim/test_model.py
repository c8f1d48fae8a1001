"""ONTAP's SAN rules as the model enforces them, independent of the wire."""

from __future__ import annotations

import pytest

from ontap_sim import errors as e
from ontap_sim.errors import OntapError
from ontap_sim.model import SERIAL_ALPHABET, State, wildcard_match
from ontap_sim.seed import build_state

IQN_A = "iqn.1994-05.com.redhat:host-a"
IQN_B = "iqn.1994-05.com.redhat:host-b"


@pytest.fixture
def state() -> State:
    return build_state()


def refused(condition: e.Condition, call, *args) -> bool:
    with pytest.raises(OntapError) as caught:
        call(*args)
    return caught.value.condition is condition


def lun(state: State, n: int):
    return state.lun("svm1", path=f"/vol/vol1/lun{n}")


class TestLunIds:
    def test_ids_are_allocated_per_igroup(self, state: State) -> None:
        svm = state.svms["svm1"]
        one = state.create_igroup(svm, "one", initiators=(IQN_A,))
        two = state.create_igroup(svm, "two", initiators=(IQN_B,))
        assert [state.map_lun(lun(state, 0), one).lun_id, state.map_lun(lun(state, 1), two).lun_id] == [0, 0]

    def test_an_initiator_in_two_igroups_never_sees_one_id_twice(self, state: State) -> None:
        svm = state.svms["svm1"]
        one = state.create_igroup(svm, "one", initiators=(IQN_A,))
        both = state.create_igroup(svm, "both", initiators=(IQN_A, IQN_B))
        state.map_lun(lun(state, 0), one)
        assert state.map_lun(lun(state, 1), both).lun_id == 1
        assert state.map_lun(lun(state, 2), one).lun_id == 2

    def test_an_explicit_id_an_initiator_already_uses_is_refused(self, state: State) -> None:
        svm = state.svms["svm1"]
        one = state.create_igroup(svm, "one", initiators=(IQN_A,))
        both = state.create_igroup(svm, "both", initiators=(IQN_A, IQN_B))
        state.map_lun(lun(state, 0), one, 5)
        assert refused(e.LUN_ID_USED_BY_INITIATOR, state.map_lun, lun(state, 1), both, 5)

    def test_a_lun_reaches_an_initiator_once(self, state: State) -> None:
        svm = state.svms["svm1"]
        one = state.create_igroup(svm, "one", initiators=(IQN_A,))
        other = state.create_igroup(svm, "other", initiators=(IQN_A,))
        state.map_lun(lun(state, 0), one)
        assert refused(e.INITIATOR_SEES_LUN, state.map_lun, lun(state, 0), other)

    def test_adding_an_initiator_that_would_see_a_lun_twice_is_refused(self, state: State) -> None:
        svm = state.svms["svm1"]
        one = state.create_igroup(svm, "one", initiators=(IQN_A,))
        other = state.create_igroup(svm, "other", initiators=(IQN_B,))
        state.map_lun(lun(state, 0), one)
        state.map_lun(lun(state, 0), other)
        assert refused(e.INITIATOR_SEES_LUN, state.add_initiator, other, IQN_A)

    def test_reserved_ids_are_skipped_by_allocation_only(self, state: State) -> None:
        state.reserved_lun_ids = frozenset({0})
        group = state.create_igroup(state.svms["svm1"], "g", initiators=(IQN_A,))
        assert state.map_lun(lun(state, 0), group).lun_id == 1
        assert state.map_lun(lun(state, 1), group, 0).lun_id == 0

    def test_ids_outside_0_to_4095_are_invalid(self, state: State) -> None:
        group = state.create_igroup(state.svms["svm1"], "g")
        assert refused(e.INVALID_INPUT, state.map_lun, lun(state, 0), group, 4096)

    def test_reporting_nodes_are_the_owner_and_its_partner(self, state: State) -> None:
        group = state.create_igroup(state.svms["svm1"], "g")
        assert state.map_lun(lun(state, 0), group).reporting_nodes == ("node-01", "node-02")


class TestObjects:
    def test_bad_initiator_names_are_refused(self, state: State) -> None:
        group = state.create_igroup(state.svms["svm1"], "g")
        assert refused(e.INVALID_INITIATOR, state.add_initiator, group, "not-an-iqn")

    def test_new_serials_are_12_printable_characters_and_unique(self, state: State) -> None:
        created = [state.create_lun(state.svms["svm1"], f"/vol/vol1/x{i}", 1024) for i in range(50)]
        serials = [c.serial for c in created]
        assert len(set(serials)) == 50 and all(
            len(s) == 12 and set(s) <= set(SERIAL_ALPHABET) for s in serials
        )

    def test_lun_paths_need_an_existing_volume(self, state: State) -> None:
        assert refused(e.VOLUME_NOT_FOUND, state.create_lun, state.svms["svm1"], "/vol/nope/x", 1024)
        assert refused(e.LUN_EXISTS, state.create_lun, state.svms["svm1"], "/vol/vol1/lun0", 1024)

    def test_listeners_hear_every_change(self, state: State) -> None:
        heard: list[int] = []
        state.listeners.append(lambda s: heard.append(len(s.igroups)))
        state.create_igroup(state.svms["svm1"], "g")
        assert heard == [1]


@pytest.mark.parametrize(
    ("pattern", "value", "hit"),
    [
        ("/vol/vol1/*", "/vol/vol1/lun0", True),
        ("lun?", "lun1", False),
        ("ab?c$", "ab?c$", True),
        ("*", "", True),
    ],
)
def test_only_star_is_a_wildcard(pattern: str, value: str, hit: bool) -> None:
    assert wildcard_match(pattern, value) is hit
