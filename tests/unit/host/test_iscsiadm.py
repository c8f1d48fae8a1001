"""iscsiadm: argv built right, secrets handed to the runner for masking, exit codes mapped to typed errors."""

import pytest

from iscsi_agent.host.errors import (
    IscsiadmError,
    IscsiAuthFailed,
    IscsidUnreachable,
    IscsiLoginFailed,
    IscsiNoRecords,
    IscsiSessionExists,
    IscsiTimeout,
    IscsiTransportMissing,
)
from iscsi_agent.host.iscsiadm import Chap, DiscoveredTarget, Iscsiadm, NodeSettings, parse_sendtargets
from iscsi_agent.portal import Portal
from tests.fakes import FakeRunner

IQN = "iqn.1992-08.com.netapp:sn.4b1d6e0f2a9c11efb3c1005056a7d2e4:vs.3"
PORTAL = Portal("127.0.0.1", 3260)
NODE = ("iscsiadm", "-m", "node", "-T", IQN, "-p", "127.0.0.1:3260")
DISCOVERYDB = ("iscsiadm", "-m", "discoverydb", "-t", "sendtargets", "-p", "127.0.0.1:3260")
# Captured from iscsiadm 2.1.8 in the test VM.
SENDTARGETS = f"127.0.0.1:3260,1 {IQN}\n"
UNREACHABLE = """\
iscsiadm: cannot make connection to 127.0.0.9: Connection refused
iscsiadm: connection login retries (reopen_max) 5 exceeded
iscsiadm: Could not perform SendTargets discovery: iSCSI PDU timed out
"""


@pytest.fixture
def runner():
    return FakeRunner()


@pytest.fixture
def iscsiadm(runner):
    return Iscsiadm(runner, timeout=20.0, login_timeout=90.0)


def test_sendtargets_output_is_parsed():
    assert parse_sendtargets(SENDTARGETS) == (DiscoveredTarget(PORTAL, 1, IQN),)


def test_sendtargets_parser_reads_ipv6_portals_and_skips_warnings():
    output = "iscsiadm: some warning\n[fe80::1]:3260,1031 iqn.2001-04.com.example:t1\n\n"
    assert parse_sendtargets(output) == (
        DiscoveredTarget(Portal("fe80::1", 3260), 1031, "iqn.2001-04.com.example:t1"),
    )


def test_discovery_creates_the_record_and_discovers_through_one_portal(iscsiadm, runner):
    runner.reply((*DISCOVERYDB, "--discover"), stdout=SENDTARGETS)
    assert iscsiadm.discover(PORTAL) == (DiscoveredTarget(PORTAL, 1, IQN),)
    assert runner.argvs == [
        (*DISCOVERYDB, "-o", "new"),
        (*DISCOVERYDB, "-o", "update", "-n", "discovery.sendtargets.auth.authmethod", "-v", "None"),
        (*DISCOVERYDB, "--discover"),
    ]
    assert all(call.timeout == 20.0 for call in runner.calls)


def test_discovery_with_no_targets_is_empty_not_an_error(iscsiadm, runner):
    runner.reply((*DISCOVERYDB, "--discover"), exit_code=21, stderr="iscsiadm: No portals found\n")
    assert iscsiadm.discover(PORTAL) == ()


def test_unreachable_portal_is_a_timeout_naming_the_portal(iscsiadm, runner):
    runner.reply((*DISCOVERYDB, "--discover"), exit_code=11, stderr=UNREACHABLE)
    with pytest.raises(
        IscsiTimeout,
        match=r"discovery via 127.0.0.1:3260: the portal did not answer .exit 11.: .*PDU timed out",
    ):
        iscsiadm.discover(PORTAL)


def test_node_settings_make_start_and_scan_manual(iscsiadm, runner):
    iscsiadm.configure_node(IQN, PORTAL, NodeSettings(login_timeout=10, replacement_timeout=30))
    updates = [call.argv[len(NODE) + 2 :] for call in runner.calls[1:]]
    assert runner.argvs[0] == (*NODE, "-o", "new")
    assert updates == [
        ("-n", "node.startup", "-v", "manual"),
        ("-n", "node.session.scan", "-v", "manual"),
        ("-n", "node.conn[0].timeo.login_timeout", "-v", "10"),
        ("-n", "node.session.timeo.replacement_timeout", "-v", "30"),
        ("-n", "node.session.initial_login_retry_max", "-v", "1"),
        ("-n", "node.session.auth.authmethod", "-v", "None"),
    ]


def test_mutual_chap_sets_both_directions_and_hands_secrets_for_masking(iscsiadm, runner):
    chap = Chap("alice", "s3cret-out", username_in="target", password_in="s3cret-in")
    iscsiadm.configure_node(IQN, PORTAL, NodeSettings(chap=chap))
    auth = {call.argv[-3]: call.argv[-1] for call in runner.calls if "node.session.auth" in call.argv[-3]}
    assert auth == {
        "node.session.auth.authmethod": "CHAP",
        "node.session.auth.username": "alice",
        "node.session.auth.password": "s3cret-out",
        "node.session.auth.username_in": "target",
        "node.session.auth.password_in": "s3cret-in",
    }
    assert all(call.secrets == ("s3cret-out", "s3cret-in") for call in runner.calls if "-v" in call.argv)


