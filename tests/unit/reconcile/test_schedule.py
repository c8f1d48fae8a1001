"""When passes run: spread over the first interval after a start, then one interval apart on average,
each gap within a tenth of it, so a fleet restarted at one instant never calls its array in step."""

from __future__ import annotations

import itertools
import random
import statistics
from datetime import UTC, datetime, timedelta

from iscsi_agent.reconcile.reconciler import JITTER_SHARE, pass_trigger

START = datetime(2026, 12, 1, tzinfo=UTC)
INTERVAL = 60.0


def fires(seed: int, count: int) -> list[datetime]:
    random.seed(seed)  # apscheduler draws its jitter from the random module
    trigger = pass_trigger(INTERVAL, START, random.Random(seed))
    times, fire = [], trigger.start_date
    for _ in range(count):
        times.append(fire)
        fire = trigger.get_next_fire_time(fire, fire)
    return times


def test_the_first_pass_falls_somewhere_in_the_first_interval():
    firsts = [fires(seed, 1)[0] for seed in range(200)]
    assert all(START <= first <= START + timedelta(seconds=INTERVAL) for first in firsts)
    spread = sorted((first - START).total_seconds() for first in firsts)
    assert spread[0] < INTERVAL * 0.1 and spread[-1] > INTERVAL * 0.9  # not bunched at one moment


def test_each_gap_is_the_interval_within_a_tenth_and_the_interval_on_average():
    times = fires(7, 500)
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(times)]
    low, high = INTERVAL * (1 - JITTER_SHARE / 2), INTERVAL * (1 + JITTER_SHARE / 2)
    assert all(low - 0.01 <= gap <= high + 0.01 for gap in gaps)
    assert abs(statistics.mean(gaps) - INTERVAL) < 0.5
    assert statistics.pstdev(gaps) > 1.0  # really jittered, not a fixed beat
