"""The watchdog and health reflect whether the agent can work now, not only whether a thread lives."""

import contextlib
import errno
import resource
import socket
from pathlib import Path
from types import SimpleNamespace

import pytest

from iscsi_agent.config import parse_config
from iscsi_agent.daemon import vital_checks
from iscsi_agent.journal.store import Journal
from iscsi_agent.vitals import Vitals, keep_watch


class Ticks:
    """A stop event whose wait returns at once: not set for ``count`` waits, then set."""

    def __init__(self, count):
        self.left = count

    def wait(self, timeout):
        self.left -= 1
        return self.left < 0


def out_of_descriptors():
    raise OSError(errno.EMFILE, "Too many open files")


def test_vitals_name_each_thing_the_agent_cannot_do_and_clear_when_it_can_again():
    broken = {"start a program": True}

    def spawn():
        if broken["start a program"]:
            out_of_descriptors()

    vitals = Vitals({"start a program": spawn, "write the journal": lambda: None})
    assert vitals.check() == ("start a program: [Errno 24] Too many open files",)
    assert vitals.problems == ("start a program: [Errno 24] Too many open files",)
    broken["start a program"] = False
    assert vitals.check() == () and vitals.problems == ()


def test_the_watchdog_is_not_pinged_while_the_agent_cannot_start_a_program():
    sent = []
    vitals = Vitals({"api accepting": lambda: None, "start a program": out_of_descriptors})
    keep_watch(Ticks(3), 0.0, vitals, sent.append, lambda: "serving")
    assert sent and not any("WATCHDOG=1" in message for message in sent)
    assert all("STATUS=cannot work: start a program" in message for message in sent)


def test_the_watchdog_is_pinged_while_every_vital_holds():
    sent = []
    keep_watch(Ticks(2), 0.0, Vitals({"api accepting": lambda: None}), sent.append, lambda: "serving")
    assert sent == ["WATCHDOG=1\nSTATUS=serving"] * 2


def test_a_journal_write_probe_writes_and_leaves_the_journal_as_it_was(tmp_path):
    with Journal.open(tmp_path / "journal.db") as journal:
        journal.check_writable()
        assert journal.attachments() == [] and journal.in_flight() == []


@contextlib.contextmanager
def descriptors_exhausted():
    """No new descriptor can be opened: the soft limit is the lowest free descriptor."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with socket.socket() as probe:
        lowest_free = probe.fileno()
    resource.setrlimit(resource.RLIMIT_NOFILE, (lowest_free, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.mark.allow_subprocess  # the agent's own check starts a program
def test_the_agents_checks_find_it_cannot_start_a_program_once_its_descriptors_are_gone(tmp_path):
    config = parse_config(
        "[array]\nhostname = a.example\nvserver = svm1\n[iscsi]\niscsiadm = true\n", Path("agent.conf")
    )
    api = SimpleNamespace(alive=lambda: True)
    with Journal.open(tmp_path / "journal.db") as journal:
        vitals = Vitals(vital_checks(config, api, None, journal))
        assert vitals.check() == ()
        with descriptors_exhausted():
            problems = vitals.check()
    assert [problem for problem in problems if problem.startswith("start a program: ")], problems
