"""Reports from the VM tier's guest read on the host as pytest's own: a skip keeps the
``(path, line, reason)`` tuple pytest's summary folds skips by, although JSON turned it into a list."""

from __future__ import annotations

import json

import pytest

from tests.vmtier.plugin import report_from_guest


def through_the_guest_file(report: pytest.TestReport) -> dict:
    return json.loads(json.dumps(report._to_json()))


def test_a_skip_in_the_guest_reads_back_with_its_location_as_a_tuple():
    skipped = pytest.TestReport(
        "tests/vm/test_x.py::test_y",
        ("tests/vm/test_x.py", 3, "test_y"),
        {},
        "skipped",
        ("tests/vm/test_x.py", 4, "Skipped: not here"),
        "setup",
    )

    report = report_from_guest(pytest.TestReport._from_json, through_the_guest_file(skipped))

    assert report.skipped
    assert report.longrepr == ("tests/vm/test_x.py", 4, "Skipped: not here")
    assert isinstance(report.longrepr, tuple)


def test_a_failure_in_the_guest_keeps_its_traceback_text():
    failed = pytest.TestReport(
        "tests/vm/test_x.py::test_y",
        ("tests/vm/test_x.py", 3, "test_y"),
        {},
        "failed",
        "E assert 1 == 2",
        "call",
    )

    report = report_from_guest(pytest.TestReport._from_json, through_the_guest_file(failed))

    assert report.failed
    assert "E assert 1 == 2" in str(report.longrepr)
