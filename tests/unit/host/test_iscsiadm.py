"""iscsiadm: argv built right, node records written only when they differ and in one call, CHAP
secrets in the record files and on no command line, exit codes mapped to typed errors, one lock per portal."""

import re
import threading
from pathlib import Path

import pytest

from iscsi_agent.host.errors import (
    HostError,
    IscsiadmError,
    IscsiAuthFailed,
    IscsiConnectionFailed,
    IscsidUnreachable,
    IscsiLoginFailed,
    IscsiNoRecords,
    IscsiRecordError,
    IscsiSessionExists,
    IscsiTimeout,
    IscsiTransportMissing,
)
from iscsi_agent.host.iscsi_db import IscsiDatabase
from iscsi_agent.host.iscsiadm import (
    HIDDEN,
    Chap,
    DiscoveredTarget,
    Iscsiadm,
    NodeSettings,
    PortalLocks,
    parse_records,
    parse_sendtargets,
    pending_update,
)
from iscsi_agent.host.paths import HostPaths
from iscsi_agent.portal import Portal
from tests.fakes import FakeClock, FakeRunner

IQN = "iqn.1992-08.com.netapp:sn.4b1d6e0f2a9c11efb3c1005056a7d2e4:vs.3"
PORTAL = Portal("127.0.0.1", 3260)
NODE = ("iscsiadm", "-m", "node", "-T", IQN, "-p", "127.0.0.1:3260")
DISCOVERYDB = ("iscsiadm", "-m", "discoverydb", "-t", "sendtargets", "-p", "127.0.0.1:3260")
DISCOVERY = ("iscsiadm", "-m", "discovery", "-t", "sendtargets", "-p", "127.0.0.1:3260")
SHOW_NODE = (*NODE, "-o", "show")
NEW_NODE = (*NODE, "-o", "new")
UPDATE_NODE = (*NODE, "-o", "update")
SHOW_DISCOVERYDB = (*DISCOVERYDB, "-o", "show")
# Captured from iscsiadm 2.1.8 in the test VM.
SENDTARGETS = f"127.0.0.1:3260,1 {IQN}\n"
CAPTURED = Path(__file__).parent / "captured"
# `-o new` on Debian 12: iscsid.conf's defaults (automatic LUN scan, 8 login retries, no CHAP).
RECORD_DEFAULTS = (CAPTURED / "node-record-defaults.txt").read_text()
# The same record after the agent's update with NodeSettings().
RECORD_CONFIGURED = (CAPTURED / "node-record-configured.txt").read_text()
# After an update with mutual CHAP (alice / tgt): the secrets are shown as ********.
RECORD_MUTUAL_CHAP = (CAPTURED / "node-record-mutual-chap.txt").read_text()
# What a sendtargets discovery through the portal left of the configured record: defaults again.
RECORD_AFTER_DISCOVERY = (CAPTURED / "node-record-after-discovery.txt").read_text()
DISCOVERYDB_DEFAULTS = (CAPTURED / "discoverydb-record-defaults.txt").read_text()
AGENT_PAIRS = (
    ("node.startup", "manual"),
    ("node.session.scan", "manual"),
    ("node.conn[0].timeo.login_timeout", "15"),
    ("node.session.timeo.replacement_timeout", "120"),
    ("node.session.initial_login_retry_max", "1"),
    ("node.session.auth.authmethod", "None"),
)


def update_argv(base, pairs):
    """One ``-o update`` call carrying every pair: ``-n NAME -v VALUE`` repeated."""
    return (*base, "-o", "update", *(arg for name, value in pairs for arg in ("-n", name, "-v", value)))


UNREACHABLE = """\
iscsiadm: cannot make connection to 127.0.0.9: Connection refused
iscsiadm: connection login retries (reopen_max) 5 exceeded
iscsiadm: Could not perform SendTargets discovery: iSCSI PDU timed out
"""


def as_file(shown: str) -> str:
    """A record as iscsiadm keeps it on disk: what ``-o show`` prints without the <empty> lines."""
    return "".join(
        line for line in shown.splitlines(keepends=True) if not line.rstrip().endswith("= <empty>")
    )


