"""Boots the VM once, runs ``bench.guest`` inside, and prints the host-side table from its results.

os-brick 7.1.1 comes from PyPI into the bench's own venv (``.venv-bench``, made here on first use)
so the product's venv never holds it; the guest sees this machine's filesystem, so that venv's
Python runs os-brick inside the VM. Without it the table says why os-brick is not measured.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench import daemon_figures
from bench.report import NOT_MEASURED, render
from tests.vmtier.boot import find_kernel, missing_prerequisites, run_streaming

ROOT = Path(__file__).resolve().parent.parent
OSBRICK_VENV = ROOT / ".venv-bench"
OSBRICK = "os-brick==7.1.1"
VM_TIMEOUT = 60 * 60.0


def osbrick_python() -> tuple[str, str | None]:
    """The bench venv's Python with os-brick installed (made when missing), or why there is none."""
    python = OSBRICK_VENV / "bin" / "python"
    probe = [str(python), "-c", "import importlib.metadata as m; print(m.version('os-brick'))"]
    if (
        python.exists()
        and subprocess.run(probe, capture_output=True, text=True, check=False).stdout.strip() == "7.1.1"
    ):
        return str(python), None
    print(f"installing {OSBRICK} into {OSBRICK_VENV.name}/ (the bench's own venv) ...", flush=True)
    steps = (
        [sys.executable, "-m", "venv", "--clear", str(OSBRICK_VENV)],
        [str(python), "-m", "pip", "install", "-q", OSBRICK],
    )
    for argv in steps:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=900, check=False)
        if done.returncode != 0:
            return str(python), f"{' '.join(argv[-2:])} failed: {(done.stderr or done.stdout).strip()[-300:]}"
    return str(python), None


def vm_timeout(guest_flags: Sequence[str]) -> float:
    """The VM's deadline, with room for the cycles asked for (``--cycles=N``) on top of the rest."""
    asked = [int(flag.split("=", 1)[1]) for flag in guest_flags if flag.startswith("--cycles=")]
    extra = max(0, asked[-1] - daemon_figures.CYCLES) * daemon_figures.CYCLE_SECONDS if asked else 0.0
    return VM_TIMEOUT + extra


def main(guest_flags: Sequence[str] = ()) -> int:
    missing = missing_prerequisites()
    if missing:
        print(
            f"bench: host-side figures {NOT_MEASURED}: missing {', '.join(missing)} (make deps)",
            file=sys.stderr,
        )
        return 2
    kernel = find_kernel()
    assert kernel is not None
    python, why_not = osbrick_python()
    if why_not:
        print(f"os-brick: {NOT_MEASURED} ({why_not})", flush=True)
        python = "/nonexistent/os-brick-python"
    on_host: dict[str, Any]
    try:  # before the VM boots, so the two do not share the CPUs
        on_host = daemon_figures.on_this_machine(lambda text: print(f"[bench] {text}", flush=True))
    except Exception as exc:  # noqa: BLE001 - printed as not measured, with the reason
        on_host = {"error": f"{type(exc).__name__}: {exc}"[:400]}
    results = Path(tempfile.mkdtemp(prefix="iscsi-agent-bench-"))
    print(
        f"booting {kernel.name} in QEMU for the host-side figures (one run, several minutes) ...", flush=True
    )
    guest = [sys.executable, "-m", "bench.guest", str(results), python, *guest_flags]
    code = run_streaming(kernel, results, ROOT, guest, vm_timeout(guest_flags))
    figures = results / "bench.json"
    if not figures.exists():
        print(f"bench: the VM run wrote no figures (exit {code}); logs in {results}", file=sys.stderr)
        return 1
    data = json.loads(figures.read_text())
    if why_not:
        data["os-brick unavailable"] = why_not
    data["daemon on this machine"] = on_host
    print()
    print(render(data))
    print(f"\n(raw figures and guest logs: {results})")
    return 0 if code == 0 else 1
