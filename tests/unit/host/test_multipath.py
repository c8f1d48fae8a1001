"""Multipath maps are found by WWID in sysfs and changed through multipath/multipathd with timeouts."""

import pytest

from iscsi_agent.host.errors import MultipathError
from iscsi_agent.host.multipath import Multipath, MultipathMap
from tests.fakes import FakeRunner

WWID = "3600a098061623f242f43643366476831"


@pytest.fixture
def runner():
    return FakeRunner()


@pytest.fixture
def multipath(paths, runner, clock):
    return Multipath(paths, runner, clock, timeout=45)


@pytest.fixture
def mapped(tree):
    from iscsi_agent.host.sessions import ScsiAddress

    tree.add_disk(ScsiAddress(6, 0, 0, 1), "sda", "ab?$/Cd3fGh1")
    tree.add_disk(ScsiAddress(7, 0, 0, 1), "sdb", "ab?$/Cd3fGh1", portal="127.0.0.2:3260")
    tree.add_multipath("dm-0", WWID, "mpath-" + WWID, ["sda", "sdb"])
    tree.add_multipath("dm-1", "vg0-root", "LVM-abcdef", [])


def test_a_map_is_found_by_wwid_in_any_spelling(mapped, multipath, paths):
    expected = MultipathMap(name=WWID, dm="dm-0", wwid=WWID, slaves=("sda", "sdb"), node=paths.mapper(WWID))
    assert multipath.find("naa.600a098061623f242f43643366476831") == expected
    assert multipath.find(WWID) == expected


def test_other_device_mapper_targets_are_not_maps(mapped, multipath):
    assert [m.dm for m in multipath.maps()] == ["dm-0"]


def test_no_map_for_an_unknown_wwid(mapped, multipath):
    assert multipath.find("naa.600a0980aaaaaaaaaaaaaaaaaaaaaaaa") is None


def test_adding_a_wwid_uses_multipaths_spelling(multipath, runner):
    multipath.add_wwid("naa.600a098061623f242f43643366476831")
    assert runner.calls[0].argv == ("multipath", "-a", WWID)
    assert runner.calls[0].timeout == 45


def test_forgetting_a_path_asks_multipathd_to_let_it_go(multipath, runner):
    multipath.forget_path("sdb")
    assert runner.argvs == [("multipathd", "del", "path", "sdb")]


def test_adding_a_path_asks_multipathd(multipath, runner):
    multipath.add_path("sdb")
    assert runner.argvs == [("multipathd", "add", "path", "sdb")]


def test_flushing_a_map_first_switches_it_from_queueing_to_failing_then_names_it(mapped, multipath, runner):
    multipath.flush(multipath.find(WWID))
    assert runner.argvs == [
        ("dmsetup", "message", WWID, "0", "fail_if_no_path"),
        ("multipath", "-f", "-R", "5", WWID),
    ]
    assert [call.timeout for call in runner.calls] == [45, 45]


def test_a_map_that_cannot_be_switched_to_failing_is_still_flushed(mapped, multipath, runner):
    runner.reply(("dmsetup", "message"), exit_code=1, stderr="device-mapper: message ioctl failed\n")
    multipath.flush(multipath.find(WWID))
    assert runner.argvs[-1] == ("multipath", "-f", "-R", "5", WWID)


def test_a_hung_dmsetup_does_not_hang_the_flush(mapped, multipath, runner):
    runner.hang_on = ("dmsetup", "message")
    multipath.flush(multipath.find(WWID))
    assert runner.argvs[-1] == ("multipath", "-f", "-R", "5", WWID)


def test_the_map_holding_a_path_is_found_by_the_path(mapped, multipath):
    assert multipath.holding("sdb").dm == "dm-0"
    assert multipath.holding("sdc") is None


def test_a_map_in_use_fails_to_flush_with_multipaths_words(mapped, multipath, runner):
    runner.reply(("multipath", "-f"), exit_code=1, stderr=f"{WWID}: map in use\n")
    with pytest.raises(MultipathError, match=f"flush {WWID} failed .exit 1.: {WWID}: map in use"):
        multipath.flush(multipath.find(WWID))


def test_a_hung_multipath_is_an_error_not_a_hang(mapped, multipath, runner):
    runner.hang_on = ("multipath", "-f")
    with pytest.raises(MultipathError, match="no answer within 45s"):
        multipath.flush(multipath.find(WWID))


def test_waiting_for_a_map_returns_it_once_all_paths_are_in(mapped, multipath):
    assert multipath.wait_for(WWID, ["sda", "sdb"], timeout=5).slaves == ("sda", "sdb")


def test_a_map_missing_a_path_times_out_saying_what_it_runs_over(tree, mapped, multipath):
    from iscsi_agent.host.sessions import ScsiAddress

    tree.add_disk(ScsiAddress(8, 0, 0, 1), "sdc", "ab?$/Cd3fGh1", portal="127.0.0.3:3260")
    with pytest.raises(
        MultipathError, match=r"over sda, sdb, sdc not ready within 3s; seen: map .* \(dm-0\) over sda, sdb"
    ):
        multipath.wait_for(WWID, ["sda", "sdb", "sdc"], timeout=3)


def test_no_map_at_all_times_out_saying_so(multipath):
    with pytest.raises(MultipathError, match="seen: no map"):
        multipath.wait_for(WWID, ["sda"], timeout=1)
