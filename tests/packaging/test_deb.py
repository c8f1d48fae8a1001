"""`make deb` builds a Debian package that lintian passes, that installs what an operator needs, whose
upgrade leaves the socket accepting and detaches nothing, and whose purge keeps a journal that still
records an attachment.

The package is built once, with Debian's tooling, into a temporary folder; the maintainer scripts
are read from it and the purge step is run against a temporary state folder.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from iscsi_agent.journal.model import AttachmentState
from iscsi_agent.journal.store import FILE_NAME, Journal
from tests.unit.journal.fakes import ATTACHMENT, an_attachment
from tests.vmsystemd.debs import make_deb

ROOT = Path(__file__).resolve().parents[2]
STATE = "/var/lib/iscsi-agent"
SYSTEM_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"

pytestmark = [
    pytest.mark.allow_subprocess,
    pytest.mark.skipif(shutil.which("dpkg") is None, reason="not a Debian machine (no dpkg)"),
]


def run(
    *argv: str | Path, check: bool = False, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in argv], check=check, capture_output=True, text=True, timeout=120, env=env
    )


@pytest.fixture(scope="module")
def deb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    package, error = make_deb(ROOT, tmp_path_factory.mktemp("deb"))
    assert package is not None, error
    return package


@pytest.fixture(scope="module")
def scripts(deb: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    control = tmp_path_factory.mktemp("control")
    run("dpkg-deb", "--control", deb, control, check=True)
    return control


def test_make_deb_names_the_package_by_the_version_in_setup_py(deb: Path):
    version = re.search(r'version="([^"]+)"', (ROOT / "setup.py").read_text())
    assert version is not None
    assert deb.name == f"iscsi-agent_{version[1]}_all.deb"


def test_lintian_reports_no_error_and_no_warning(deb: Path):
    report = (deb.parent / "lintian.txt").read_text()
    assert not [line for line in report.splitlines() if line.startswith(("E:", "W:"))], report


def test_the_package_installs_the_programs_the_units_and_the_configuration(deb: Path):
    listing = run("dpkg-deb", "--contents", deb, check=True).stdout
    files = {line.split()[-1].removeprefix(".") for line in listing.splitlines()}
    assert {
        "/usr/bin/iscsi-agent",
        "/usr/bin/iscsi-agentctl",
        "/lib/systemd/system/iscsi-agent.service",
        "/lib/systemd/system/iscsi-agent.socket",
        "/etc/iscsi-agent/agent.conf",
        "/usr/lib/python3/dist-packages/iscsi_agent/daemon.py",
    } <= files
    assert not [name for name in files if "ontap_sim" in name or "/tests/" in name]


def test_the_libvirt_hook_is_installed_executable_where_libvirt_looks_for_it(deb: Path, tmp_path: Path):
    run("dpkg-deb", "--extract", deb, tmp_path, check=True)
    hook = tmp_path / "etc/libvirt/hooks/qemu.d/iscsi-agent"
    assert hook.read_text() == (ROOT / "libvirt/qemu.d/iscsi-agent").read_text()
    assert hook.stat().st_mode & 0o777 == 0o755
    assert (tmp_path / "usr/bin/iscsi-agent-libvirt-hook").is_file()


def test_a_first_installation_restarts_a_running_libvirtd_so_that_it_finds_the_hook(scripts: Path):
    """libvirtd looks for hook scripts only when it starts; running domains survive its restart."""
    postinst = (scripts / "postinst").read_text()
    restart = "deb-systemd-invoke try-restart libvirtd.service"
    assert restart in postinst
    assert '-z "$2"' in _enclosing_if(postinst, restart)


def test_the_units_are_installed_exactly_as_the_tree_has_them(deb: Path, tmp_path: Path):
    run("dpkg-deb", "--extract", deb, tmp_path, check=True)
    for name in ("iscsi-agent.service", "iscsi-agent.socket"):
        assert (tmp_path / "lib/systemd/system" / name).read_text() == (ROOT / "systemd" / name).read_text()


def test_agent_conf_is_a_conffile_only_root_reads_made_from_the_example(
    deb: Path, scripts: Path, tmp_path: Path
):
    assert set((scripts / "conffiles").read_text().split()) == {
        "/etc/iscsi-agent/agent.conf",
        "/etc/libvirt/hooks/qemu.d/iscsi-agent",  # what is under /etc is the operator's to change
    }
    listing = run("dpkg-deb", "--contents", deb, check=True).stdout
    (entry,) = [line for line in listing.splitlines() if line.endswith("./etc/iscsi-agent/agent.conf")]
    assert entry.split()[:2] == ["-rw-------", "root/root"]
    run("dpkg-deb", "--extract", deb, tmp_path, check=True)
    assert (tmp_path / "etc/iscsi-agent/agent.conf").read_text() == (ROOT / "agent.conf.example").read_text()


def test_it_depends_on_debian_libraries_and_open_iscsi_and_recommends_multipath(deb: Path):
    def field(name: str) -> set[str]:
        value = run("dpkg-deb", "--field", deb, name, check=True).stdout
        return {part.strip().split()[0] for part in value.split(",") if part.strip()}

    assert {
        "open-iscsi",
        "python3-requests",
        "python3-lxml",
        "python3-pyroute2",
        "python3-apscheduler",
        "python3-prometheus-client",
        "python3-sdnotify",
    } <= field("Depends")
    assert field("Recommends") == {"multipath-tools"}


def test_installation_enables_and_starts_the_socket_but_not_the_unconfigured_service(scripts: Path):
    postinst = (scripts / "postinst").read_text()
    assert "deb-systemd-helper enable 'iscsi-agent.socket'" in postinst
    assert "deb-systemd-invoke start 'iscsi-agent.socket'" in postinst
    enable_service = "deb-systemd-helper enable 'iscsi-agent.service'"
    assert "debian-installed 'iscsi-agent.service'" in _enclosing_if(postinst, enable_service)
    assert not re.search(r"invoke (start|\$_dh_action) 'iscsi-agent\.service'", postinst)
    assert "install -d -m 0700 -o root -g root /var/lib/iscsi-agent" in postinst


def test_an_upgrade_never_stops_the_socket_and_only_restarts_a_running_agent(scripts: Path):
    """The socket keeps accepting (clients queue) while the agent restarts; the agent's SIGTERM
    detaches nothing (iscsi_agent/daemon.py), so a restart of a running agent is safe."""
    assert not (scripts / "preinst").exists() or "stop" not in (scripts / "preinst").read_text()
    prerm = (scripts / "prerm").read_text()
    stops = [line for line in prerm.splitlines() if "deb-systemd-invoke stop" in line]
    assert stops and all('"$1" = remove' in _enclosing_if(prerm, line) for line in stops)
    postinst = (scripts / "postinst").read_text()
    assert not re.search(r"restart\S* 'iscsi-agent\.socket'", postinst)
    assert "deb-systemd-invoke try-restart 'iscsi-agent.service'" in postinst
    assert not re.search(r"(?<!try-)restart 'iscsi-agent\.service'", postinst)


def test_purge_removes_the_state_when_the_journal_records_no_attachment(scripts: Path, tmp_path: Path):
    state = tmp_path / "state"
    with Journal.open(state / FILE_NAME) as journal:
        journal.put_attachment(ATTACHMENT)
        journal.remove_attachment(ATTACHMENT.lun_uuid)
    done = _purge(scripts, state, tmp_path)
    assert done.returncode == 0, done.stderr
    assert not state.exists()


@pytest.mark.parametrize("state_of_it", [AttachmentState.ATTACHED, AttachmentState.DETACHING])
def test_purge_keeps_the_state_and_says_why_while_the_journal_records_an_attachment(
    scripts: Path, tmp_path: Path, state_of_it: AttachmentState
):
    state = tmp_path / "state"
    with Journal.open(state / FILE_NAME) as journal:
        journal.put_attachment(an_attachment(state=state_of_it))
    done = _purge(scripts, state, tmp_path)
    assert done.returncode == 0, done.stderr
    assert (state / FILE_NAME).exists()
    assert f"keeping {state}: its journal records 1 attachment(s)" in done.stderr


def test_purge_keeps_a_state_whose_journal_cannot_be_read(scripts: Path, tmp_path: Path):
    state = tmp_path / "state"
    state.mkdir()
    (state / FILE_NAME).write_bytes(b"not a journal")
    done = _purge(scripts, state, tmp_path)
    assert (state / FILE_NAME).exists()
    assert "its journal cannot be read" in done.stderr


def _purge(scripts: Path, state: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """The package's postrm, run for `purge` against ``state`` instead of /var/lib/iscsi-agent, with
    deb-systemd-helper stubbed out (it would touch this machine's systemd state)."""
    postrm = (scripts / "postrm").read_text()
    assert f"STATE={STATE}\n" in postrm
    script = tmp_path / "postrm"
    script.write_text(postrm.replace(f"STATE={STATE}\n", f"STATE={state}\n"))
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    (stubs / "deb-systemd-helper").write_text("#!/bin/sh\nexit 0\n")
    (stubs / "deb-systemd-helper").chmod(0o755)
    env = dict(os.environ, PATH=f"{stubs}:{SYSTEM_PATH}")
    return run("sh", script, "purge", env=env)


def _enclosing_if(script: str, line: str) -> str:
    """The text from the top-level `if` that encloses ``line`` (its first occurrence) up to it."""
    before = script[: script.index(line)]
    return before.rsplit("\nif ", 1)[-1]
