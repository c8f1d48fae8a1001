"""A VM test module may ask for a guest of its own, with a deadline of its own: whatever wedges that
guest costs only its tests. The rest of the tier still shares one boot (booting is most of a short
test's cost under emulation)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from tests.vmtier import boot, plugin

LIBVIRT = pytest.mark.vm_boot("libvirt", deadline=1800.0).mark


def vm_item(config: SimpleNamespace, nodeid: str, marker: pytest.Mark | None = None) -> pytest.Item:
    def closest(name: str) -> pytest.Mark | None:
        return marker if name == "vm_boot" else None

    location = (nodeid.partition("::")[0], 0, nodeid)
    item = SimpleNamespace(nodeid=nodeid, location=location, config=config, get_closest_marker=closest)
    return cast(pytest.Item, item)


def test_each_boot_runs_its_own_tests_once_with_its_own_deadline(monkeypatch: pytest.MonkeyPatch):
    boots: list[tuple[list[str], float]] = []

    def run_in_vm(nodeids: Sequence[str], rootdir: Path, pytest_args: Sequence[str], timeout: float) -> Any:
        boots.append((list(nodeids), timeout))
        return boot.GuestRun(exit_code=0)  # no reports: each test then fails saying so, which is enough here

    monkeypatch.setattr(boot, "run_in_vm", run_in_vm)
    monkeypatch.setattr(boot, "missing_prerequisites", lambda: [])
    monkeypatch.delenv(plugin.SKIP_ENV, raising=False)
    config = SimpleNamespace(stash=pytest.Stash(), rootpath=Path("."), option=SimpleNamespace(verbose=0))
    items = [
        vm_item(config, "tests/vm/test_a.py::test_1"),
        vm_item(config, "tests/vm/test_hook.py::test_2", LIBVIRT),
        vm_item(config, "tests/vm/test_hook.py::test_3", LIBVIRT),
        vm_item(config, "tests/vm/test_z.py::test_4"),
    ]
    config.stash[plugin._vm_items_key] = items

    for item in items:
        plugin._reports_for(item)

    assert boots == [
        (["tests/vm/test_a.py::test_1", "tests/vm/test_z.py::test_4"], boot.BOOT_TIMEOUT),
        (["tests/vm/test_hook.py::test_2", "tests/vm/test_hook.py::test_3"], 1800.0),
    ]