@pytest.fixture
def runner():
    return FakeRunner()


@pytest.fixture
def db_root(tmp_path) -> Path:
    """A host whose open-iscsi database holds the node record of IQN at PORTAL and its discovery record,
    as iscsiadm made them (the fake runner makes no files)."""
    root = tmp_path / "host"
    node = root / "etc/iscsi/nodes" / IQN / "127.0.0.1,3260"
    discovery = root / "etc/iscsi/send_targets/127.0.0.1,3260/st_config"
    for path, text in ((node, RECORD_DEFAULTS), (discovery, DISCOVERYDB_DEFAULTS)):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(as_file(text))
    return root


@pytest.fixture
def database(db_root) -> IscsiDatabase:
    return IscsiDatabase(HostPaths(db_root), FakeClock())


@pytest.fixture
def iscsiadm(runner, database):
    return Iscsiadm(runner, database, timeout=20.0, login_timeout=90.0)


def stored(db_root: Path, relative: str) -> dict[str, str]:
    """The name = value lines of one record file, as iscsiadm reads them back."""
    lines = (db_root / "etc/iscsi" / relative).read_text().splitlines()
    return {name: value for name, _, value in (line.partition(" = ") for line in lines[1:-1])}


NODE_FILE = f"nodes/{IQN}/127.0.0.1,3260"
DISCOVERY_FILE = "send_targets/127.0.0.1,3260/st_config"


def test_sendtargets_output_is_parsed():
    assert parse_sendtargets(SENDTARGETS) == (DiscoveredTarget(PORTAL, 1, IQN),)


def test_sendtargets_parser_reads_ipv6_portals_and_skips_warnings():
    output = "iscsiadm: some warning\n[fe80::1]:3260,1031 iqn.2001-04.com.example:t1\n\n"
    assert parse_sendtargets(output) == (
        DiscoveredTarget(Portal("fe80::1", 3260), 1031, "iqn.2001-04.com.example:t1"),
    )


def test_discovery_without_chap_is_one_call_that_only_adds_records_for_new_targets(iscsiadm, runner):
    # a plain discovery would rewrite every node record at the portal with iscsid.conf's defaults
    runner.reply((*DISCOVERY, "-o", "new"), stdout=SENDTARGETS)
    assert iscsiadm.discover(PORTAL) == (DiscoveredTarget(PORTAL, 1, IQN),)
    assert runner.argvs == [(*DISCOVERY, "-o", "new")]
    assert all(call.timeout == 20.0 for call in runner.calls)


def test_discovery_with_no_targets_is_empty_not_an_error(iscsiadm, runner):
    runner.reply(DISCOVERY, exit_code=21, stderr="iscsiadm: No portals found\n")
    assert iscsiadm.discover(PORTAL) == ()


def test_unreachable_portal_is_a_timeout_naming_the_portal(iscsiadm, runner):
    runner.reply(DISCOVERY, exit_code=11, stderr=UNREACHABLE)
    with pytest.raises(
        IscsiTimeout,
        match=r"discovery via 127.0.0.1:3260: the portal did not answer .exit 11.: .*PDU timed out",
    ):
        iscsiadm.discover(PORTAL)


def test_a_node_record_is_parsed_from_captured_output():
    (record,) = parse_records(RECORD_DEFAULTS)
    assert record["node.name"] == IQN
    assert record["node.session.scan"] == "auto"
    assert record["node.conn[0].timeo.login_timeout"] == "15"
    assert record["node.session.auth.username"] == ""  # "<empty>"
    assert record["node.conn[0].address"] == "127.0.0.1"


def test_hidden_secrets_are_kept_as_the_mask_and_unset_ones_are_empty():
    (record,) = parse_records(RECORD_MUTUAL_CHAP)
    assert record["node.session.auth.authmethod"] == "CHAP"
    assert record["node.session.auth.username"] == "alice"
    assert record["node.session.auth.password"] == HIDDEN == "********"
    assert record["node.session.auth.password_in"] == HIDDEN
    (defaults,) = parse_records(RECORD_DEFAULTS)
    assert defaults["node.session.auth.password"] == ""


