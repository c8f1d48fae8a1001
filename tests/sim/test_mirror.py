"""The tgtd mirror turns simulated maps, igroups and CHAP into tgtadm calls (recorded by a fake)."""

from __future__ import annotations

import pytest

from ontap_sim import Simulator
from ontap_sim.mirror import TgtMirror, plan
from ontap_sim.model import Chap, State
from ontap_sim.seed import build_state
from ontap_sim.tgt import TgtError

IQN_A = "iqn.1994-05.com.redhat:host-a"
IQN_B = "iqn.1994-05.com.redhat:host-b"


class FakeTgtadm:
    """Records every call as (name, args...); ``fail_on`` names calls that raise like tgtadm would."""

    def __init__(self, fail_on: frozenset[str] = frozenset()) -> None:
        self.calls: list[tuple] = []
        self.fail_on = fail_on

    def __getattr__(self, name: str):
        def record(*args, **kwargs):
            self.calls.append((name, *args, *kwargs.values()))
            if name in self.fail_on:
                raise TgtError(f"tgtadm {name}: this logical unit number already exists")

        return record

    def named(self, name: str) -> list[tuple]:
        return [call[1:] for call in self.calls if call[0] == name]


@pytest.fixture
def tgt() -> FakeTgtadm:
    return FakeTgtadm()


@pytest.fixture
def sim(tgt: FakeTgtadm):
    simulator = Simulator(tgt=tgt)
    simulator.start()
    yield simulator
    simulator.stop()


def igroup(state: State, name: str, *initiators: str):
    with state.lock:
        return state.create_igroup(state.svms["svm1"], name, initiators=initiators)


def map_lun(state: State, n: int, group, lun_id: int | None = None):
    with state.lock:
        return state.map_lun(state.lun("svm1", path=f"/vol/vol1/lun{n}"), group, lun_id)


class TestStart:
    def test_creates_the_svm_target_and_its_portals(self, sim: Simulator, tgt: FakeTgtadm) -> None:
        assert tgt.named("create_target") == [(1, sim.state.svms["svm1"].iscsi.target_iqn)]
        assert tgt.named("add_portal") == [("127.0.0.1", 3260), ("127.0.0.2", 3260)]

    def test_stop_removes_what_start_created(self, tgt: FakeTgtadm) -> None:
        sim = Simulator(tgt=tgt)
        sim.start()
        map_lun(sim.state, 0, igroup(sim.state, "g", IQN_A))
        sim.stop()
        assert tgt.named("remove_lun") == [(1, 1)]
        assert tgt.named("delete_target") == [(1,)]
        assert tgt.named("remove_portal") == [("127.0.0.1", 3260), ("127.0.0.2", 3260)]


class TestMaps:
    def test_a_map_adds_the_lun_with_its_serial_and_admits_the_igroup(
        self, sim: Simulator, tgt: FakeTgtadm
    ) -> None:
        lun_map = map_lun(sim.state, 1, igroup(sim.state, "g", IQN_A, IQN_B))
        assert lun_map.lun_id == 1  # id 0 is tgtd's controller LU, so allocation starts at 1
        assert tgt.named("add_lun") == [(1, 1, "Zp$3Rt7/xY?b", 2 * 1024**3)]
        assert tgt.named("bind_initiator") == [(1, IQN_A), (1, IQN_B)]

    def test_an_unmap_removes_the_lun_and_the_last_map_closes_the_acl(
        self, sim: Simulator, tgt: FakeTgtadm
    ) -> None:
        group = igroup(sim.state, "g", IQN_A)
        map_lun(sim.state, 0, group)
        with sim.state.lock:
            sim.state.unmap_lun(sim.state.lun("svm1", path="/vol/vol1/lun0"), group)
        assert tgt.named("remove_lun") == [(1, 1)]
        assert tgt.named("unbind_initiator") == [(1, IQN_A)]

    def test_an_initiator_added_to_a_mapped_igroup_is_admitted(self, sim: Simulator, tgt: FakeTgtadm) -> None:
        group = igroup(sim.state, "g", IQN_A)
        map_lun(sim.state, 0, group)
        with sim.state.lock:
            sim.state.add_initiator(group, IQN_B)
        assert tgt.named("bind_initiator") == [(1, IQN_A), (1, IQN_B)]

    def test_unrelated_changes_issue_no_commands(self, sim: Simulator, tgt: FakeTgtadm) -> None:
        before = len(tgt.calls)
        igroup(sim.state, "unmapped", IQN_A)
        assert len(tgt.calls) == before

    def test_tgtadm_failures_do_not_fail_the_ontap_request(self) -> None:
        tgt = FakeTgtadm(fail_on=frozenset({"add_lun"}))
        sim = Simulator(tgt=tgt)
        sim.start()
        try:
            assert map_lun(sim.state, 0, igroup(sim.state, "g", IQN_A)).lun_id == 1
        finally:
            sim.stop()


