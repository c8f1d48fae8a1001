"""The chaos soak's short seeds on the real kernel (``make chaos`` runs the long soak): parallel
attaches and detaches, SIGKILLs, array faults, a portal down, unmaps and LUN-id reuse behind the
agent's back, held devices, multipath off then on; each invariant is its own test over both seeds,
so a known failure is marked on exactly the check it breaks."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from chaos.soak import Report, run
from tests.vmtier.boot import GUEST_REPORTS_ENV
from tests.vmtier.guest import PYTEST_TIMEOUT

CHAOS_SHORT_ENV = "ISCSI_AGENT_CHAOS_SHORT"  # carried into the guest (tests/vmtier/boot.py)
pytestmark = [
    pytest.mark.skipif(
        os.environ.get(CHAOS_SHORT_ENV) != "1",
        reason=f"the short chaos seeds run with {CHAOS_SHORT_ENV}=1 (`make chaos-short`): about 30 minutes here",
    ),
    pytest.mark.timeout(PYTEST_TIMEOUT),  # both seeds run in the first test's set-up
]

SEEDS = (11, 12)
STEPS = 8  # the multipath switch is step 5: both phases run
BURST = (3, 6)  # smaller than make chaos's 8-16, to keep the VM tier within minutes


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Report]]:
    done = []
    for seed in SEEDS:
        report = run(seed, STEPS, logs_folder(tmp_path_factory, seed), burst=BURST)
        print(report.render())
        done.append(report)
    yield done


def logs_folder(tmp_path_factory: pytest.TempPathFactory, seed: int) -> Path:
    """In the folder the VM tier brings back to the host (kept when a test failed), so that the
    agent's log of a failing seed can be read; a temporary one elsewhere."""
    reports_file = os.environ.get(GUEST_REPORTS_ENV)
    if not reports_file:
        return tmp_path_factory.mktemp(f"chaos-{seed}")
    folder = Path(reports_file).parent / f"chaos-{seed}"
    folder.mkdir(exist_ok=True)
    return folder


def failures(reports: list[Report], check: str) -> list[str]:
    return [f"seed {r.seed} step {f.step}: {f.message}" for r in reports for f in r.failed(check)]


def test_the_short_seeds_ran_every_step_and_checked_every_invariant(reports: list[Report]):
    for report in reports:
        assert sum(report.actions.values()) == STEPS, report.render()
        settled = ("answers", "data", "accounting", "resources")  # once after every step
        assert all(report.checks[check] == STEPS for check in settled), report.render()
        assert report.checks["identity"] > 0, report.render()  # once per attached device per settle


def test_every_answer_is_json_with_a_documented_status_and_never_500(reports: list[Report]):
    assert failures(reports, "answers") == []


def test_no_device_is_handed_out_with_another_luns_identity(reports: list[Report]):
    assert failures(reports, "identity") == []


def test_data_written_to_an_attached_volume_reads_back(reports: list[Report]):
    assert failures(reports, "data") == []


def test_nothing_is_left_that_the_journal_and_the_array_cannot_account_for(reports: list[Report]):
    assert failures(reports, "accounting") == []


def test_the_agents_fds_threads_and_rss_stay_bounded(reports: list[Report]):
    assert failures(reports, "resources") == []