def test_one_way_chap_leaves_the_incoming_pair_out(iscsiadm, runner):
    iscsiadm.configure_node(IQN, PORTAL, NodeSettings(chap=Chap("alice", "pw")))
    names = [call.argv[-3] for call in runner.calls[1:]]
    assert "node.session.auth.password" in names
    assert "node.session.auth.username_in" not in names and "node.session.auth.password_in" not in names


def test_chap_secrets_never_appear_in_repr():
    assert "pw-out" not in repr(Chap("alice", "pw-out", "t", "pw-in")) and "pw-in" not in repr(
        Chap("a", "x", "t", "pw-in")
    )


def test_a_failed_update_does_not_leak_the_secret(iscsiadm, runner):
    runner.reply(
        (*NODE, "-o", "update", "-n", "node.session.auth.password"),
        exit_code=6,
        stderr="iscsiadm: bad record\n",
    )
    with pytest.raises(IscsiadmError) as caught:
        iscsiadm.configure_node(IQN, PORTAL, NodeSettings(chap=Chap("alice", "hunter2")))
    assert "hunter2" not in str(caught.value)
    assert "hunter2" not in " ".join(caught.value.details["argv"])
    assert caught.value.details["exit_code"] == 6


def test_login_runs_with_the_login_timeout(iscsiadm, runner):
    assert iscsiadm.login(IQN, PORTAL) is True
    assert runner.calls == [runner.calls[0]] and runner.calls[0].argv == (*NODE, "--login")
    assert runner.calls[0].timeout == 90.0


def test_a_second_login_is_success_not_an_error(iscsiadm, runner):
    runner.reply(
        (*NODE, "--login"),
        exit_code=15,
        stderr="iscsiadm: default: 1 session requested, but 1 already present.\n",
    )
    assert iscsiadm.login(IQN, PORTAL) is False


@pytest.mark.parametrize(
    ("exit_code", "error", "code"),
    [
        (24, IscsiAuthFailed, "iscsi_auth_failed"),
        (19, IscsiLoginFailed, "iscsi_login_failed"),
        (8, IscsiTimeout, "iscsi_timeout"),
        (12, IscsiTransportMissing, "iscsi_transport_missing"),
        (20, IscsidUnreachable, "iscsid_unreachable"),
        (21, IscsiNoRecords, "iscsi_no_records"),
        (5, IscsiadmError, "iscsiadm_failed"),
    ],
)
def test_login_failures_map_to_typed_errors(iscsiadm, runner, exit_code, error, code):
    runner.reply((*NODE, "--login"), exit_code=exit_code, stderr="iscsiadm: Could not log into all portals\n")
    with pytest.raises(error) as caught:
        iscsiadm.login(IQN, PORTAL)
    assert type(caught.value) is error
    assert caught.value.code == code
    assert f"exit {exit_code}" in str(caught.value) and IQN in str(caught.value)


def test_session_exists_is_a_fault_where_it_does_not_mean_done(iscsiadm, runner):
    runner.reply((*NODE, "-o", "delete"), exit_code=15, stderr="iscsiadm: session exists\n")
    with pytest.raises(IscsiSessionExists):
        iscsiadm.delete_node(IQN, PORTAL)


def test_a_hung_iscsiadm_is_a_timeout(iscsiadm, runner):
    runner.hang_on = (*NODE, "--login")
    with pytest.raises(IscsiTimeout, match="no answer within 90s"):
        iscsiadm.login(IQN, PORTAL)


def test_logout_without_a_session_is_nothing_to_do(iscsiadm, runner):
    runner.reply((*NODE, "--logout"), exit_code=21, stderr="iscsiadm: No matching sessions found\n")
    assert iscsiadm.logout(IQN, PORTAL) is False
    assert runner.argvs == [(*NODE, "--logout")]


def test_logout_of_a_session(iscsiadm, runner):
    assert iscsiadm.logout(IQN, PORTAL) is True


def test_deleting_a_missing_node_record_is_nothing_to_do(iscsiadm, runner):
    runner.reply((*NODE, "-o", "delete"), exit_code=21, stderr="iscsiadm: No records found\n")
    assert iscsiadm.delete_node(IQN, PORTAL) is False
    runner.replies.clear()
    assert iscsiadm.delete_node(IQN, PORTAL) is True


def test_the_program_path_is_configurable(runner):
    Iscsiadm(runner, program="/usr/local/sbin/iscsiadm").logout(IQN, PORTAL)
    assert runner.argvs[0][0] == "/usr/local/sbin/iscsiadm"


def test_discovery_chap_is_set_before_discovering(iscsiadm, runner):
    iscsiadm.discover(PORTAL, chap=Chap("disc", "discpw"))
    names = [call.argv[-3] for call in runner.calls if "-n" in call.argv]
    assert names == [
        "discovery.sendtargets.auth.authmethod",
        "discovery.sendtargets.auth.username",
        "discovery.sendtargets.auth.password",
    ]
    assert runner.argvs[-1] == (*DISCOVERYDB, "--discover")
