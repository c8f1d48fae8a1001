"""Growing (and, where ONTAP allows it, shrinking) a LUN: the model's rules and both wire spellings.

REST grows only (``PATCH /api/storage/luns/{uuid}`` with ``space.size``); ZAPI ``lun-resize``
also shrinks, but only with ``force``. Sizes are rounded up to whole 512-byte blocks and the
size actually set is what both APIs report afterwards.
"""

from __future__ import annotations

import pytest

from ontap_sim import Simulator
from ontap_sim import errors as e
from ontap_sim.errors import OntapError
from ontap_sim.model import MAX_LUN_SIZE, MIN_LUN_SIZE, State
from ontap_sim.seed import build_state
from tests.sim.test_zapi import failed
from tests.sim.wire import field

GiB = 1024**3
LUN0 = "/vol/vol1/lun0"  # seeded at 1 GiB


@pytest.fixture
def state() -> State:
    return build_state()


def listened(state: State) -> list[int]:
    """Sizes of LUN0 seen by listeners, one entry per notification."""
    seen: list[int] = []
    state.listeners.append(lambda s: seen.append(s.lun("svm1", path=LUN0).size))
    return seen


def refused_with(condition: e.Condition, call, *args, **kwargs) -> OntapError:
    with pytest.raises(OntapError) as caught:
        call(*args, **kwargs)
    assert caught.value.condition is condition, caught.value.message
    return caught.value


