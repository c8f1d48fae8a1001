"""Sessions come from sysfs (the kernel's view) and a scan asks for exactly one LUN."""

import pytest

from iscsi_agent.host.errors import SysfsError
from iscsi_agent.host.sessions import ScsiAddress, Session, Sessions
from iscsi_agent.portal import Portal

IQN = "iqn.1992-08.com.netapp:sn.4b1d6e0f2a9c11efb3c1005056a7d2e4:vs.3"


def test_a_session_is_read_with_its_target_portal_state_and_scsi_host(tree, paths):
    tree.add_session(1, 6, IQN, "127.0.0.1:3260")
    assert Sessions(paths).current() == (
        Session(
            sid=1,
            target_iqn=IQN,
            portal=Portal("127.0.0.1", 3260),
            state="LOGGED_IN",
            host_number=6,
            tpgt=1,
            iface="default",
        ),
    )


def test_sessions_come_in_session_id_order(tree, paths):
    tree.add_session(12, 9, IQN, "127.0.0.2:3260")
    tree.add_session(3, 7, IQN, "127.0.0.1:3260", state="FAILED")
    sessions = Sessions(paths).current()
    assert [(s.sid, s.host_number, str(s.portal), s.logged_in) for s in sessions] == [
        (3, 7, "127.0.0.1:3260", False),
        (12, 9, "127.0.0.2:3260", True),
    ]


def test_no_iscsi_class_means_no_sessions(tmp_path):
    from iscsi_agent.host.paths import HostPaths

    assert Sessions(HostPaths(tmp_path)).current() == ()


def test_find_matches_target_and_portal(tree, paths):
    tree.add_session(1, 6, IQN, "127.0.0.1:3260")
    tree.add_session(2, 7, IQN, "127.0.0.2:3260")
    sessions = Sessions(paths)
    assert sessions.find(IQN, Portal("127.0.0.2")).sid == 2
    assert sessions.find(IQN, Portal("127.0.0.3")) is None
    assert sessions.find("iqn.2001-04.com.example:other", Portal("127.0.0.1")) is None


def test_the_portal_falls_back_to_the_current_address(tree, paths):
    tree.add_session(1, 6, IQN, "127.0.0.1:3260")
    connection = (
        tree.root / "sys/devices/platform/host6/session1/connection1:0/iscsi_connection/connection1:0"
    )
    (connection / "persistent_address").unlink()
    (connection / "persistent_port").unlink()
    assert Sessions(paths).current()[0].portal == Portal("127.0.0.1", 3260)


def test_a_session_vanishing_while_read_is_skipped(tree, paths):
    tree.add_session(1, 6, IQN)
    (tree.root / "sys/devices/platform/host6/session1/iscsi_session/session1/targetname").unlink()
    assert Sessions(paths).current() == ()


def test_the_devices_of_a_session_are_its_luns(tree, paths):
    tree.add_session(1, 6, IQN)
    tree.add_session(2, 7, IQN, "127.0.0.2:3260")
    tree.add_disk(ScsiAddress(6, 0, 0, 2), "sdb", "serial000002", sid=1)
    tree.add_disk(ScsiAddress(6, 0, 0, 1), "sda", "serial000001", sid=1)
    tree.add_disk(ScsiAddress(7, 0, 0, 1), "sdc", "serial000001", sid=2, portal="127.0.0.2:3260")
    sessions = Sessions(paths)
    first = sessions.find(IQN, Portal("127.0.0.1"))
    assert sessions.devices(first) == (ScsiAddress(6, 0, 0, 1), ScsiAddress(6, 0, 0, 2))


def test_a_scan_names_exactly_one_lun_never_a_wildcard(tree, paths):
    tree.add_session(1, 6, IQN)
    Sessions(paths).scan_lun(6, 5)
    assert tree.scan_request(6) == "0 0 5"


def test_a_scan_on_a_missing_host_is_a_sysfs_error_naming_it(paths):
    with pytest.raises(SysfsError, match="scan of LUN 5 on host9 failed") as caught:
        Sessions(paths).scan_lun(9, 5)
    assert caught.value.details["host"] == 9


def test_the_recovery_timeout_of_a_live_session_is_read_and_changed_in_sysfs(tree, paths):
    tree.add_session(1, 6, IQN, recovery_tmo=120)
    sessions = Sessions(paths)
    [session] = sessions.current()
    assert sessions.recovery_timeout(session) == 120
    sessions.set_recovery_timeout(session, 5)
    assert tree.session_attr(1, "recovery_tmo").read_text() == "5"
    assert sessions.recovery_timeout(session) == 5


def test_a_recovery_timeout_that_is_off_reads_as_minus_one_and_a_vanished_one_as_none(tree, paths):
    tree.add_session(1, 6, IQN)
    sessions = Sessions(paths)
    [session] = sessions.current()
    tree.session_attr(1, "recovery_tmo").write_text("off\n")  # the kernel's -1: I/O queued for ever
    assert sessions.recovery_timeout(session) == -1
    tree.remove_session(1, 6)
    assert sessions.recovery_timeout(session) is None


def test_a_recovery_timeout_the_kernel_refuses_is_a_sysfs_error_naming_the_session(tree, paths):
    tree.add_session(3, 6, IQN)
    [session] = Sessions(paths).current()
    tree.refuse_session_attr(3, "recovery_tmo")
    with pytest.raises(SysfsError, match="setting the recovery timeout of session3 to 5s failed") as caught:
        Sessions(paths).set_recovery_timeout(session, 5)
    assert caught.value.details["sid"] == 3


def test_scsi_addresses_parse_and_print():
    assert ScsiAddress.parse("6:0:0:12") == ScsiAddress(6, 0, 0, 12)
    assert str(ScsiAddress(6, 0, 0, 12)) == "6:0:0:12"
    with pytest.raises(ValueError):
        ScsiAddress.parse("6:0:0")
