"""Another local user for host-side tests: uid and gid 65534 (nobody), through setpriv.

The tests run as root; what a second, unprivileged uid can do to the agent's files and sockets is
proven by really doing it as that uid, not by chown alone.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

NOBODY = 65534
TIMEOUT = 30.0  # seconds; a helper that hangs fails the test instead of the run


def argv_as_nobody(*argv: str) -> list[str]:
    return ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *argv]


def python_as_nobody(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` (a Python program, argv[1:] = ``args``) as nobody; fail on a non-zero exit."""
    return subprocess.run(
        argv_as_nobody(sys.executable, "-c", code, *args),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=True,
    )


@contextlib.contextmanager
def folder_nobody_can_reach() -> Iterator[Path]:
    """A root-owned 0755 folder under the system's temporary folder (pytest's tmp_path is 0700)."""
    path = Path(tempfile.mkdtemp(prefix="ia-uid-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