class TestResize:
    def test_a_grown_mapped_lun_is_resized_in_place_not_removed_and_added(
        self, sim: Simulator, tgt: FakeTgtadm
    ) -> None:
        map_lun(sim.state, 1, igroup(sim.state, "g", IQN_A))
        before = len(tgt.calls)
        with sim.state.lock:
            sim.state.resize_lun(sim.state.lun("svm1", path="/vol/vol1/lun1"), 3 * 1024**3)
        assert tgt.calls[before:] == [("resize_lun", 1, 1, "Zp$3Rt7/xY?b", 3 * 1024**3)]

    def test_an_unmapped_lun_grows_without_tgtadm_and_maps_at_its_new_size(
        self, sim: Simulator, tgt: FakeTgtadm
    ) -> None:
        with sim.state.lock:
            sim.state.resize_lun(sim.state.lun("svm1", path="/vol/vol1/lun1"), 3 * 1024**3)
        assert tgt.named("resize_lun") == []
        map_lun(sim.state, 1, igroup(sim.state, "g", IQN_A))
        assert tgt.named("add_lun") == [(1, 1, "Zp$3Rt7/xY?b", 3 * 1024**3)]

    def test_a_failed_resize_does_not_fail_the_ontap_request(self) -> None:
        tgt = FakeTgtadm(fail_on=frozenset({"resize_lun"}))
        sim = Simulator(tgt=tgt)
        sim.start()
        try:
            map_lun(sim.state, 1, igroup(sim.state, "g", IQN_A))
            with sim.state.lock:
                grown = sim.state.resize_lun(sim.state.lun("svm1", path="/vol/vol1/lun1"), 3 * 1024**3)
            assert grown.size == 3 * 1024**3
        finally:
            sim.stop()


class TestPlan:
    def test_one_namespace_first_claim_on_an_id_wins(self) -> None:
        state = build_state()
        one, two = igroup(state, "one", IQN_A), igroup(state, "two", IQN_B)
        map_lun(state, 0, one, 1)
        map_lun(state, 1, two, 1)
        map_lun(state, 0, two, 2)
        target = plan(state, "svm1")
        assert {i: lun.serial for i, lun in target.luns.items()} == {1: "wH5?k2Lm/9Qa"}
        assert len(target.skipped) == 2 and target.initiators == {IQN_A, IQN_B}

    def test_lun_id_0_is_skipped(self) -> None:
        state = build_state()
        map_lun(state, 0, igroup(state, "g", IQN_A), 0)
        assert plan(state, "svm1").luns == {} and "controller" in plan(state, "svm1").skipped[0]


class TestChap:
    def test_inbound_and_outbound_accounts(self, sim: Simulator, tgt: FakeTgtadm) -> None:
        with sim.state.lock:
            sim.state.add_chap(Chap("svm1", IQN_A, "chap", "in", "insecret1234", "out", "outsecret1234"))
        assert tgt.named("set_account") == [("in", "insecret1234"), ("out", "outsecret1234")]
        assert tgt.named("bind_account") == [(1, "in", False), (1, "out", True)]

    def test_deleting_the_entry_removes_the_accounts(self, sim: Simulator, tgt: FakeTgtadm) -> None:
        with sim.state.lock:
            sim.state.add_chap(Chap("svm1", IQN_A, "chap", "in", "insecret1234"))
            sim.state.delete_chap(sim.state.svms["svm1"], IQN_A)
        assert tgt.named("unbind_account") == [(1, "in", False)]
        assert tgt.named("delete_account") == [("in",)]

    def test_a_new_password_replaces_the_account(self, sim: Simulator, tgt: FakeTgtadm) -> None:
        with sim.state.lock:
            sim.state.add_chap(Chap("svm1", IQN_A, "chap", "in", "insecret1234"))
            sim.state.modify_chap(Chap("svm1", IQN_A, "chap", "in", "newsecret123"))
        assert tgt.named("set_account") == [("in", "insecret1234"), ("in", "newsecret123")]


def test_an_explicit_mirror_picks_its_svm_and_tid(tgt: FakeTgtadm) -> None:
    sim = Simulator(tgt=TgtMirror(tgt, tid=7, svm="svm1"))
    sim.start()
    sim.stop()
    assert tgt.named("create_target")[0][0] == 7 and tgt.named("delete_target") == [(7,)]


def test_a_portal_tgtd_refuses_is_neither_fatal_nor_removed_later() -> None:
    tgt = FakeTgtadm(fail_on=frozenset({"add_portal"}))
    sim = Simulator(tgt=tgt)
    sim.start()
    sim.stop()
    assert len(tgt.named("add_portal")) == 2 and tgt.named("remove_portal") == []
