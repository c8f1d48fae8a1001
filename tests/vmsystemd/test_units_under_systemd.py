"""The shipped units under a real systemd (PID 1 in the VM): verified and rated by
``systemd-analyze security``, socket-activated, serving an attach, a detach, a reconciler pass and
a multipath attach under the unit's sandbox (which refuses them nothing), restarted by the watchdog
when wedged or after a crash, and stopped cleanly; Debian's Prometheus scraping one run of it
answers every dashboard query with series and evaluates every alert rule. Then the Debian package in place of the repo's
units and venv: installed from the .deb alone, upgraded to a later build with a volume attached and
written (nothing detached, the data reads back, the new agent takes over), removed and purged.

One boot answers every test here (tests/vmsystemd/guest.py runs the phases in order); each test
judges one phase from what the guest recorded, and prints the guest's own lines as evidence.
ISCSI_AGENT_SKIP_VM=1 skips the tier; missing prerequisites fail it, as in the VM tier.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.monitoring.test_rules import alert_queries
from tests.vmsystemd import boot

pytestmark = pytest.mark.allow_subprocess  # starting vng is the point; the guest touches its own kernel
_run: list[boot.SystemdRun] = []


@pytest.fixture(scope="module")
def run(pytestconfig: pytest.Config) -> boot.SystemdRun:
    if os.environ.get("ISCSI_AGENT_SKIP_VM") == "1":
        pytest.skip("ISCSI_AGENT_SKIP_VM=1: the systemd tier was not run")
    missing = boot.missing_prerequisites()
    if missing:
        pytest.fail("the systemd VM tier cannot run; missing: " + ", ".join(missing) + " (run `make deps`)")
    if not _run:
        _run.append(boot.run_in_vm(Path(str(pytestconfig.rootpath))))
    return _run[0]


def phase(run: boot.SystemdRun, name: str) -> dict[str, Any]:
    facts = run.facts.get(name)
    if facts is None:
        pytest.fail(
            f"the guest recorded no {name!r} phase (vng exit {run.exit_code}, {run.seconds:.0f}s; "
            f"logs in {run.results_dir}):\n{run.transcript[-4000:] or run.console_tail}"
        )
    assert "error" not in facts, f"{name} failed in the guest:\n{facts['error']}\nlogs in {run.results_dir}"
    print(f"[{name}]")
    for key, value in facts.items():
        shown = value if isinstance(value, str) else json.dumps(value, indent=2, ensure_ascii=False)
        print(f"{key}:\n{shown}" if "\n" in shown else f"{key}: {shown}")
    return facts


def test_systemd_is_pid_1_in_a_vm(run: boot.SystemdRun):
    print(f"one boot, {run.seconds:.0f}s wall on the host; logs in {run.results_dir}")
    booted = phase(run, "boot")
    assert booted["pid1"] == "systemd"
    assert booted["virt"] == "qemu"
    assert booted["system_state"] in ("running", "degraded"), booted
    assert "iscsi-agent" not in booted["failed_units"]


def test_systemd_analyze_verify_is_clean(run: boot.SystemdRun):
    verified = phase(run, "verify")
    assert verified["exit"] == 0 and verified["output"] == "", verified["output"]


def test_systemd_analyze_security_rates_the_service_exposure_at_most_4(run: boot.SystemdRun):
    verified = phase(run, "verify")
    # "→ Overall exposure level for iscsi-agent.service: 3.2 OK 🙂"
    exposure = float(verified["exposure"].split(": ")[1].split()[0])
    assert exposure <= 4.0, verified["exposure"]


def test_only_the_socket_listens_until_the_first_connection(run: boot.SystemdRun):
    before = phase(run, "before_activation")
    assert before["socket"]["ActiveState"] == "active" and before["socket"]["SubState"] == "listening"
    assert before["socket"]["Listen"] == "/run/iscsi-agent/agent.sock (Stream)"
    assert before["service"]["ActiveState"] == "inactive"


def test_the_first_connection_starts_the_service_with_its_status(run: boot.SystemdRun):
    activated = phase(run, "activate")
    service = activated["service"]
    assert (service["ActiveState"], service["SubState"]) == ("active", "running")
    assert service["TriggeredBy"] == "iscsi-agent.socket"
    assert service["StatusText"].startswith("serving: 0 attachments"), service["StatusText"]
    assert activated["first_status"]["exit"] == 0
    assert any("READY=1" in line for line in activated["notifications"]), activated["notifications"]
    assert activated["listener"], "the agent did not say it took the socket systemd passed"
    assert 'Status: "serving:' in activated["systemctl_status"]


def test_attach_through_the_activated_socket_gives_the_luns_device(run: boot.SystemdRun):
    attached = phase(run, "attach")
    answer = attached["ctl"]["answer"]
    assert attached["ctl"]["exit"] == 0, answer
    assert answer["device"] == attached["expected_device"]
    assert attached["device_exists"] and attached["resolved"].startswith("/dev/sd")
    assert attached["service"]["StatusText"].startswith("serving: 1 attachments, 1 sessions")


def test_the_watchdog_restarts_a_wedged_agent_and_the_socket_still_serves(run: boot.SystemdRun):
    watched = phase(run, "watchdog")
    before, after = watched["before"], watched["after"]
    assert watched["restart_seconds"] is not None, watched["journal"]
    assert int(after["NRestarts"]) == int(before["NRestarts"]) + 1
    assert after["MainPID"] != before["MainPID"] and watched["old_pid_gone"]
    assert (after["ActiveState"], after["SubState"]) == ("active", "running")
    assert any("Watchdog timeout" in line for line in watched["journal"]), watched["journal"]
    listed = watched["list_after"]
    assert listed["exit"] == 0, listed
    assert [a["volume"] for a in listed["answer"]["attachments"]] == ["/vol/vol1/lun1"]


def test_detach_after_the_restart(run: boot.SystemdRun):
    detached = phase(run, "detach")
    assert detached["ctl"]["exit"] == 0 and detached["ctl"]["answer"]["detached"] is True
    assert detached["device_gone"]


def test_a_reconciler_pass_through_the_socket_removes_a_disk_the_backend_unmapped(run: boot.SystemdRun):
    passed = phase(run, "reconcile")
    assert passed["attach"]["exit"] == 0 and passed["stale_before"], passed["attach"]
    assert passed["reconcile"]["exit"] == 0, passed["reconcile"]
    actions = [(a["action"], a["reason"], a["done"]) for a in passed["reconcile"]["answer"]["actions"]]
    assert ("remove_device", "lun_unmapped", True) in actions
    assert passed["stale"] not in passed["disks_after"]
    assert passed["detach"]["exit"] == 0, passed["detach"]


def test_a_multipath_attach_and_detach_under_the_unit(run: boot.SystemdRun):
    multipath = phase(run, "multipath")
    assert multipath["attach"]["exit"] == 0, multipath["attach"]
    assert multipath["attach"]["answer"]["device"] == multipath["expected_device"]
    assert multipath["resolved"].startswith("/dev/dm-") and len(multipath["slaves"]) == 2
    assert multipath["detach"]["exit"] == 0 and multipath["device_gone"], multipath["detach"]
    assert multipath["maps_after"] == [] and multipath["disks_after"] == []


def test_an_agent_killed_mid_attach_is_restarted_by_systemd_and_rolls_the_attach_back(run: boot.SystemdRun):
    crashed = phase(run, "crash")
    before, after = crashed["before"], crashed["after"]
    assert crashed["killed_attach"]["exit"] != 0  # the client saw the agent die under its request
    assert crashed["restart_seconds"] is not None, crashed["journal"]
    assert int(after["NRestarts"]) == int(before["NRestarts"]) + 1 and after["MainPID"] != before["MainPID"]
    assert any("fault point attach.scan.done reached" in line for line in crashed["journal"])
    assert any("status=9/KILL" in line for line in crashed["journal"]), crashed["journal"]
    assert any("recovering 1 operation" in line for line in crashed["journal"]), crashed["journal"]
    assert crashed["extended"], "the agent did not extend systemd's start timeout for its recovery"
    assert crashed["maps_after"] == [] and crashed["sessions_after"] == [] and crashed["disks_after"] == []
    assert crashed["list_after"]["answer"]["attachments"] == []


def test_every_dashboard_query_returns_series_from_prometheus_scraping_one_run_of_the_agent(
    run: boot.SystemdRun,
):
    shown = phase(run, "dashboard")
    assert shown["before"]["WatchdogUSec"] == "30s"  # the shipped unit's, not the tier's 5 s
    assert shown["after"]["MainPID"] == shown["before"]["MainPID"]  # one run: no restart in the window
    assert shown["held"]["exit"] == 0, shown["held"]
    assert shown["reconcile"]["reconcile"]["exit"] == 0, shown["reconcile"]
    assert shown["failed_attach"]["exit"] != 0, shown["failed_attach"]  # the array refused its map
    assert shown["released"]["exit"] == 0, shown["released"]
    failing = {expr: answer for expr, answer in shown["queries"].items() if answer["status"] != "success"}
    assert failing == {}
    empty = [
        f"{answer['title']}: {expr}" for expr, answer in shown["queries"].items() if answer["series"] == 0
    ]
    assert empty == []


def test_prometheus_evaluates_every_shipped_alert_rule_against_the_agent_without_error(run: boot.SystemdRun):
    rules = phase(run, "dashboard")["rules"]
    assert len(rules) == len(alert_queries())
    assert [rule for rule in rules if rule["health"] != "ok"] == []


def test_systemctl_stop_is_a_clean_exit(run: boot.SystemdRun):
    stopped = phase(run, "stop")
    service = stopped["service"]
    assert stopped["exit"] == 0
    assert (service["ActiveState"], service["Result"]) == ("inactive", "success")
    assert (service["ExecMainCode"], service["ExecMainStatus"]) == ("1", "0")  # exited, status 0
    assert any("STOPPING=1" in line for line in stopped["stopping"]), stopped["stopping"]
    assert stopped["socket"]["ActiveState"] == "active"  # the socket stays for the next start


def test_the_sandbox_refused_the_agent_nothing_it_needed(run: boot.SystemdRun):
    # a path, device or system call the unit withholds shows as EPERM, EACCES or EROFS in its journal
    assert phase(run, "sandbox")["denied"] == []


def test_the_package_builds_for_the_upgrade_test(run: boot.SystemdRun):
    assert run.deb_build_error == ""


def test_the_deb_alone_installs_the_agent_on_debians_python_and_enables_the_socket(run: boot.SystemdRun):
    installed = phase(run, "deb_install")
    assert installed["dpkg"]["exit"] == 0, installed["dpkg"]["output"]
    socket = installed["socket"]
    assert (socket["UnitFileState"], socket["ActiveState"]) == ("enabled", "active")
    assert socket["FragmentPath"] == "/lib/systemd/system/iscsi-agent.socket"
    service = installed["service"]
    assert installed["enable_exit"] == 0 and (service["ActiveState"], service["SubState"]) == (
        "active",
        "running",
    )
    assert service["FragmentPath"] == "/lib/systemd/system/iscsi-agent.service"
    assert installed["main_command"][:2] == ["/usr/bin/python3", "/usr/bin/iscsi-agent"]
    assert installed["entry_point_owner"] == "iscsi-agent: /usr/bin/iscsi-agent"
    assert installed["conf_mode"] == "0o600" and installed["state_mode"] == "0o700"
    attached = installed["attach"]
    assert attached["exit"] == 0 and installed["device"].startswith("/dev/disk/by-id/wwn-0x"), attached


def test_an_upgrade_with_a_volume_attached_detaches_nothing_and_the_new_agent_takes_over(
    run: boot.SystemdRun,
):
    upgraded = phase(run, "deb_upgrade")
    installed = phase(run, "deb_install")
    assert upgraded["dpkg"]["exit"] == 0, upgraded["dpkg"]["output"]
    assert upgraded["version"].endswith("+upgrade1")
    assert upgraded["takeover_seconds"] is not None
    assert upgraded["after"]["MainPID"] != upgraded["before"]["MainPID"]
    assert upgraded["socket_after"] == upgraded["socket_before"]  # never stopped: clients queued
    assert upgraded["sessions_after"] == upgraded["sessions_before"] != []
    assert upgraded["client_during"]["exit"] == 0, upgraded["client_during"]["output"]
    listed = upgraded["list_after"]["answer"]["attachments"]
    assert [(a["volume"], a["device"]) for a in listed] == [("/vol/vol1/lun1", installed["device"])]
    assert upgraded["read_sha256"] == installed["written_sha256"]  # read past the page cache


def test_removing_the_package_detaches_nothing_and_purge_keeps_a_journal_that_records_an_attachment(
    run: boot.SystemdRun,
):
    removed = phase(run, "deb_remove")
    assert removed["remove"]["exit"] == 0, removed["remove"]["output"]
    assert removed["service_after_remove"]["ActiveState"] == "inactive"
    assert removed["socket_after_remove"]["ActiveState"] == "inactive"  # no client starts what is gone
    assert removed["device_after_remove"] and removed["sessions_after"] == removed["sessions_before"] != []
    assert removed["purge"]["exit"] == 0, removed["purge"]["output"]
    assert "keeping /var/lib/iscsi-agent: its journal records 1 attachment(s)" in removed["purge"]["output"]
    assert removed["journal_kept"] and not removed["conf_dir_after_purge"]
