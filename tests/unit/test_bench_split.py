"""The bench's split of an operation's time: what it counts, and how the report shows it beside the floor."""

from __future__ import annotations

import pytest

from bench.report import steps_section
from bench.split import JOURNAL, OTHER, StepTimes, TimedJournal, split


class SteppingClock:
    """Each reading is a tenth of a second after the last."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 0.1
        return self.now


class FakeJournal:
    def __init__(self, times: StepTimes) -> None:
        self.times = times
        self.path = "journal.sqlite3"

    def intend(self, step: str) -> str:
        self.times.step("attach", step, 0.0)  # a write that takes no time of its own
        return step

    def attachments(self) -> list[str]:
        return ["kept"]


def test_an_operations_steps_journal_writes_and_the_rest_add_up_to_its_wall_time():
    times, clock = StepTimes(), SteppingClock()
    journal = TimedJournal(FakeJournal(times), times, clock)  # type: ignore[arg-type]

    def attach() -> None:
        journal.intend("login")  # two readings: 0.1 s
        times.step("attach", "login", 0.25)
        times.step("attach", "login", 0.25)  # a second portal's login adds to the first
        clock.now += 1.0

    parts = split(times, attach, clock)
    assert parts["total"] == pytest.approx(1.3)  # from the first reading (0.1) to the last (1.4)
    assert parts["login"] == 0.5 and parts[JOURNAL] == pytest.approx(0.1)
    assert parts[OTHER] == pytest.approx(0.7)


def test_reads_pass_through_the_timed_journal_untimed():
    times = StepTimes()
    journal = TimedJournal(FakeJournal(times), times)  # type: ignore[arg-type]
    assert journal.attachments() == ["kept"] and journal.path == "journal.sqlite3"
    assert times.take() == {}


def test_steps_taken_before_the_operation_are_not_counted_in_it():
    times = StepTimes()
    times.step("attach", "scan", 9.0)
    assert "scan" not in split(times, lambda: None)


def test_with_threads_the_summed_steps_exceed_the_wall_time_and_no_rest_is_claimed():
    times = StepTimes()
    parts = split(times, lambda: [times.step("attach", "wait_device", 5.0) for _ in range(16)])
    assert parts["wait_device"] == 80.0 and OTHER not in parts


def _median(value: float) -> dict[str, object]:
    return {"median": value, "samples": [value]}


def test_the_report_shows_each_phases_steps_beside_the_floors():
    results = {
        "rounds": 5,
        "parallel_count": 16,
        "single": {
            "agent": {
                "first": _median(1.8),
                "first step login": _median(0.9),
                "first step wait_device": _median(0.5),
                f"first step {JOURNAL}": _median(0.05),
                f"first step {OTHER}": _median(0.35),
                "second": _median(1.1),
                "detach": _median(0.5),
            },
            "floor": {
                "first": _median(1.2),
                "first step login": _median(0.8),
                "first step link wait": _median(0.4),
                "second": _median(0.6),
                "detach": _median(0.2),
            },
        },
        "parallel": {"agent": {"seconds": 30.0, "steps": {"wait_device": 160.0, "login": 16.0}}},
        "multipath": {"agent": {"seconds": 6.0, "steps": {"multipath": 3.0}}},
    }
    text = "\n".join(steps_section(results))
    first = next(line for line in text.splitlines() if "first LUN" in line and "agent" in line)
    assert "login 0.90" in first and "wait_device 0.50" in first and f"{OTHER} 0.35" in first
    floor_line = text.splitlines()[text.splitlines().index(first) + 1]
    assert "floor" in floor_line and "login 0.80" in floor_line and "link wait 0.40" in floor_line
    assert "wait_device 10.00" in text  # 160 thread-seconds over 16 attaches
    assert "multipath 3.00" in text


def test_the_report_says_what_was_not_measured_instead_of_a_split():
    text = "\n".join(steps_section({"single": {"error": "boom"}}))
    assert "not measured (boom)" in text
