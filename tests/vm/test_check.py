"""`iscsi-agent check` on a real host: the guest's initiator name, iscsiadm, iscsid, multipathd and its
configuration, node records, routing table, and the simulated array; a host set up wrong, then put right."""

import io
import shlex
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from iscsi_agent.cli import main
from ontap_sim import Simulator
from tests.vm.cleanup import reset_initiator

MULTIPATH_CONF = Path("/etc/multipath.conf")
# What an operator gets wrong: friendly names (overrides reach every device, the built-in NETAPP
# entry included), find_multipaths yes, and the NETAPP entry's queueing and dev_loss_tmo changed.
WRONG_MULTIPATH_CONF = """\
defaults {
    user_friendly_names yes
    find_multipaths yes
    polling_interval 2
    uxsock_timeout 30000
}
devices {
    device {
        vendor "NETAPP"
        product "LUN"
        no_path_retry fail
        dev_loss_tmo 60
    }
}
overrides {
    user_friendly_names yes
}
"""


def run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)


def reconfigure_multipathd(text: str, applied: Callable[[str], bool]) -> str:
    """Write multipath.conf, have multipathd read it again, and wait until `show config` shows it."""
    MULTIPATH_CONF.write_text(text)
    assert run(["multipathd", "reconfigure"]).returncode == 0
    deadline = time.monotonic() + 90
    while True:
        shown = run(["multipathd", "show", "config"]).stdout
        if applied(shown):
            return shown
        assert time.monotonic() < deadline, "multipathd did not take the new configuration"
        time.sleep(1)


def findings(output: str) -> dict[str, tuple[str, str, str]]:
    """name -> (status, detail, fix) from check's report: a step a line, an indented `fix:` line under it."""
    found: dict[str, tuple[str, str, str]] = {}
    name = ""
    for line in output.splitlines():
        if line.startswith(" " * 9 + "fix: "):
            status, detail, _ = found[name]
            found[name] = (status, detail, line.removeprefix(" " * 9 + "fix: "))
        else:
            name = line[9:24].strip()
            found[name] = (line[:8].strip(), line[25:], "")
    return found


@pytest.fixture
def array() -> Iterator[Simulator]:
    sim = Simulator()
    sim.start()
    try:
        yield sim
    finally:
        sim.stop()


def check(tmp_path: Path, sim: Simulator, extra: str = "") -> tuple[int, str]:
    url = urlsplit(sim.base_url)
    conf = tmp_path / "agent.conf"
    conf.unlink(missing_ok=True)
    conf.touch(mode=0o600)  # it holds the password: the agent refuses it readable by everyone
    conf.write_text(
        f"[array]\nhostname = {url.hostname}\nport = {url.port}\nscheme = http\n"
        f"username = admin\npassword = netapp1!\nvserver = svm1\n{extra}"
    )
    out = io.StringIO()
    code = main(["check", "--config", str(conf)], out=out)
    print(out.getvalue())
    return code, out.getvalue()


def test_check_passes_on_the_guest_against_the_simulated_array(tmp_path, initiator_iqn, array):
    code, output = check(tmp_path, array)
    steps = findings(output)
    assert code == 0
    assert initiator_iqn in steps["initiator name"][1]
    assert "iscsiadm version" in steps["iscsiadm"][1]
    assert steps["iscsid"] == ("ok", "listening on @ISCSIADM_ABSTRACT_NAMESPACE", "")
    assert steps["multipathd"][0] == "ok" and steps["multipathd"][1].startswith("pid ")
    assert steps["find_multipaths"][:2] == (
        "ok",
        "strict: multipathd leaves the agent's single-path disks alone ([iscsi] multipath = false)",
    )
    assert "over REST" in steps["array"][1]
    assert "127.0.0.1:3260 via lo, 127.0.0.2:3260 via lo" in steps["portals"][1]


def test_a_host_set_up_wrong_is_reported_with_each_fix_and_passes_once_they_are_applied(tmp_path, array):
    right = MULTIPATH_CONF.read_text()
    placeholder = tmp_path / "initiatorname.iscsi"
    placeholder.write_text("InitiatorName=iqn.1993-08.org.debian:01:\n")
    multipath = "[iscsi]\nmultipath = true\n"
    try:
        code, output = check(tmp_path, array, multipath)
        assert code == 0, "the guest as the VM tier sets it up passes"
        target = findings(output)["iscsi service"][1].removeprefix("target ")
        node = ["iscsiadm", "-m", "node", "-T", target, "-p", "127.0.0.1:3260"]
        # a record left at iscsid.conf's defaults (scan auto), as another tool's discovery leaves it, set to log in at boot
        assert run([*node, "-o", "new"]).returncode == 0
        assert run([*node, "-o", "update", "-n", "node.startup", "-v", "automatic"]).returncode == 0
        reconfigure_multipathd(WRONG_MULTIPATH_CONF, lambda shown: "dev_loss_tmo 60\n" in shown)

        code, output = check(tmp_path, array, f"{multipath}[agent]\ninitiator_name_file = {placeholder}\n")
        steps = findings(output)
        assert code == 1
        assert steps["initiator name"][0] == "FAILED" and "is a placeholder" in steps["initiator name"][1]
        assert steps["initiator name"][2].startswith('echo "InitiatorName=$(iscsi-iname')
        assert steps["mpath names"][0] == "FAILED"
        assert steps["mpath names"][1].startswith("user_friendly_names yes (overrides)")
        assert steps["mpath names"][2] == (
            "user_friendly_names no in overrides of /etc/multipath.conf, then multipathd reconfigure"
        )
        assert steps["find_multipaths"][0] == "ok" and steps["find_multipaths"][1].startswith("on: ")
        assert "the agent registers each LUN's WWID (multipath -a" in steps["find_multipaths"][1]
        netapp = 'devices { device { vendor "NETAPP" product "LUN" } }'
        assert steps["no_path_retry"][0] == "warning"
        assert steps["no_path_retry"][1].startswith(f"fail ({netapp})")
        assert steps["no_path_retry"][2] == (
            f"no_path_retry queue in {netapp} of /etc/multipath.conf, then multipathd reconfigure"
        )
        assert steps["dev_loss_tmo"][0] == "warning" and steps["dev_loss_tmo"][1].startswith(f"60 ({netapp})")
        assert steps["node records"][0] == "warning"
        assert steps["node records"][1].startswith(
            f"{target} at 127.0.0.1:3260 node.startup = automatic, node.session.scan = auto"
        )
        fix = steps["node records"][2]
        assert fix.startswith(f"iscsiadm -m node -T {target} -o update")

        # put right: the printed iscsiadm command itself, and the guest's own multipath.conf back
        assert run(shlex.split(fix)).returncode == 0
        reconfigure_multipathd(right, lambda shown: "no_path_retry 2" in shown)
        code, output = check(tmp_path, array, multipath)
        steps = findings(output)
        assert code == 0
        assert steps["mpath names"][0] == "ok" and steps["dev_loss_tmo"][0] == "ok"
        assert steps["node records"] == (
            "ok",
            f"1 of {target}: node.startup and node.session.scan manual",
            "",
        )
    finally:
        if MULTIPATH_CONF.read_text() != right:
            reconfigure_multipathd(right, lambda shown: "no_path_retry 2" in shown)
        reset_initiator()
