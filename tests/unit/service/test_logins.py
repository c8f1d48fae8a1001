"""A session is logged out only when it carries no LUN and no operation in flight is about to use it."""

from pathlib import Path

from iscsi_agent.host.iscsi_db import IscsiDatabase
from iscsi_agent.host.iscsiadm import Iscsiadm, NodeSettings
from iscsi_agent.host.paths import HostPaths
from iscsi_agent.host.sessions import Sessions
from iscsi_agent.journal.model import Kind
from iscsi_agent.journal.store import Journal
from iscsi_agent.portal import Portal
from iscsi_agent.service.logins import Logins
from iscsi_agent.service.observe import Unobserved
from iscsi_agent.service.steps import StepRecorder
from tests.fakes import FakeClock, FakeRunner, HostTree

IQN = "iqn.1992-08.com.netapp:sn.abc:vs.3"
PORTAL = Portal("127.0.0.1")


def world(tmp_path: Path):
    tree = HostTree(tmp_path / "host")
    tree.add_session(1, 6, IQN, str(PORTAL))
    runner, clock = FakeRunner(), FakeClock()
    logins = Logins(
        Iscsiadm(runner, IscsiDatabase(HostPaths(tree.root), clock)),
        Sessions(HostPaths(tree.root)),
        NodeSettings(),
        clock,
    )
    journal = Journal.open(tmp_path / "journal.sqlite3")
    op = journal.begin(Kind.DETACH, "vol", "uuid")
    steps = StepRecorder(journal, op, "detach of vol", operation="detach", clock=clock, observer=Unobserved())
    return logins, runner, steps


def test_an_idle_session_is_logged_out_and_its_record_deleted(tmp_path):
    logins, runner, steps = world(tmp_path)
    assert logins.log_out_if_unused(IQN, PORTAL, steps) is True
    assert [argv[-1] for argv in runner.argvs] == ["--logout", "delete"]


def test_a_session_an_attach_in_flight_relies_on_stays(tmp_path):
    logins, runner, steps = world(tmp_path)
    with logins.using(IQN, PORTAL):  # another attach, about to scan its LUN there
        assert logins.log_out_if_unused(IQN, PORTAL, steps) is False
    assert runner.argvs == []
