"""The tree's bytecode is written before a boot, also where this process writes none
(PYTHONDONTWRITEBYTECODE): the guest sees the tree read-only and would compile every module of it
again in every Python it starts, the agent's restarts above all."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from tests.vmtier.boot import compile_tree


def test_every_module_of_the_tree_has_its_bytecode_before_the_boot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    module = tmp_path / "iscsi_agent" / "host" / "sessions.py"
    module.parent.mkdir(parents=True)
    module.write_text("ANSWER = 42\n")
    outside = tmp_path / "notes" / "scratch.py"
    outside.parent.mkdir()
    outside.write_text("x = 1\n")

    compile_tree(tmp_path)

    assert Path(importlib.util.cache_from_source(str(module))).is_file()
    assert not Path(importlib.util.cache_from_source(str(outside))).exists()  # only the tree's packages
