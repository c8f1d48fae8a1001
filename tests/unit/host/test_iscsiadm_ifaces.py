"""iscsiadm with open-iscsi ifaces: one iface record per network interface, made or changed only when it
differs, and discovery, node record and login of a bound portal naming the iface (``-I``)."""

from pathlib import Path

import pytest

from iscsi_agent.host.iscsi_db import IscsiDatabase
from iscsi_agent.host.iscsiadm import Iscsiadm, NodeSettings
from iscsi_agent.host.paths import HostPaths
from iscsi_agent.portal import Portal
from tests.fakes import FakeClock, FakeRunner

IQN = "iqn.1992-08.com.netapp:sn.4b1d6e0f2a9c11efb3c1005056a7d2e4:vs.3"
PORTAL = Portal("10.98.0.2", 3260)
IFACE = ("iscsiadm", "-m", "iface", "-I", "ia-st0")
NODE = ("iscsiadm", "-m", "node", "-T", IQN, "-p", "10.98.0.2:3260", "-I", "ia-st0")
CAPTURED = Path(__file__).parent / "captured"
# `iscsiadm -m iface -I NAME -o new` leaves the default iface's settings under the new name (iscsiadm
# 2.1.8's record of the default iface, renamed): bound to no network interface.
IFACE_NEW = (CAPTURED / "iface-record-new.txt").read_text()
IFACE_BOUND = IFACE_NEW.replace("iface.net_ifacename = <empty>", "iface.net_ifacename = ia-st0")
RECORD_DEFAULTS = (CAPTURED / "node-record-defaults.txt").read_text()


@pytest.fixture
def runner() -> FakeRunner:
    return FakeRunner()


@pytest.fixture
def iscsiadm(runner: FakeRunner, tmp_path: Path) -> Iscsiadm:
    return Iscsiadm(runner, IscsiDatabase(HostPaths(tmp_path), FakeClock()), timeout=20.0)


def test_a_missing_iface_record_is_made_and_bound_to_its_interface(iscsiadm, runner):
    runner.reply((*IFACE, "-o", "show"), exit_code=6, stderr="iscsiadm: Could not read iface ia-st0 (6).\n")
    assert iscsiadm.ensure_iface("ia-st0") is True
    assert runner.argvs == [
        (*IFACE, "-o", "show"),
        (*IFACE, "-o", "new"),
        (*IFACE, "-o", "update", "-n", "iface.net_ifacename", "-v", "ia-st0"),
    ]
    assert all(call.timeout == 20.0 for call in runner.calls)


def test_an_iface_record_bound_to_its_interface_is_read_once_and_not_written(iscsiadm, runner):
    runner.reply((*IFACE, "-o", "show"), stdout=IFACE_BOUND)
    assert iscsiadm.ensure_iface("ia-st0") is False
    assert runner.argvs == [(*IFACE, "-o", "show")]


def test_an_iface_record_bound_to_no_interface_gets_one_update(iscsiadm, runner):
    runner.reply((*IFACE, "-o", "show"), stdout=IFACE_NEW)
    assert iscsiadm.ensure_iface("ia-st0") is True
    assert runner.argvs == [
        (*IFACE, "-o", "show"),
        (*IFACE, "-o", "update", "-n", "iface.net_ifacename", "-v", "ia-st0"),
    ]


def test_discovery_through_an_iface_names_it(iscsiadm, runner):
    iscsiadm.discover(PORTAL, iface="ia-st0")
    assert runner.argvs == [
        (
            "iscsiadm",
            "-m",
            "discovery",
            "-t",
            "sendtargets",
            "-p",
            "10.98.0.2:3260",
            "-I",
            "ia-st0",
            "-o",
            "new",
        )
    ]


def test_the_node_record_of_an_iface_is_read_made_and_written_as_that_ifaces(iscsiadm, runner):
    runner.reply((*NODE, "-o", "show"), exit_code=21, stderr="iscsiadm: No records found\n")
    assert iscsiadm.node_records(IQN, PORTAL, iface="ia-st0") is None
    assert iscsiadm.ensure_node(IQN, PORTAL, NodeSettings(), iface="ia-st0") is True
    assert [argv[: len(NODE) + 2] for argv in runner.argvs] == [
        (*NODE, "-o", "show"),
        (*NODE, "-o", "show"),
        (*NODE, "-o", "new"),
        (*NODE, "-o", "update"),
    ]


def test_login_through_an_iface_names_it(iscsiadm, runner):
    assert iscsiadm.login(IQN, PORTAL, iface="ia-st0") is True
    assert runner.argvs == [(*NODE, "--login")]


def test_without_an_iface_nothing_names_one(iscsiadm, runner):
    runner.reply(("iscsiadm", "-m", "node"), stdout=RECORD_DEFAULTS)
    iscsiadm.discover(PORTAL)
    iscsiadm.ensure_node(IQN, PORTAL, NodeSettings())
    iscsiadm.login(IQN, PORTAL)
    assert runner.argvs and not any("-I" in argv for argv in runner.argvs)