def test_every_matching_record_is_parsed():
    # one record per tpgt or iface that matches -T/-p, each between BEGIN and END lines
    records = parse_records("iscsiadm: a warning\n" + RECORD_CONFIGURED + RECORD_AFTER_DISCOVERY)
    assert [record["node.tpgt"] for record in records] == ["-1", "1"]
    assert parse_records("") == ()


def test_an_identical_record_needs_no_update():
    assert pending_update(parse_records(RECORD_CONFIGURED), NodeSettings().values()) == ()


def test_a_record_on_defaults_needs_every_pair_in_one_update():
    assert pending_update(parse_records(RECORD_DEFAULTS), NodeSettings().values()) == AGENT_PAIRS


def test_one_differing_record_of_several_rewrites_them_all():
    records = parse_records(RECORD_CONFIGURED + RECORD_AFTER_DISCOVERY)
    assert pending_update(records, NodeSettings().values()) == AGENT_PAIRS


def test_with_chap_the_update_pairs_carry_no_secret_and_match_a_record_holding_them():
    # The secrets go into the record file, not through iscsiadm, so the pairs compare as any others.
    chap = Chap("alice", "s3cret-out", username_in="tgt", password_in="s3cret-in")
    settings = NodeSettings(chap=chap)
    assert not any("s3cret" in value for _, value in settings.values())
    assert settings.secrets() == (
        ("node.session.auth.password", "s3cret-out"),
        ("node.session.auth.password_in", "s3cret-in"),
    )
    assert pending_update(parse_records(RECORD_MUTUAL_CHAP), settings.values()) == ()


def test_an_existing_identical_record_is_read_once_and_not_written(iscsiadm, runner):
    runner.reply(SHOW_NODE, stdout=RECORD_CONFIGURED)
    assert iscsiadm.configure_node(IQN, PORTAL, NodeSettings()) is False
    assert runner.argvs == [SHOW_NODE]


def test_a_record_on_defaults_is_rewritten_in_exactly_one_update(iscsiadm, runner):
    runner.reply(SHOW_NODE, stdout=RECORD_DEFAULTS)
    assert iscsiadm.configure_node(IQN, PORTAL, NodeSettings()) is True
    assert runner.argvs == [SHOW_NODE, update_argv(NODE, AGENT_PAIRS)]


def test_a_record_that_discovery_reset_is_rewritten_in_one_update(iscsiadm, runner):
    runner.reply(SHOW_NODE, stdout=RECORD_AFTER_DISCOVERY)
    iscsiadm.configure_node(IQN, PORTAL, NodeSettings())
    assert runner.argvs == [SHOW_NODE, update_argv(NODE, AGENT_PAIRS)]


def test_a_missing_record_is_created_then_configured_in_one_update(iscsiadm, runner):
    runner.reply(SHOW_NODE, exit_code=21, stderr="iscsiadm: No records found\n")
    assert iscsiadm.configure_node(IQN, PORTAL, NodeSettings()) is True
    assert runner.argvs == [SHOW_NODE, NEW_NODE, update_argv(NODE, AGENT_PAIRS)]


def test_node_settings_make_start_and_scan_manual(iscsiadm, runner):
    runner.reply(SHOW_NODE, stdout=RECORD_DEFAULTS)
    iscsiadm.configure_node(IQN, PORTAL, NodeSettings(login_timeout=10, replacement_timeout=30))
    assert runner.argvs[-1] == update_argv(
        NODE,
        (
            ("node.startup", "manual"),
            ("node.session.scan", "manual"),
            ("node.conn[0].timeo.login_timeout", "10"),
            ("node.session.timeo.replacement_timeout", "30"),
            ("node.session.initial_login_retry_max", "1"),
            ("node.session.auth.authmethod", "None"),
        ),
    )


