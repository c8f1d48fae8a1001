"""open-iscsi's record files, written by the agent on a synthetic tree: the secret lines land where
iscsiadm would write them, atomically, 0600, under iscsiadm's database lock; nothing else changes."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from iscsi_agent.host.errors import IscsiRecordError
from iscsi_agent.host.iscsi_db import IscsiDatabase, check_value, record_with
from iscsi_agent.host.paths import HostPaths
from iscsi_agent.portal import Portal
from tests.fakes import FakeClock

IQN = "iqn.1992-08.com.netapp:sn.4b1d6e0f2a9c11efb3c1005056a7d2e4:vs.3"
PORTAL = Portal("127.0.0.1", 3260)
CAPTURED = Path(__file__).parent / "captured"
PASSWORD = "node.session.auth.password"
PASSWORD_IN = "node.session.auth.password_in"


def as_file(shown: str) -> str:
    """A record as iscsiadm writes it to disk: what ``-o show`` prints, without the <empty> lines."""
    return "".join(
        line for line in shown.splitlines(keepends=True) if not line.rstrip().endswith("= <empty>")
    )


# iscsiadm -o new, then the agent's update with one-way CHAP (alice): no secret yet
RECORD = as_file((CAPTURED / "node-record-configured.txt").read_text()).replace(
    "node.session.auth.authmethod = None\n",
    "node.session.auth.authmethod = CHAP\nnode.session.auth.username = alice\n",
)
DISCOVERY = as_file((CAPTURED / "discoverydb-record-defaults.txt").read_text())


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def db(tmp_path: Path, clock: FakeClock) -> IscsiDatabase:
    return IscsiDatabase(HostPaths(tmp_path), clock)


def old_style_record(root: Path, text: str = RECORD) -> Path:
    """The record ``iscsiadm -m node -T IQN -p PORTAL -o new`` makes: a file named after the portal."""
    path = root / "etc/iscsi/nodes" / IQN / "127.0.0.1,3260"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o644)
    return path


def values_in(path: Path) -> dict[str, str]:
    lines = path.read_text().splitlines()
    return {name: value for name, _, value in (line.partition(" = ") for line in lines[1:-1])}


def test_the_secret_is_written_after_the_username_and_nothing_else_changes(db, tmp_path):
    path = old_style_record(tmp_path)
    assert db.set_node_values(IQN, PORTAL, ((PASSWORD, "s3cret out=1"),)) is True
    text = path.read_text()
    assert text == RECORD.replace(
        "node.session.auth.username = alice\n",
        "node.session.auth.username = alice\nnode.session.auth.password = s3cret out=1\n",
    )


def test_the_record_is_replaced_by_a_new_root_only_file(db, tmp_path):
    path = old_style_record(tmp_path)
    before = path.stat().st_ino
    db.set_node_values(IQN, PORTAL, ((PASSWORD, "s3cret"),))
    assert path.stat().st_ino != before  # renamed over the record, never written in place
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(entry.name for entry in path.parent.iterdir()) == ["127.0.0.1,3260"]  # no file left over


def test_a_secret_already_held_is_not_written_again(db, tmp_path):
    path = old_style_record(tmp_path)
    db.set_node_values(IQN, PORTAL, ((PASSWORD, "s3cret"),))
    inode = path.stat().st_ino
    assert db.set_node_values(IQN, PORTAL, ((PASSWORD, "s3cret"),)) is False
    assert path.stat().st_ino == inode


def test_a_changed_secret_replaces_its_line_in_place(db, tmp_path):
    path = old_style_record(tmp_path)
    db.set_node_values(IQN, PORTAL, ((PASSWORD, "old-secret"),))
    assert db.set_node_values(IQN, PORTAL, ((PASSWORD, "new-secret"),)) is True
    assert values_in(path)[PASSWORD] == "new-secret"
    assert path.read_text().count(PASSWORD) == 1


def test_every_tpgt_and_interface_record_of_the_portal_gets_the_secret_and_others_do_not(db, tmp_path):
    nodes = tmp_path / "etc/iscsi/nodes" / IQN
    files = [nodes / "127.0.0.1,3260,1/default", nodes / "127.0.0.1,3260,2/iface0"]
    other = nodes / "127.0.0.2,3260,1/default"
    for path in (*files, other):
        path.parent.mkdir(parents=True)
        path.write_text(RECORD)
    assert db.node_files(IQN, PORTAL) == tuple(files)
    db.set_node_values(IQN, PORTAL, ((PASSWORD, "s3cret"), ("node.session.auth.password_in", "back")))
    assert [values_in(path)[PASSWORD] for path in files] == ["s3cret", "s3cret"]
    assert PASSWORD not in values_in(other)


def test_the_incoming_secret_goes_after_its_username_or_before_the_end(db, tmp_path):
    path = old_style_record(
        tmp_path, RECORD.replace("alice\n", "alice\nnode.session.auth.username_in = tgt\n")
    )
    db.set_node_values(IQN, PORTAL, ((PASSWORD, "out"), (PASSWORD_IN, "in")))
    lines = path.read_text().splitlines()
    assert lines[lines.index("node.session.auth.username_in = tgt") + 1] == f"{PASSWORD_IN} = in"
    assert record_with("# BEGIN RECORD 2.1.8\n# END RECORD\n", ((PASSWORD, "x"),)) == (
        f"# BEGIN RECORD 2.1.8\n{PASSWORD} = x\n# END RECORD\n"
    )


def test_the_discovery_record_gets_its_secret(db, tmp_path):
    path = tmp_path / "etc/iscsi/send_targets/127.0.0.1,3260/st_config"
    path.parent.mkdir(parents=True)
    path.write_text(DISCOVERY)
    assert db.set_discovery_values(PORTAL, (("discovery.sendtargets.auth.password", "discpw"),)) is True
    assert values_in(path)["discovery.sendtargets.auth.password"] == "discpw"


def test_a_missing_record_is_an_error_naming_the_database_and_never_a_new_file(db, tmp_path):
    with pytest.raises(IscsiRecordError, match="no record file under /etc/iscsi") as caught:
        db.set_node_values(IQN, PORTAL, ((PASSWORD, "s3cret"),))
    assert caught.value.code == "iscsi_record_failed" and "s3cret" not in str(caught.value)
    assert not (tmp_path / "etc/iscsi/nodes").exists()


def test_a_file_that_is_not_a_record_is_left_alone(db, tmp_path):
    path = old_style_record(tmp_path, "node.session.auth.username = alice\n")
    with pytest.raises(IscsiRecordError, match="not an open-iscsi record"):
        db.set_node_values(IQN, PORTAL, ((PASSWORD, "s3cret"),))
    assert path.read_text() == "node.session.auth.username = alice\n"


def test_a_record_that_is_a_symlink_is_not_followed(db, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_text(RECORD)
    link = tmp_path / "etc/iscsi/nodes" / IQN / "127.0.0.1,3260"
    link.parent.mkdir(parents=True)
    link.symlink_to(elsewhere)
    with pytest.raises(IscsiRecordError, match="cannot read"):
        db.set_node_values(IQN, PORTAL, ((PASSWORD, "s3cret"),))
    assert elsewhere.read_text() == RECORD


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("two\nnode.startup = automatic", "control character"),
        ("tab\there", "control character"),
        (" padded", "space"),
        ("x" * 256, "longer than 255"),
        ("", "empty"),
    ],
)
def test_a_value_a_record_line_cannot_hold_is_refused_without_quoting_it(db, tmp_path, value, problem):
    path = old_style_record(tmp_path)
    with pytest.raises(IscsiRecordError, match=problem) as caught:
        db.set_node_values(IQN, PORTAL, ((PASSWORD, value),))
    assert value.strip() == "" or value not in str(caught.value)
    assert path.read_text() == RECORD
    check_value(PASSWORD, "x" * 255)  # the longest that fits


@pytest.mark.parametrize(("iqn", "address"), [("../../../etc", "127.0.0.1"), (IQN, "../x"), ("..", "1")])
def test_names_that_would_lead_out_of_the_database_are_refused(db, iqn, address):
    with pytest.raises(IscsiRecordError, match="cannot name a record folder"):
        db.set_node_values(iqn, Portal(address, 3260), ((PASSWORD, "s3cret"),))


def test_the_write_holds_iscsiadms_database_lock_and_lets_it_go(db, tmp_path, monkeypatch):
    path = old_style_record(tmp_path)
    held = tmp_path / "run/lock/iscsi/lock.write"
    seen = []
    real_replace = os.replace

    def replacing(source, target):
        seen.append(held.exists() and os.path.samefile(held, held.parent / "lock"))
        real_replace(source, target)

    monkeypatch.setattr(os, "replace", replacing)
    db.set_node_values(IQN, PORTAL, ((PASSWORD, "s3cret"),))
    monkeypatch.undo()
    assert seen == [True] and not held.exists() and values_in(path)[PASSWORD] == "s3cret"


def test_a_lock_held_by_iscsiadm_is_waited_for(tmp_path):
    path = old_style_record(tmp_path)
    folder = tmp_path / "run/lock/iscsi"
    folder.mkdir(parents=True)
    (folder / "lock").touch()
    os.link(folder / "lock", folder / "lock.write")  # iscsiadm holds it ...
    clock = FakeClock(on_sleep=lambda: (folder / "lock.write").unlink(missing_ok=True))  # ... and lets go
    IscsiDatabase(HostPaths(tmp_path), clock).set_node_values(IQN, PORTAL, ((PASSWORD, "s3cret"),))
    assert clock.sleeps and values_in(path)[PASSWORD] == "s3cret"


def test_a_lock_never_let_go_is_an_error_naming_it_and_the_record_stays(tmp_path, clock):
    path = old_style_record(tmp_path)
    folder = tmp_path / "run/lock/iscsi"
    folder.mkdir(parents=True)
    (folder / "lock.write").touch()
    db = IscsiDatabase(HostPaths(tmp_path), clock, lock_wait=0.5)
    with pytest.raises(IscsiRecordError, match=r"/run/lock/iscsi/lock.write is still held after 0.5s"):
        db.set_node_values(IQN, PORTAL, ((PASSWORD, "s3cret"),))
    assert path.read_text() == RECORD and (folder / "lock.write").exists()  # not ours to remove


def test_the_record_of_one_iface_gets_the_secret_and_the_default_ifaces_does_not(db, tmp_path):
    """A discovery may make the default iface's record beside the bound iface's (open-iscsi's quirk):
    only the record the agent logs in with gets its secret."""
    nodes = tmp_path / "etc/iscsi/nodes" / IQN
    bound, default = nodes / "127.0.0.1,3260,1/ia-st0", nodes / "127.0.0.1,3260,1/default"
    for path in (bound, default):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(RECORD)
    assert db.node_files(IQN, PORTAL, iface="ia-st0") == (bound,)
    db.set_node_values(IQN, PORTAL, ((PASSWORD, "s3cret"),), iface="ia-st0")
    assert values_in(bound)[PASSWORD] == "s3cret" and PASSWORD not in values_in(default)


def test_an_old_style_record_belongs_to_the_iface_it_names(db, tmp_path):
    """``-o new -I NAME`` without a tpgt writes the portal's file; only its iface line tells whose it is."""
    path = old_style_record(
        tmp_path, RECORD.replace("iface.iscsi_ifacename = default", "iface.iscsi_ifacename = ia-st0")
    )
    assert db.node_files(IQN, PORTAL, iface="ia-st0") == (path,)
    assert db.node_files(IQN, PORTAL, iface="ia-st1") == ()


def test_the_secret_of_an_iface_without_a_record_goes_nowhere_else(db, tmp_path):
    default = tmp_path / "etc/iscsi/nodes" / IQN / "127.0.0.1,3260,1/default"
    default.parent.mkdir(parents=True)
    default.write_text(RECORD)
    with pytest.raises(IscsiRecordError, match="no record file"):
        db.set_node_values(IQN, PORTAL, ((PASSWORD, "s3cret"),), iface="ia-st0")
    assert PASSWORD not in values_in(default)