class TestModel:
    def test_a_grow_sets_the_size_keeps_the_identity_and_notifies_listeners(self, state: State) -> None:
        before = state.lun("svm1", path=LUN0)
        seen = listened(state)
        grown = state.resize_lun(before, 2 * GiB)
        assert grown.size == 2 * GiB == state.lun("svm1", path=LUN0).size
        assert (grown.uuid, grown.serial, grown.path) == (before.uuid, before.serial, before.path)
        assert seen == [2 * GiB]

    def test_a_size_is_rounded_up_to_whole_512_byte_blocks(self, state: State) -> None:
        grown = state.resize_lun(state.lun("svm1", path=LUN0), GiB + 1)
        assert grown.size == GiB + 512

    def test_a_shrink_is_refused_without_force_and_changes_nothing(self, state: State) -> None:
        seen = listened(state)
        refused_with(e.LUN_SHRINK_REFUSED, state.resize_lun, state.lun("svm1", path=LUN0), GiB // 2)
        assert state.lun("svm1", path=LUN0).size == GiB and seen == []

    def test_a_forced_shrink_is_allowed(self, state: State) -> None:
        shrunk = state.resize_lun(state.lun("svm1", path=LUN0), GiB // 2, allow_shrink=True)
        assert shrunk.size == GiB // 2

    @pytest.mark.parametrize("size", [0, -512])
    def test_zero_or_negative_is_an_invalid_size(self, state: State, size: int) -> None:
        refused_with(e.LUN_SIZE_INVALID, state.resize_lun, state.lun("svm1", path=LUN0), size)

    def test_below_the_minimum_is_too_small_even_with_force(self, state: State) -> None:
        refused_with(
            e.LUN_SIZE_TOO_SMALL,
            state.resize_lun,
            state.lun("svm1", path=LUN0),
            MIN_LUN_SIZE - 512,
            allow_shrink=True,
        )

    def test_above_the_maximum_is_too_large(self, state: State) -> None:
        refused_with(e.LUN_SIZE_TOO_LARGE, state.resize_lun, state.lun("svm1", path=LUN0), MAX_LUN_SIZE + 512)
        assert state.resize_lun(state.lun("svm1", path=LUN0), MAX_LUN_SIZE).size == MAX_LUN_SIZE

    def test_the_same_size_changes_nothing_and_notifies_no_one(self, state: State) -> None:
        seen = listened(state)
        assert state.resize_lun(state.lun("svm1", path=LUN0), GiB - 100).size == GiB
        assert seen == []


def lun_uuid(sim: Simulator, path: str = LUN0) -> str:
    with sim.state.lock:
        return sim.state.lun("svm1", path=path).uuid


def size_on_array(sim: Simulator, path: str = LUN0) -> int:
    with sim.state.lock:
        return sim.state.lun("svm1", path=path).size


class TestRest:
    def test_patch_space_size_grows_the_lun_and_get_reports_it(self, rest, ontap_sim: Simulator) -> None:
        uuid = lun_uuid(ontap_sim)
        reply = rest("PATCH", f"/api/storage/luns/{uuid}", json={"space": {"size": 3 * GiB + 1}})
        assert reply.status_code == 200, reply.text
        shown = rest("GET", f"/api/storage/luns/{uuid}?fields=space.size").json()
        assert shown["space"]["size"] == 3 * GiB + 512 == size_on_array(ontap_sim)

    def test_dotted_keys_and_numeric_strings_are_accepted_as_cinder_sends_them(
        self, rest, ontap_sim: Simulator
    ) -> None:
        reply = rest(
            "PATCH",
            f"/api/storage/luns/{lun_uuid(ontap_sim)}",
            json={"name": LUN0, "space.size": str(2 * GiB)},
            headers={"X-Dot-SVM-Name": "svm1"},
        )
        assert reply.status_code == 200, reply.text
        assert size_on_array(ontap_sim) == 2 * GiB

    def test_a_patch_to_the_current_size_succeeds_and_changes_nothing(
        self, rest, ontap_sim: Simulator
    ) -> None:
        seen = listened(ontap_sim.state)
        reply = rest("PATCH", f"/api/storage/luns/{lun_uuid(ontap_sim)}", json={"space": {"size": GiB}})
        assert reply.status_code == 200 and seen == []

    def test_a_shrink_is_refused_with_ontaps_code_and_words(self, rest, ontap_sim: Simulator) -> None:
        reply = rest("PATCH", f"/api/storage/luns/{lun_uuid(ontap_sim)}", json={"space": {"size": GiB // 2}})
        assert reply.status_code == 400
        error = reply.json()["error"]
        assert error["code"] == "5374892" and error["target"] == "space.size"
        assert error["message"].startswith("Reducing the size of a LUN might cause permanent data loss")
        assert size_on_array(ontap_sim) == GiB

    @pytest.mark.parametrize(
        ("size", "code"),
        [
            ("lots", "5374130"),
            (1.5, "5374130"),
            (True, "5374130"),
            (0, "5374130"),
            (-4096, "5374130"),
            (MAX_LUN_SIZE * 2, "5374125"),
        ],
    )
    def test_bad_sizes_are_refused_with_ontaps_codes(self, rest, ontap_sim: Simulator, size, code) -> None:
        reply = rest("PATCH", f"/api/storage/luns/{lun_uuid(ontap_sim)}", json={"space": {"size": size}})
        assert (reply.status_code, reply.json()["error"]["code"]) == (400, code), reply.text
        assert size_on_array(ontap_sim) == GiB

    def test_an_unknown_lun_is_5374875(self, rest) -> None:
        reply = rest(
            "PATCH", "/api/storage/luns/00000000-0000-0000-0000-000000000000", json={"space": {"size": GiB}}
        )
        assert (reply.status_code, reply.json()["error"]["code"]) == (404, "5374875")

    @pytest.mark.parametrize(
        "body", [{"comment": "x"}, {"name": "/vol/vol1/renamed"}, {"space": {"used": 1}}]
    )
    def test_fields_the_simulator_cannot_change_are_refused_not_ignored(
        self, rest, ontap_sim: Simulator, body
    ) -> None:
        reply = rest("PATCH", f"/api/storage/luns/{lun_uuid(ontap_sim)}", json=body)
        error = reply.json()["error"]
        assert reply.status_code == 400 and error["target"] in error["message"], error
        assert size_on_array(ontap_sim) == GiB


def lun_resize(zapi, path: str, size: object, force: bool | None = None):
    forced = "" if force is None else f"<force>{str(force).lower()}</force>"
    return zapi("lun-resize", f"<path>{path}</path><size>{size}</size>{forced}")


class TestZapi:
    def test_lun_resize_grows_and_answers_the_actual_size(self, zapi, ontap_sim: Simulator) -> None:
        results = lun_resize(zapi, LUN0, 3 * GiB + 1)
        assert results.get("status") == "passed", results.get("reason")
        assert field(results, "actual-size") == str(3 * GiB + 512) == str(size_on_array(ontap_sim))

    def test_a_shrink_needs_force(self, zapi, ontap_sim: Simulator) -> None:
        refused = lun_resize(zapi, LUN0, GiB // 2)
        assert failed(refused, e.LUN_SHRINK_REFUSED.zapi_errno) and size_on_array(ontap_sim) == GiB
        forced = lun_resize(zapi, LUN0, GiB // 2, force=True)
        assert field(forced, "actual-size") == str(GiB // 2) == str(size_on_array(ontap_sim))

    def test_the_same_size_is_9042(self, zapi) -> None:
        assert failed(lun_resize(zapi, LUN0, GiB), 9042)

    @pytest.mark.parametrize(("size", "errno"), [("lots", 13115), (0, 13115), (1024, 9041)])
    def test_bad_sizes_are_refused(self, zapi, ontap_sim: Simulator, size, errno) -> None:
        assert failed(lun_resize(zapi, LUN0, size, force=True), errno)
        assert size_on_array(ontap_sim) == GiB

    def test_a_missing_size_is_invalid_input(self, zapi) -> None:
        results = zapi("lun-resize", f"<path>{LUN0}</path>")
        assert failed(results, 13115) and results.get("reason") == "Missing input: size"

    def test_an_unknown_lun_is_15661(self, zapi) -> None:
        assert failed(lun_resize(zapi, "/vol/vol1/nosuch", GiB), 15661)

    def test_lun_resize_is_svm_scoped(self, zapi) -> None:
        assert failed(zapi("lun-resize", f"<path>{LUN0}</path><size>{2 * GiB}</size>", vfiler=None), 13005)