def test_mutual_chap_sets_both_directions_names_through_the_update_and_secrets_in_the_file(
    iscsiadm, runner, db_root
):
    runner.reply(SHOW_NODE, stdout=RECORD_DEFAULTS)
    chap = Chap("alice", "s3cret-out", username_in="target", password_in="s3cret-in")
    assert iscsiadm.configure_node(IQN, PORTAL, NodeSettings(chap=chap)) is True
    (update,) = [call for call in runner.calls if call.argv[: len(UPDATE_NODE)] == UPDATE_NODE]
    pairs = update.argv[len(UPDATE_NODE) :]
    auth = {pairs[i + 1]: pairs[i + 3] for i in range(0, len(pairs), 4) if "auth" in pairs[i + 1]}
    assert auth == {
        "node.session.auth.authmethod": "CHAP",
        "node.session.auth.username": "alice",
        "node.session.auth.username_in": "target",
    }
    record = stored(db_root, NODE_FILE)
    assert (record["node.session.auth.password"], record["node.session.auth.password_in"]) == (
        "s3cret-out",
        "s3cret-in",
    )


def test_no_iscsiadm_command_line_carries_a_chap_secret(iscsiadm, runner):
    runner.reply(SHOW_NODE, stdout=RECORD_MUTUAL_CHAP)
    runner.reply(SHOW_DISCOVERYDB, stdout=DISCOVERYDB_DEFAULTS)
    iscsiadm.ensure_node(IQN, PORTAL, NodeSettings(chap=Chap("alice", "s3cret-out", "tgt", "s3cret-in")))
    iscsiadm.discover(PORTAL, chap=Chap("disc", "s3cret-disc"))
    assert [argv for argv in runner.argvs if "s3cret" in " ".join(argv)] == []


def test_an_identical_chap_record_whose_file_holds_the_secrets_is_read_once_and_not_written(
    iscsiadm, runner, db_root
):
    runner.reply(SHOW_NODE, stdout=RECORD_MUTUAL_CHAP)
    chap = Chap("alice", "s3cret-out", username_in="tgt", password_in="s3cret-in")
    assert iscsiadm.configure_node(IQN, PORTAL, NodeSettings(chap=chap)) is True  # the file had no secret
    runner.calls.clear()
    assert iscsiadm.configure_node(IQN, PORTAL, NodeSettings(chap=chap)) is False
    assert runner.argvs == [SHOW_NODE]
    changed = Chap("alice", "n3w-secret", username_in="tgt", password_in="s3cret-in")
    assert iscsiadm.configure_node(IQN, PORTAL, NodeSettings(chap=changed)) is True
    assert stored(db_root, NODE_FILE)["node.session.auth.password"] == "n3w-secret"


def test_one_way_chap_leaves_the_incoming_pair_out(iscsiadm, runner, db_root):
    iscsiadm.configure_node(IQN, PORTAL, NodeSettings(chap=Chap("alice", "pw")))
    names = [arg for call in runner.calls for arg in call.argv if arg.startswith("node.session.auth")]
    assert names == ["node.session.auth.authmethod", "node.session.auth.username"]
    record = stored(db_root, NODE_FILE)
    assert record["node.session.auth.password"] == "pw" and "node.session.auth.password_in" not in record


def test_a_chap_record_iscsiadm_keeps_elsewhere_is_an_error_not_a_login_without_the_secret(runner, tmp_path):
    iscsiadm = Iscsiadm(runner, IscsiDatabase(HostPaths(tmp_path / "empty"), FakeClock()))
    with pytest.raises(IscsiRecordError, match=r"node record .* no record file under /etc/iscsi"):
        iscsiadm.ensure_node(IQN, PORTAL, NodeSettings(chap=Chap("alice", "pw")))


def test_chap_secrets_never_appear_in_repr():
    assert "pw-out" not in repr(Chap("alice", "pw-out", "t", "pw-in")) and "pw-in" not in repr(
        Chap("a", "x", "t", "pw-in")
    )


