"""Boots the VM and runs the demo inside; its lines stream here as they happen. Exit code: the demo's."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from tests.vmtier.boot import find_kernel, missing_prerequisites, run_streaming

ROOT = Path(__file__).resolve().parent.parent
DEMO_TIMEOUT = 30 * 60.0  # a boot that hangs (seen once) must not hang the command with it


def main() -> int:
    missing = missing_prerequisites()
    if missing:
        print(f"demo: missing {', '.join(missing)} (make deps installs them)", file=sys.stderr)
        return 2
    kernel = find_kernel()
    assert kernel is not None
    results = Path(tempfile.mkdtemp(prefix="iscsi-agent-demo-"))
    print(f"booting {kernel.name} in QEMU (software emulation, about 15 s) ...", flush=True)
    code = run_streaming(
        kernel, results, ROOT, [sys.executable, "-m", "demo.guest", str(results)], DEMO_TIMEOUT
    )
    if code is None:
        print(f"demo: the VM did not finish within {DEMO_TIMEOUT:g} s; logs in {results}", file=sys.stderr)
        return 1
    print(f"demo finished with exit code {code}; logs in {results}")
    return code


if __name__ == "__main__":
    sys.exit(main())
