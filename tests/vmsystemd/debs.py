"""The two Debian packages the systemd tier installs and upgrades in the guest: the tree's own
(``make deb``), and the same tree with a later version, as the next release would be.

Built on the host before the boot with Debian's tooling; the guest gets only the .deb files.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

BUILD_TIMEOUT = 30 * 60.0  # about a minute each; the first `make deb` on a machine installs the tools
UPGRADE_SUFFIX = "+upgrade1"  # sorts after the tree's own version
NOT_COPIED = (".git", ".venv", ".venv-bench", "dist", "build", ".vm-results", "__pycache__", "*.egg-info")
CHANGELOG_ENTRY = """\
iscsi-agent ({version}) bookworm; urgency=medium

  * The next release, as the systemd tier's upgrade test installs it.

 -- iscsi-agent maintainers <maintainers@iscsi-agent.example.org>  Mon, 07 Dec 2026 03:00:00 +0000

"""


@dataclass(frozen=True)
class Debs:
    """The packages in the order they are installed; ``error`` says why there are none."""

    first: Path | None
    upgrade: Path | None
    error: str = ""


def tree_version(rootdir: Path) -> str:
    """The version of the changelog's latest entry: ``iscsi-agent (0.1.0) bookworm; ...``."""
    first_line = (rootdir / "debian/changelog").read_text().splitlines()[0]
    return first_line.split("(", 1)[1].split(")", 1)[0]


def with_later_version(rootdir: Path, into: Path) -> Path:
    """A copy of the tree whose changelog starts with a later version (nothing else changes)."""
    copy = into / "iscsi-agent"
    shutil.copytree(rootdir, copy, symlinks=True, ignore=shutil.ignore_patterns(*NOT_COPIED))
    changelog = copy / "debian/changelog"
    version = tree_version(rootdir) + UPGRADE_SUFFIX
    changelog.write_text(CHANGELOG_ENTRY.format(version=version) + changelog.read_text())
    return copy


def make_deb(tree: Path, out: Path) -> tuple[Path | None, str]:
    """``make deb`` of the tree into ``out``: the package, or None and what make said."""
    made = subprocess.run(
        ["make", "-C", str(tree), "deb", f"DEB_OUT={out}"],
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
        check=False,
    )
    built = sorted(out.glob("iscsi-agent_*_all.deb"))
    if made.returncode != 0 or len(built) != 1:
        return (
            None,
            f"make deb in {tree} failed (exit {made.returncode}):\n{made.stdout[-3000:]}{made.stderr[-3000:]}",
        )
    return built[0], ""


def build(rootdir: Path, out: Path) -> Debs:
    first, error = make_deb(rootdir, out / "first")
    if first is None:
        return Debs(None, None, error)
    with tempfile.TemporaryDirectory(prefix="iscsi-agent-upgrade-") as work:
        upgrade, error = make_deb(with_later_version(rootdir, Path(work)), out / "upgrade")
    return Debs(first, upgrade, error)