def test_a_failed_update_does_not_leak_the_secret(iscsiadm, runner):
    runner.reply(UPDATE_NODE, exit_code=6, stderr="iscsiadm: bad record\n")
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
        # iscsi_err.h / iscsiadm(8): 4 ISCSI_ERR_TRANS, 5 ISCSI_ERR_LOGIN, 18 ISCSI_ERR_ISCSID_COMM_ERR
        (4, IscsiConnectionFailed, "iscsi_connection_failed"),
        (5, IscsiLoginFailed, "iscsi_login_failed"),
        (18, IscsidUnreachable, "iscsid_unreachable"),
        (6, IscsiadmError, "iscsiadm_failed"),
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
    runner.reply(DISCOVERY, exit_code=15, stderr="iscsiadm: session exists\n")
    with pytest.raises(IscsiSessionExists):
        iscsiadm.discover(PORTAL)


def test_a_node_record_a_session_still_uses_is_kept_not_a_fault(iscsiadm, runner):
    """open-iscsi refuses to delete a record a session logged in with (exit 15): another user's,
    through the same iface, to the same target."""
    deleting = (*NODE, "-I", "default", "-o", "delete")
    runner.reply(deleting, exit_code=15, stderr="iscsiadm: This command will remove the record ...\n")
    assert iscsiadm.delete_node(IQN, PORTAL, iface="default") is False
    assert runner.argvs == [deleting]


def test_a_hung_iscsiadm_is_a_timeout(iscsiadm, runner):
    runner.hang_on = (*NODE, "--login")
    with pytest.raises(IscsiTimeout, match="no answer within 90s"):
        iscsiadm.login(IQN, PORTAL)


def test_logout_without_a_session_is_nothing_to_do(iscsiadm, runner):
    logout = (*NODE, "-I", "default", "--logout")
    runner.reply(logout, exit_code=21, stderr="iscsiadm: No matching sessions found\n")
    assert iscsiadm.logout(IQN, PORTAL, iface="default") is False
    assert runner.argvs == [logout]


def test_logout_of_a_session_names_its_iface(iscsiadm, runner):
    """Without -I, iscsiadm ends every session to the target through the portal, on every iface."""
    assert iscsiadm.logout(IQN, PORTAL, iface="ia-eth1") is True
    assert runner.argvs == [(*NODE, "-I", "ia-eth1", "--logout")]


def test_deleting_a_missing_node_record_is_nothing_to_do(iscsiadm, runner):
    deleting = (*NODE, "-I", "default", "-o", "delete")
    runner.reply(deleting, exit_code=21, stderr="iscsiadm: No records found\n")
    assert iscsiadm.delete_node(IQN, PORTAL, iface="default") is False
    runner.replies.clear()
    assert iscsiadm.delete_node(IQN, PORTAL, iface="default") is True


def test_deleting_the_record_of_an_iface_that_has_none_is_nothing_to_do(iscsiadm, runner):
    deleting = (*NODE, "-I", "ia-eth1", "-o", "delete")
    runner.reply(deleting, exit_code=6, stderr="iscsiadm: Could not read iface info for ia-eth1.\n")
    assert iscsiadm.delete_node(IQN, PORTAL, iface="ia-eth1") is False


def test_the_program_path_is_configurable(runner, database):
    Iscsiadm(runner, database, program="/usr/local/sbin/iscsiadm").logout(IQN, PORTAL, iface="default")
    assert runner.argvs[0][0] == "/usr/local/sbin/iscsiadm"


def test_discovery_chap_is_set_before_discovering(iscsiadm, runner, db_root):
    runner.reply(SHOW_DISCOVERYDB, stdout=DISCOVERYDB_DEFAULTS)
    iscsiadm.discover(PORTAL, chap=Chap("disc", "discpw"))
    assert runner.argvs == [
        SHOW_DISCOVERYDB,
        update_argv(
            DISCOVERYDB,
            (
                ("discovery.sendtargets.auth.authmethod", "CHAP"),
                ("discovery.sendtargets.auth.username", "disc"),
            ),
        ),
        (*DISCOVERYDB, "--discover", "-o", "new"),
    ]
    assert stored(db_root, DISCOVERY_FILE)["discovery.sendtargets.auth.password"] == "discpw"


