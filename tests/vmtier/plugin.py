"""pytest side of the VM tier: tests under tests/vm run in the guest and are reported here as usual.

On the host, the first vm test boots the VM once for all of them (reports travel back through
pytest's own report serialization, as pytest-xdist does); each vm test is then reported with
the guest's outcome, traceback and captured output. In the guest, the same plugin writes each
report out. ISCSI_AGENT_SKIP_VM=1 skips the tier explicitly; missing prerequisites fail it,
because a silently skipped real-kernel tier would hide that nothing was proven.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.vmtier import boot

VM_TESTS_DIR = Path(__file__).resolve().parent.parent / "vm"
IN_GUEST = os.environ.get(boot.GUEST_ENV_FLAG) == "1"
SKIP_ENV = "ISCSI_AGENT_SKIP_VM"
# set-up, call and teardown of one test: most take under a minute; the libvirt module's first test
# waits up to 16 min for libvirtd and the agent on a loaded machine. A test may mark a longer one.
GUEST_TEST_TIMEOUT = 20 * 60.0
# faulthandler's own thread writes every thread's stack to the log after this long in one test, even
# where pytest-timeout's signal cannot reach the test (a task in uninterruptible sleep never sees it)
GUEST_STACK_DUMP_AFTER = 12 * 60.0
_guest_runs_key = pytest.StashKey[dict[str, boot.GuestRun]]()
_vm_items_key = pytest.StashKey[list]()
SHARED_BOOT = ""


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "vm: runs inside the real-kernel VM (tests/vm)")
    config.addinivalue_line(
        "markers",
        "vm_boot(name, deadline): runs in a guest of its own, booted once for the tests of that name and "
        "cut off after deadline seconds; whatever wedges it costs only those tests",
    )
    reports_file = os.environ.get(boot.GUEST_REPORTS_ENV)
    if IN_GUEST and reports_file:
        config.pluginmanager.register(GuestReportWriter(config, Path(reports_file)), "vm-guest-report-writer")


def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    vm_items = [item for item in items if VM_TESTS_DIR in Path(item.path).resolve().parents]
    for item in vm_items:
        item.add_marker(pytest.mark.vm)
    config.stash[_vm_items_key] = vm_items


def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> bool | None:
    if IN_GUEST or item.get_closest_marker("vm") is None:
        return None
    item.ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
    for report in _reports_for(item):
        item.ihook.pytest_runtest_logreport(report=report)
    item.ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
    return True


class GuestReportWriter:
    """In the guest: append every report, serialized, to the file the host will read."""

    def __init__(self, config: pytest.Config, path: Path) -> None:
        self._config = config
        self._path = path

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        data = self._config.hook.pytest_report_to_serializable(config=self._config, report=report)
        with self._path.open("a") as out:
            out.write(json.dumps(data) + "\n")


def _reports_for(item: pytest.Item) -> list[pytest.TestReport]:
    if os.environ.get(SKIP_ENV) == "1":
        return _synthetic(item, "skipped", f"{SKIP_ENV}=1: the real-kernel tier was not run")
    missing = boot.missing_prerequisites()
    if missing:
        return _synthetic(
            item, "failed", "the VM tier cannot run; missing: " + ", ".join(missing) + " (run `make deps`)"
        )
    config = item.config
    runs = config.stash.setdefault(_guest_runs_key, {})
    name, deadline = boot_of(item)
    if name not in runs:
        nodeids = [vm_item.nodeid for vm_item in config.stash[_vm_items_key] if boot_of(vm_item)[0] == name]
        runs[name] = boot.run_in_vm(nodeids, Path(str(config.rootpath)), guest_pytest_args(config), deadline)
    run = runs[name]
    serialized = run.reports.get(item.nodeid)
    if not serialized:
        return _synthetic(
            item,
            "failed",
            f"no result came back from the VM (exit code {run.exit_code}; logs in {run.results_dir}):\n{run.log_tail}",
        )

    def rebuild(data: dict) -> pytest.TestReport:
        return config.hook.pytest_report_from_serializable(config=config, data=data)

    return [report_from_guest(rebuild, data) for data in serialized]


def boot_of(item: pytest.Item) -> tuple[str, float]:
    """The guest an item runs in, and that guest's deadline: the tier's shared one unless it asks."""
    marker = item.get_closest_marker("vm_boot")
    if marker is None:
        return SHARED_BOOT, boot.BOOT_TIMEOUT
    return marker.args[0], marker.kwargs["deadline"]


def report_from_guest(rebuild: Callable[[dict], pytest.TestReport], data: dict) -> pytest.TestReport:
    """A guest report as the host's own: JSON carried a skip's ``(path, line, reason)`` as a list,
    and pytest's summary folds skips only by that tuple (it asserts so)."""
    report = rebuild(data)
    if report.skipped and isinstance(report.longrepr, list):
        report.longrepr = tuple(report.longrepr)
    return report


def guest_pytest_args(config: pytest.Config) -> list[str]:
    """Carry over the verbosity and report flags so the guest's output reads like the host's, and
    bound each test: one that hangs fails with every thread's stack, and the tests after it still run.
    One that the signal cannot stop still leaves its stacks in the log."""
    args = ["-v"] if config.option.verbose > 0 else []
    return [
        *args,
        "-rA",
        f"--timeout={GUEST_TEST_TIMEOUT:g}",
        "--timeout-method=signal",
        "-o",
        f"faulthandler_timeout={GUEST_STACK_DUMP_AFTER:g}",
    ]


def _synthetic(item: pytest.Item, outcome: str, message: str) -> list[pytest.TestReport]:
    longrepr = (
        (str(item.path), item.location[1] or 0, f"Skipped: {message}") if outcome == "skipped" else message
    )
    return [
        pytest.TestReport(item.nodeid, item.location, {}, "passed", None, "setup"),
        pytest.TestReport(item.nodeid, item.location, {}, outcome, longrepr, "call"),
        pytest.TestReport(item.nodeid, item.location, {}, "passed", None, "teardown"),
    ]
