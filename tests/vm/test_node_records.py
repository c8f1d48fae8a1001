"""Node and discovery records on a real iscsiadm 2.1.8: read once, written only when they differ, and
then in one ``-o update`` carrying every pair; what discovery does to them; the parser on live output.

Every iscsiadm run of the host layer goes through a recording runner, so each test shows (and -rA
prints) exactly which calls it took and how long each lasted.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from iscsi_agent.host.command import CommandResult, SubprocessRunner
from iscsi_agent.host.iscsi_db import IscsiDatabase
from iscsi_agent.host.iscsiadm import HIDDEN, Chap, Iscsiadm, NodeSettings, parse_records
from iscsi_agent.host.paths import HostPaths
from iscsi_agent.host.sessions import Sessions
from iscsi_agent.host.waiting import SystemClock
from iscsi_agent.portal import Portal

CAPTURED = Path(__file__).resolve().parent.parent / "unit" / "host" / "captured"
AGENT_VALUES = {
    "node.startup": "manual",
    "node.session.scan": "manual",
    "node.conn[0].timeo.login_timeout": "15",
    "node.session.timeo.replacement_timeout": "120",
    "node.session.initial_login_retry_max": "1",
    "node.session.auth.authmethod": "None",
}


@dataclass
class RecordingRunner:
    """The real runner, recording the operation of each iscsiadm call (-o ..., --login) and its time."""

    inner: SubprocessRunner = field(default_factory=SubprocessRunner)
    calls: list[tuple[str, float]] = field(default_factory=list)

    def __call__(self, argv: Sequence[str], *, timeout: float, secrets: Sequence[str] = ()) -> CommandResult:
        started = time.monotonic()
        result = self.inner(argv, timeout=timeout, secrets=secrets)
        self.calls.append((_operation(result.argv), time.monotonic() - started))
        print(f"  {' '.join(result.argv)} -> exit {result.exit_code} ({self.calls[-1][1]:.2f}s)")
        return result

    @property
    def operations(self) -> list[str]:
        return [operation for operation, _ in self.calls]

    def clear(self) -> None:
        self.calls.clear()


def _operation(argv: Sequence[str]) -> str:
    mode = argv[argv.index("-m") + 1]
    if "--discover" in argv:
        return f"{mode} --discover"
    if "-o" in argv:
        return f"{mode} {argv[argv.index('-o') + 1]}"
    return f"{mode} {next(arg for arg in argv if arg.startswith('--'))}"


@pytest.fixture
def runner() -> RecordingRunner:
    return RecordingRunner()


@pytest.fixture
def iscsiadm(runner) -> Iscsiadm:
    return Iscsiadm(runner, IscsiDatabase(HostPaths(), SystemClock()), timeout=60, login_timeout=120)


@pytest.fixture
def portal(target) -> Portal:
    return Portal.parse(target.portals[0])


def iscsiadm_cli(*args: str) -> subprocess.CompletedProcess:
    """iscsiadm run directly, not through the host layer, so the layer cannot vouch for itself."""
    done = subprocess.run(["iscsiadm", *args], capture_output=True, text=True, timeout=60, check=False)
    print(f"$ iscsiadm {' '.join(args)} -> exit {done.returncode} {done.stderr.strip()}")
    return done


def shown_record(target, portal: Portal, *flags: str) -> dict[str, str]:
    done = iscsiadm_cli("-m", "node", "-T", target.iqn, "-p", str(portal), *flags)
    assert done.returncode == 0, done.stderr
    (record,) = parse_records(done.stdout)
    return record


def test_iscsiadm_takes_several_name_value_pairs_in_one_update(target, portal):
    base = ("-m", "node", "-T", target.iqn, "-p", str(portal))
    assert iscsiadm_cli(*base, "-o", "new").returncode == 0
    done = iscsiadm_cli(
        *base,
        "-o",
        "update",
        *("-n", "node.session.scan", "-v", "manual"),
        *("-n", "node.conn[0].timeo.login_timeout", "-v", "7"),
        *("-n", "node.session.initial_login_retry_max", "-v", "2"),
    )
    assert done.returncode == 0, done.stderr
    record = shown_record(target, portal)
    assert (
        record["node.session.scan"],
        record["node.conn[0].timeo.login_timeout"],
        record["node.session.initial_login_retry_max"],
    ) == ("manual", "7", "2")
    # every name is checked before anything is written: a bad pair leaves the record untouched
    done = iscsiadm_cli(
        *base, "-o", "update", "-n", "node.session.scan", "-v", "auto", "-n", "node.bogus", "-v", "1"
    )
    assert done.returncode == 7 and "node.bogus" in done.stderr
    assert shown_record(target, portal)["node.session.scan"] == "manual"


def test_the_parser_reads_the_live_record_as_it_reads_the_captured_one(target, portal):
    assert iscsiadm_cli("-m", "node", "-T", target.iqn, "-p", str(portal), "-o", "new").returncode == 0
    live = shown_record(target, portal)
    (captured,) = parse_records((CAPTURED / "node-record-defaults.txt").read_text())
    assert live.keys() == captured.keys()
    assert (live["node.name"], live["node.conn[0].address"], live["node.session.auth.password"]) == (
        target.iqn,
        portal.address,
        "",
    )


def test_a_missing_record_is_created_and_configured_in_one_update(iscsiadm, runner, target, portal):
    assert iscsiadm.node_records(target.iqn, portal) is None
    runner.clear()
    assert iscsiadm.ensure_node(target.iqn, portal, NodeSettings()) is True
    assert runner.operations == ["node show", "node new", "node update"]
    record = shown_record(target, portal)
    assert {name: record[name] for name in AGENT_VALUES} == AGENT_VALUES


def test_a_record_on_defaults_is_updated_in_one_call(iscsiadm, runner, target, portal):
    assert iscsiadm_cli("-m", "node", "-T", target.iqn, "-p", str(portal), "-o", "new").returncode == 0
    before = shown_record(target, portal)
    print(
        f"on defaults: scan={before['node.session.scan']} retries={before['node.session.initial_login_retry_max']}"
    )
    assert before["node.session.scan"] == "auto"
    assert iscsiadm.ensure_node(target.iqn, portal, NodeSettings()) is True
    assert runner.operations == ["node show", "node update"]
    record = shown_record(target, portal)
    assert {name: record[name] for name in AGENT_VALUES} == AGENT_VALUES


def test_an_identical_record_is_read_once_and_not_written_the_second_time(iscsiadm, runner, target, portal):
    iscsiadm.ensure_node(target.iqn, portal, NodeSettings())
    first = list(runner.calls)
    runner.clear()
    assert iscsiadm.ensure_node(target.iqn, portal, NodeSettings()) is False
    assert runner.operations == ["node show"]
    print(
        f"first: {len(first)} calls, {sum(t for _, t in first):.2f}s; "
        f"second: {len(runner.calls)} call, {runner.calls[0][1]:.2f}s"
    )


def test_a_plain_discovery_resets_the_node_record_and_the_agents_discovery_does_not(
    iscsiadm, runner, target, portal
):
    found = iscsiadm.discover(portal)
    assert [t.iqn for t in found] == [target.iqn] and runner.operations == ["discovery new"]
    iscsiadm.ensure_node(target.iqn, portal, NodeSettings())
    assert shown_record(target, portal)["node.session.scan"] == "manual"
    # the hazard: a plain sendtargets discovery rewrites the shared record with iscsid.conf's defaults
    assert iscsiadm_cli("-m", "discovery", "-t", "sendtargets", "-p", str(portal)).returncode == 0
    assert shown_record(target, portal)["node.session.scan"] == "auto"
    iscsiadm.ensure_node(target.iqn, portal, NodeSettings())
    # the agent's discovery (-o new) only adds records for targets it does not know yet
    assert [t.iqn for t in iscsiadm.discover(portal)] == [target.iqn]
    assert shown_record(target, portal)["node.session.scan"] == "manual"


def test_a_missing_discovery_record_reads_as_exit_6_and_discovery_without_chap_needs_none(
    iscsiadm, runner, target, portal
):
    discoverydb = ("-m", "discoverydb", "-t", "sendtargets", "-p", str(portal))
    iscsiadm_cli(*discoverydb, "-o", "delete")  # the shared cleanup leaves discovery records behind
    done = iscsiadm_cli(*discoverydb, "-o", "show")
    assert done.returncode == 6 and "not found" in done.stderr
    found = iscsiadm.discover(portal)
    assert runner.operations == ["discovery new"]
    assert [t.iqn for t in found] == [target.iqn]


def test_with_chap_the_secrets_reach_the_record_through_its_file_and_the_login_uses_them(
    iscsiadm, runner, target, portal
):
    secret, secret_in = "right secret=0123", "array-secret-0123"
    target.set_chap("agent-user", secret, "array-user", secret_in)
    settings = NodeSettings(chap=Chap("agent-user", secret, "array-user", secret_in))
    iscsiadm.ensure_node(target.iqn, portal, settings)
    assert runner.operations == ["node show", "node new", "node update"]  # the update names no secret
    assert shown_record(target, portal)["node.session.auth.password"] == HIDDEN
    stored = shown_record(target, portal, "-S")  # -S shows the secrets: proves what iscsiadm reads
    assert (stored["node.session.auth.password"], stored["node.session.auth.password_in"]) == (
        secret,
        secret_in,
    )
    runner.clear()
    # the record file holds the secrets already: read once, nothing written
    assert iscsiadm.ensure_node(target.iqn, portal, settings) is False
    assert runner.operations == ["node show"]
    assert iscsiadm.login(target.iqn, portal) is True


def test_parallel_attaches_holding_the_portal_lock_never_log_in_on_defaults(iscsiadm, target, portal):
    # An automatic scan at login would make /dev/sdX for the staged LUN; manual scan makes none.
    target.add_lun(1)
    sessions = Sessions(HostPaths())
    results: list[object] = []

    def attach() -> None:
        try:
            with iscsiadm.portal_lock(portal):
                iscsiadm.ensure_node(target.iqn, portal, NodeSettings())
                results.append(iscsiadm.login(target.iqn, portal))
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            results.append(exc)

    threads = [threading.Thread(target=attach) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    print(f"logins: {results}")
    assert sorted(results, key=str) == [False] * 5 + [True]
    session = sessions.find(target.iqn, portal)
    assert session is not None
    time.sleep(2)  # an automatic scan would have found LUN 1 by now
    assert sessions.devices(session) == ()