def test_discovery_with_mutual_chap_configured_carries_one_way_chap_only(iscsiadm, runner, db_root):
    """The target proves itself at the login of the session; a discovery that demanded it would fail on
    every target that does not authenticate discovery sessions (tgtd: the initiator refuses its None)."""
    runner.reply(SHOW_DISCOVERYDB, stdout=DISCOVERYDB_DEFAULTS)
    iscsiadm.discover(PORTAL, chap=Chap("disc", "discpw", username_in="tgt", password_in="tgtpw-of-14ch"))
    assert runner.argvs[1] == update_argv(
        DISCOVERYDB,
        (("discovery.sendtargets.auth.authmethod", "CHAP"), ("discovery.sendtargets.auth.username", "disc")),
    )
    record = stored(db_root, DISCOVERY_FILE)
    assert record["discovery.sendtargets.auth.password"] == "discpw"
    assert "discovery.sendtargets.auth.password_in" not in record


@pytest.mark.parametrize(
    ("exit_code", "meaning"),
    [
        (4, "could not connect to the portal"),
        (5, "login failed"),
        (6, "iSCSI database"),
        (7, "invalid argument"),
        (18, "lost its connection to iscsid"),
        (99, "failed"),
    ],
)
def test_every_exit_code_is_named_in_the_message(iscsiadm, runner, exit_code, meaning):
    runner.reply((*NODE, "--login"), exit_code=exit_code, stderr="iscsiadm: it went wrong\n")
    with pytest.raises(IscsiadmError, match=f"{meaning}.* .exit {exit_code}.: iscsiadm: it went wrong"):
        iscsiadm.login(IQN, PORTAL)


def test_iscsiadm_errors_are_host_errors():
    assert issubclass(IscsiadmError, HostError)
    assert issubclass(IscsiConnectionFailed, IscsiadmError)


def test_discovery_without_chap_leaves_the_discovery_records_alone(iscsiadm, runner):
    runner.reply(DISCOVERY, stdout=SENDTARGETS)
    iscsiadm.discover(PORTAL)
    assert not any("discoverydb" in argv for argv in runner.argvs)


def test_a_missing_discovery_record_is_created_and_configured_in_one_update(iscsiadm, runner, db_root):
    # iscsiadm says "Discovery record [127.0.0.1,3260] not found." with ISCSI_ERR_IDBM
    runner.reply(
        SHOW_DISCOVERYDB, exit_code=6, stderr="iscsiadm: Discovery record [127.0.0.1,3260] not found.\n"
    )
    iscsiadm.discover(PORTAL, chap=Chap("disc", "discpw"))
    assert runner.argvs[:3] == [
        SHOW_DISCOVERYDB,
        (*DISCOVERYDB, "-o", "new"),
        update_argv(
            DISCOVERYDB,
            (
                ("discovery.sendtargets.auth.authmethod", "CHAP"),
                ("discovery.sendtargets.auth.username", "disc"),
            ),
        ),
    ]
    assert stored(db_root, DISCOVERY_FILE)["discovery.sendtargets.auth.password"] == "discpw"


@pytest.fixture
def locks():
    return PortalLocks()


def held_elsewhere(locks, portal):
    """Whether another thread holds the portal's lock, asked from a thread of our own."""
    answer = []

    def probe():
        lock = locks.lock(portal)
        taken = lock.acquire(blocking=False)
        answer.append(not taken)
        if taken:
            lock.release()

    thread = threading.Thread(target=probe)
    thread.start()
    thread.join()
    return answer[0]


def test_every_iscsiadm_run_on_a_record_holds_its_portal_lock(runner, locks, database):
    seen = []

    def checking(argv, **kwargs):
        seen.append(held_elsewhere(locks, PORTAL))
        return runner(argv, **kwargs)

    iscsiadm = Iscsiadm(checking, database, locks=locks)
    runner.reply(SHOW_NODE, exit_code=21)
    iscsiadm.configure_node(IQN, PORTAL, NodeSettings())
    iscsiadm.login(IQN, PORTAL)
    iscsiadm.logout(IQN, PORTAL, iface="default")
    iscsiadm.delete_node(IQN, PORTAL, iface="default")
    iscsiadm.discover(PORTAL)
    assert len(seen) == len(runner.calls) > 5 and all(seen)


