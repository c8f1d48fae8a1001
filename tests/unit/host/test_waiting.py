"""wait_until on an injected clock (the inotify pause that can stand in for its sleep: test_watch.py)."""

import pytest

from iscsi_agent.host.errors import WaitTimeout
from iscsi_agent.host.waiting import wait_until
from tests.fakes import FakeClock


def test_the_first_truthy_value_is_returned_without_pausing():
    clock = FakeClock()
    assert wait_until(lambda: "sda", 5, clock) == "sda"
    assert clock.sleeps == []


def test_it_polls_until_the_condition_holds():
    clock = FakeClock()
    answers = iter([None, None, "sdb"])
    assert wait_until(lambda: next(answers), 5, clock, interval=0.5) == "sdb"
    assert clock.sleeps == [0.5, 0.5]


def test_a_timeout_names_what_was_awaited_and_never_overshoots_the_deadline():
    clock = FakeClock()
    with pytest.raises(WaitTimeout, match="the by-path link did not happen within 1s") as caught:
        wait_until(lambda: None, 1, clock, what="the by-path link", interval=0.4)
    assert clock.sleeps == [0.4, 0.4, pytest.approx(0.2)]
    assert caught.value.details == {"waited_for": "the by-path link", "timeout": 1}


def test_a_condition_true_at_the_deadline_is_not_a_timeout():
    clock = FakeClock()
    assert wait_until(lambda: clock.now >= 1001 or None, 1, clock, interval=0.5) is True


def test_a_custom_pause_replaces_the_clock_sleep():
    clock = FakeClock()
    pauses = []

    def pause(seconds):
        pauses.append(seconds)
        clock.now += seconds

    with pytest.raises(WaitTimeout):
        wait_until(lambda: None, 1, clock, pause=pause, interval=1)
    assert pauses == [1] and clock.sleeps == []
