"""The metrics: commands counted by operation and exit code, never by their values; states read at scrape."""

import pytest
from prometheus_client import generate_latest

from iscsi_agent.host.command import CommandTimeout
from iscsi_agent.host.paths import HostPaths
from iscsi_agent.host.sessions import Sessions
from iscsi_agent.metrics import HostCollector, MeteredRunner, Metrics
from tests.fakes import FakeRunner, HostTree

IQN = "iqn.1992-08.com.netapp:sn.abc:vs.3"


def scrape(metrics: Metrics) -> str:
    return generate_latest(metrics.registry).decode()


def test_iscsiadm_runs_are_counted_by_mode_action_and_exit_code_without_names_or_secrets():
    metrics, runner = Metrics(), FakeRunner()
    runner.reply(("iscsiadm", "-m", "node", "-T", IQN, "-p", "10.0.0.1:3260", "--login"), exit_code=15)
    metered = MeteredRunner(runner, metrics)
    metered(["iscsiadm", "-m", "node", "-T", IQN, "-p", "10.0.0.1:3260", "--login"], timeout=5)
    metered(
        ["iscsiadm", "-m", "node", "-T", IQN, "-p", "10.0.0.1:3260", "-o", "update", "-n", "x", "-v", "pw"],
        timeout=5,
    )
    text = scrape(metrics)
    assert 'iscsi_agent_commands_total{exit_code="15",operation="node-login",program="iscsiadm"} 1.0' in text
    assert 'iscsi_agent_commands_total{exit_code="0",operation="node-update",program="iscsiadm"} 1.0' in text
    assert IQN not in text and "pw" not in text


def test_a_command_that_times_out_is_counted_by_its_error_code():
    metrics, runner = Metrics(), FakeRunner(hang_on=("multipath",))
    with pytest.raises(CommandTimeout):
        MeteredRunner(runner, metrics)(["multipath", "-f", "3600a0980"], timeout=1)
    assert f'exit_code="{CommandTimeout.code}",operation="-f",program="multipath"' in scrape(metrics)


def test_operations_and_steps_are_timed_by_outcome():
    metrics = Metrics()
    metrics.step("attach", "login", 0.4)
    metrics.finished("attach", 1.2, None)
    metrics.finished("detach", 0.3, "volume_in_use")
    text = scrape(metrics)
    assert 'iscsi_agent_operations_total{code="",operation="attach",outcome="ok"} 1.0' in text
    assert (
        'iscsi_agent_operations_total{code="volume_in_use",operation="detach",outcome="failed"} 1.0' in text
    )
    assert 'iscsi_agent_step_duration_seconds_count{operation="attach",step="login"} 1.0' in text


def test_sessions_and_attachments_are_read_when_scraped(tmp_path):
    tree = HostTree(tmp_path / "host")
    tree.add_session(1, 6, IQN, "127.0.0.1:3260")
    tree.add_session(2, 7, IQN, "127.0.0.2:3260", state="FAILED")
    metrics = Metrics()
    metrics.registry.register(HostCollector(Sessions(HostPaths(tree.root)), lambda: 3, None))
    text = scrape(metrics)
    assert 'iscsi_agent_sessions{portal="127.0.0.1:3260",state="LOGGED_IN"} 1.0' in text
    assert 'iscsi_agent_sessions{portal="127.0.0.2:3260",state="FAILED"} 1.0' in text
    assert "iscsi_agent_attached_volumes 3.0" in text