def test_a_caller_holds_the_portal_lock_across_steps_and_the_steps_take_it_again(runner, locks, database):
    iscsiadm = Iscsiadm(runner, database, locks=locks)
    with iscsiadm.portal_lock(PORTAL):
        iscsiadm.configure_node(IQN, PORTAL, NodeSettings())  # re-entrant: no deadlock
        iscsiadm.login(IQN, PORTAL)
        assert held_elsewhere(locks, PORTAL)
    assert not held_elsewhere(locks, PORTAL)


def test_each_portal_has_its_own_lock(locks):
    other = Portal("127.0.0.2", 3260)
    with locks.lock(PORTAL):
        assert held_elsewhere(locks, PORTAL)
        assert not held_elsewhere(locks, other)
    assert locks.lock(Portal.parse("127.0.0.1:3260")) is locks.lock(PORTAL)


def test_node_records_are_read_once_and_none_when_missing(iscsiadm, runner):
    runner.reply(SHOW_NODE, stdout=RECORD_DEFAULTS)
    assert iscsiadm.node_records(IQN, PORTAL)[0]["node.session.scan"] == "auto"
    runner.replies.clear()
    runner.reply(SHOW_NODE, exit_code=21, stderr="iscsiadm: No records found\n")
    assert iscsiadm.node_records(IQN, PORTAL) is None
    assert runner.argvs == [SHOW_NODE, SHOW_NODE]


def test_records_the_caller_just_read_are_not_read_again(iscsiadm, runner):
    # after a discovery added the record (with defaults), the one update is all that is needed
    assert iscsiadm.ensure_node(IQN, PORTAL, NodeSettings(), known=()) is True
    assert [argv[argv.index("-o") + 1] for argv in runner.argvs] == ["update"]


def test_a_bad_pair_fails_the_one_update_and_names_it(iscsiadm, runner):
    # iscsiadm checks every name before it writes, so the record is left as it was (seen in the VM).
    runner.reply(SHOW_NODE, stdout=RECORD_DEFAULTS)
    runner.reply(
        UPDATE_NODE,
        exit_code=7,
        stderr="iscsiadm: Cannot modify node.bogus. Invalid param name.\n"
        "iscsiadm: Could not execute operation on all records: invalid parameter\n",
    )
    with pytest.raises(IscsiadmError, match=r"update: invalid argument .exit 7.") as caught:
        iscsiadm.ensure_node(IQN, PORTAL, NodeSettings())
    assert "node.bogus" in caught.value.details["stderr"]


def test_a_record_whose_output_cannot_be_read_is_updated_but_never_reset_to_defaults(iscsiadm, runner):
    runner.reply(SHOW_NODE, stdout="node.session.scan: manual (a format this parser does not know)\n")
    assert iscsiadm.ensure_node(IQN, PORTAL, NodeSettings()) is True
    assert runner.argvs == [SHOW_NODE, update_argv(NODE, AGENT_PAIRS)]


def test_the_error_tree_in_host_errors_is_drawn_as_it_is():
    from iscsi_agent.errors import AgentError
    from iscsi_agent.host import errors

    drawn = {}
    parents = {}
    for line in errors.__doc__.splitlines():
        match = re.match(r"^(?P<indent>[ │├└─]*)(?P<name>[A-Z]\w+)(?:\s+(?P<code>[a-z_]+))?", line)
        if not match or (not hasattr(errors, match["name"]) and match["name"] != "AgentError"):
            continue
        depth = len(match["indent"]) // 4
        parents[depth] = match["name"]
        if depth:
            drawn[match["name"]] = (parents[depth - 1], match["code"])
    actual = {
        name: (cls.__bases__[0].__name__, cls.code)
        for name, cls in vars(errors).items()
        if isinstance(cls, type) and issubclass(cls, AgentError) and cls is not AgentError
    }
    assert drawn == actual
