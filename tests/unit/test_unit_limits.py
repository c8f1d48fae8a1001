"""The service unit bounds the agent's descriptors and tasks, above what its servers can ever hold.

Clients cannot reach these bounds (the servers close what they cannot serve); the bounds keep a bug
from taking the host's descriptors or processes, and must leave the servers their room.
"""

from pathlib import Path

from iscsi_agent.api.acceptor import Limits
from iscsi_agent.metrics_http import METRICS_LIMITS

UNIT = Path(__file__).parents[2] / "systemd" / "iscsi-agent.service"
PIPES_PER_PROGRAM = 3  # stdin, stdout, stderr of each program run (iscsiadm, multipath)
PROGRAMS_AT_ONCE = 64  # one per API connection at most, and the reconciler's


def service_settings() -> dict[str, str]:
    settings, section = {}, None
    for line in (raw.strip() for raw in UNIT.read_text().splitlines()):
        if line.startswith("["):
            section = line
        elif section == "[Service]" and "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            settings[key] = value
    return settings


def held_at_most(limits: Limits) -> int:
    return limits.connections + limits.refusals + limits.lingering


def test_the_unit_limits_descriptors_above_what_the_servers_and_their_programs_can_hold():
    files = int(service_settings()["LimitNOFILE"])
    servers = held_at_most(Limits()) + held_at_most(METRICS_LIMITS)
    assert files >= 2 * (servers + PROGRAMS_AT_ONCE * PIPES_PER_PROGRAM)


def test_the_unit_limits_tasks_above_the_servers_threads_and_their_programs():
    tasks = int(service_settings()["TasksMax"])
    threads = sum(limits.connections + limits.refusals for limits in (Limits(), METRICS_LIMITS))
    assert tasks >= 2 * (threads + PROGRAMS_AT_ONCE)
