"""Mutual CHAP and secret rotation over the simulated array (both APIs) and a host whose target
checks CHAP at every login (tests/initiator_world.py): the array entry and the node records carry
both users and secrets, no command line carries a secret, and a rewritten secret file reaches the
array entry and the node records before the next login that needs it, while the sessions logged in
keep running. The VM tier proves the same against tgtd on a real kernel."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest

from iscsi_agent.array.errors import ArrayApiError
from ontap_sim.model import Chap
from tests.unit.service.conftest import INITIATOR, Host, config_for

LUN1, LUN2 = "/vol/vol1/lun1", "/vol/vol1/lun2"
OLD, OLD_TARGET = "s3cret-of-16chars", "target-secret-0ld"
NEW, NEW_TARGET = "n3w-secret-16char", "target-secret-n3w"


def secret_file(path: Path, secret: str) -> Path:
    path.write_text(secret + "\n")
    path.chmod(0o600)
    return path


@pytest.fixture
def mutual(host: Host, tmp_path: Path) -> Host:
    """The host configured for mutual CHAP with the OLD secrets in chap.secret and chap-target.secret."""
    host.with_config(
        config_for(
            host.sim,
            host.tree.root,
            tmp_path / "state",
            chap_secret_file=secret_file(tmp_path / "chap.secret", OLD),
            chap_target_secret_file=secret_file(tmp_path / "chap-target.secret", OLD_TARGET),
        )
    )
    return host


def rotate(tmp_path: Path) -> None:
    """What an operator does: rewrite both files in place (the array entry is the agent's to change)."""
    secret_file(tmp_path / "chap.secret", NEW)
    secret_file(tmp_path / "chap-target.secret", NEW_TARGET)


def array_entry(host: Host) -> Chap:
    with host.sim.state.lock:
        return host.sim.state.chap[("svm1", INITIATOR)]


def secrets_in_records(host: Host) -> dict[str, tuple[str | None, str | None]]:
    """Each node record file's (password, password_in), by its path under open-iscsi's folder."""
    found = {}
    for name, text in host.initiator.record_files().items():
        if name.startswith("nodes/"):
            lines = dict(line.split(" = ", 1) for line in text.splitlines() if " = " in line)
            found[name] = (
                lines.get("node.session.auth.password"),
                lines.get("node.session.auth.password_in"),
            )
    return found


def logins(host: Host) -> list[tuple[str, ...]]:
    return [call for call in host.initiator.iscsiadm_calls if "--login" in call]


def test_mutual_chap_sets_both_users_and_secrets_on_the_array_and_in_the_node_record_never_on_a_command_line(
    mutual: Host,
):
    mutual.service.attach(LUN1)
    entry = array_entry(mutual)
    assert (entry.auth_type, entry.inbound_user, entry.inbound_password) == ("chap", "compute-7", OLD)
    assert (entry.outbound_user, entry.outbound_password) == ("svm1-target", OLD_TARGET)
    record = next(iter(mutual.initiator.records.values()))
    assert record["node.session.auth.username_in"] == "svm1-target"
    assert set(secrets_in_records(mutual).values()) == {(OLD, OLD_TARGET)}
    assert not any(
        secret in " ".join(call) for call in mutual.initiator.calls for secret in (OLD, OLD_TARGET)
    )
    assert len(mutual.initiator.sessions) == 1  # the target admitted the login: both sides proved


def test_a_rotated_secret_reaches_the_array_before_the_next_login_and_the_session_keeps_running(
    mutual: Host, tmp_path: Path
):
    mutual.service.attach(LUN1)
    (session_key, session), *_ = mutual.initiator.sessions.items()
    rotate(tmp_path)
    mutual.service.attach(LUN2)  # the same session: no login, and none is needed
    entry = array_entry(mutual)
    assert (entry.inbound_password, entry.outbound_password) == (NEW, NEW_TARGET)
    assert mutual.initiator.sessions == {session_key: session}
    assert len(logins(mutual)) == 1 and not any("--logout" in c for c in mutual.initiator.iscsiadm_calls)
    # the record is ready for whoever logs in next (the reconciler, an operator, the next start)
    assert set(secrets_in_records(mutual).values()) == {(NEW, NEW_TARGET)}


def test_after_a_rotation_a_session_lost_in_an_outage_is_logged_in_again_with_the_new_secrets(
    mutual: Host, tmp_path: Path
):
    mutual.service.attach(LUN1)
    rotate(tmp_path)
    (key, session), *_ = mutual.initiator.sessions.items()
    mutual.tree.remove_session(session.sid, session.host)  # iscsid gave the session up
    del mutual.initiator.sessions[key]
    actions = mutual.services.reconciler.run(dry_run=False)
    assert [(a.action, a.done) for a in actions if a.action == "relogin"] == [("relogin", True)]
    assert len(mutual.initiator.sessions) == 1
    # it logged in with the new secrets, which the target checked against the new array entry
    assert (array_entry(mutual).inbound_password, array_entry(mutual).outbound_password) == (NEW, NEW_TARGET)
    assert set(secrets_in_records(mutual).values()) == {(NEW, NEW_TARGET)}


def test_a_rotation_noticed_by_a_reconciler_pass_updates_the_array_and_the_records(
    mutual: Host, tmp_path: Path
):
    mutual.service.attach(LUN1)
    rotate(tmp_path)
    mutual.services.reconciler.run(dry_run=False)
    assert (array_entry(mutual).inbound_password, array_entry(mutual).outbound_password) == (NEW, NEW_TARGET)
    assert set(secrets_in_records(mutual).values()) == {(NEW, NEW_TARGET)}


def test_a_dry_run_pass_after_a_rotation_changes_neither_the_array_nor_the_records(
    mutual: Host, tmp_path: Path
):
    mutual.service.attach(LUN1)
    rotate(tmp_path)
    mutual.services.reconciler.run(dry_run=True)
    assert array_entry(mutual).inbound_password == OLD
    assert set(secrets_in_records(mutual).values()) == {(OLD, OLD_TARGET)}


def test_unchanged_secret_files_cost_no_array_request_and_no_record_write(mutual: Host, tmp_path: Path):
    mutual.service.attach(LUN1)
    before = chap_requests(mutual)
    written = record_times(mutual)
    mutual.service.attach(LUN2)
    mutual.services.reconciler.run(dry_run=False)
    assert chap_requests(mutual) == before
    assert record_times(mutual) == written


def chap_requests(host: Host) -> int:
    return sum(n for (_, name), n in host.sim.counts.items() if "auth" in name or "credentials" in name)


def record_times(host: Host) -> dict[str, int]:
    folder = host.tree.root / "etc/iscsi"
    return {name: (folder / name).stat().st_mtime_ns for name in secrets_in_records(host)}


def test_a_secret_file_made_unsafe_mid_rotation_is_named_and_the_secrets_in_use_stay(
    mutual: Host, tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    mutual.service.attach(LUN1)
    (tmp_path / "chap-target.secret").chmod(0o666)
    with caplog.at_level(logging.ERROR):
        mutual.service.attach(LUN2)
    assert "chap_target_secret_file" in caplog.text and "chap-target.secret" in caplog.text
    assert OLD_TARGET not in caplog.text
    assert array_entry(mutual).outbound_password == OLD_TARGET
    assert set(secrets_in_records(mutual).values()) == {(OLD, OLD_TARGET)}


def test_when_the_array_refuses_the_rotated_entry_the_host_keeps_the_old_secrets_and_retries(
    mutual: Host, tmp_path: Path
):
    mutual.service.attach(LUN1)
    rotate(tmp_path)
    refused = (
        "iscsi-initiator-modify-chap-params"
        if mutual.array.api == "zapi"
        else "PATCH /api/protocols/san/iscsi/credentials"
    )
    mutual.sim.faults.inject(refused, "errno", errno=13115, reason="invalid input", status=400)
    with pytest.raises(ArrayApiError):
        mutual.service.attach(LUN2)
    assert array_entry(mutual).inbound_password == OLD
    assert set(secrets_in_records(mutual).values()) == {(OLD, OLD_TARGET)}
    mutual.service.attach(LUN2)
    assert array_entry(mutual).inbound_password == NEW
    assert set(secrets_in_records(mutual).values()) == {(NEW, NEW_TARGET)}


def test_a_rotation_while_an_attach_logs_in_waits_for_that_login_and_neither_fails(
    mutual: Host, tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    """The array's entry changes only between logins: a login that started with the old secrets in its
    record is not refused halfway because another attach carried out a rotation meanwhile (a
    reconciler pass cannot: it waits for the attaches in flight)."""
    rotations: list[threading.Thread] = []

    def rotate_meanwhile(argv: tuple[str, ...]) -> None:
        if "--login" in argv and not rotations:
            rotate(tmp_path)
            rotations.append(threading.Thread(target=mutual.service.attach, args=(LUN2,)))
            rotations[0].start()
            rotations[0].join(timeout=2)  # time for the array's entry to change, had nothing kept it

    mutual.initiator.before_command.append(rotate_meanwhile)
    with caplog.at_level(logging.WARNING):
        mutual.service.attach(LUN1)
        rotations[0].join(timeout=30)
    assert not rotations[0].is_alive()
    assert [message for message in caplog.messages if "authentication failed" in message] == []
    assert len(mutual.initiator.sessions) == 1
    assert sorted(a.volume for a in mutual.service.attachments()) == [LUN1, LUN2]
    assert (array_entry(mutual).inbound_password, array_entry(mutual).outbound_password) == (NEW, NEW_TARGET)
    assert set(secrets_in_records(mutual).values()) == {(NEW, NEW_TARGET)}
