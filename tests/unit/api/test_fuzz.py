"""A short seed set of the API fuzzer (``tests.unit.api.fuzz``; ``make fuzz`` runs 10,000+ cases)."""

import pytest

from tests.unit.api.fuzz import fuzz


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_generated_requests_of_every_kind_get_well_formed_answers_without_crashes_hangs_or_leaks(seed):
    report = fuzz(seed, cases=600)
    print(report.text())
    assert report.failures() == []
    assert report.statuses["200"] and report.statuses["400"] and report.statuses["408"]
