"""`iscsi-agent check` against the simulator, a synthetic host root, a fake runner and a fake routing table."""

import copy
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from iscsi_agent.array.connect import connect
from iscsi_agent.check import Checker, Status, passed, render
from iscsi_agent.config import parse_config
from iscsi_agent.host.paths import HostPaths
from iscsi_agent.host.routes import Route
from ontap_sim import Simulator
from ontap_sim.seed import DEFAULT_SEED
from tests.fakes import FakeRunner
from tests.unit.test_host_findings import UNIX_WITH_ISCSID, UNIX_WITHOUT, captured, record_text

IQN = "iqn.1994-05.com.redhat:compute-7"
UNROUTED = "192.0.2.1"


class FakeRoutes:
    """Loopback is reachable through lo; everything else has no route."""

    def lookup_all(self, addresses):
        return {
            address: Route(address, True, interface="lo")
            if address.startswith("127.")
            else Route(address, False, problem="Network is unreachable")
            for address in addresses
        }


def host_root(tmp_path: Path, initiator_line: str = f"InitiatorName={IQN}\n", iscsid: bool = True) -> Path:
    name_file = tmp_path / "etc/iscsi/initiatorname.iscsi"
    name_file.parent.mkdir(parents=True)
    name_file.write_text(initiator_line)
    unix = tmp_path / "proc/net/unix"
    unix.parent.mkdir(parents=True)
    unix.write_text(UNIX_WITH_ISCSID if iscsid else UNIX_WITHOUT)
    return tmp_path


def config_for(
    sim: Simulator, api: str = "rest", password: str = "netapp1!", vserver: str = "svm1", iscsi: str = ""
):
    url = urlsplit(sim.base_url)
    return parse_config(
        f"[array]\nhostname = {url.hostname}\nport = {url.port}\nscheme = http\napi = {api}\n"
        f"username = admin\npassword = {password}\nvserver = {vserver}\n[iscsi]\n{iscsi}\n",
        Path("agent.conf"),
    )


def checker(root: Path, runner: FakeRunner | None = None) -> Checker:
    if runner is None:
        runner = FakeRunner()
        runner.reply(["iscsiadm", "--version"], stdout="iscsiadm version 2.1.8\n")
        runner.reply(["iscsiadm", "-m", "node"], exit_code=21, stderr="iscsiadm: No records found\n")
        runner.reply(["multipathd"], exit_code=1)  # not running: a host without multipath
    return Checker(HostPaths(root), runner, connect, FakeRoutes())


def by_name(steps):
    return {step.name: step for step in steps}


def test_a_healthy_host_and_array_pass_every_step(ontap_sim, tmp_path):
    steps = checker(host_root(tmp_path)).run(config_for(ontap_sim))
    print(render(steps))
    assert passed(steps)
    found = by_name(steps)
    assert found["initiator name"].detail.startswith(IQN)
    assert found["iscsiadm"].detail == "iscsiadm version 2.1.8"
    assert "ONTAP 9.13.1 over REST" in found["array"].detail
    assert found["svm"].detail == "svm1"
    assert found["iscsi service"].detail.startswith("target iqn.1992-08.com.netapp:sn.")
    assert found["portals"].detail == "127.0.0.1:3260 via lo, 127.0.0.2:3260 via lo"


def test_problems_on_the_host_are_all_reported_and_the_array_still_checked(ontap_sim, tmp_path):
    runner = FakeRunner()
    runner.reply(["iscsiadm"], exit_code=127, stderr="iscsiadm: not installed")
    steps = by_name(
        checker(host_root(tmp_path, "InitiatorName=iqn.bad name\n"), runner).run(config_for(ontap_sim))
    )
    assert steps["initiator name"].status is Status.FAILED and "line 1" in steps["initiator name"].detail
    assert steps["iscsiadm"].status is Status.FAILED and "not installed" in steps["iscsiadm"].detail
    assert steps["array"].status is Status.OK and steps["portals"].status is Status.OK


def test_wrong_credentials_fail_the_array_step_and_skip_what_depends_on_it(ontap_sim, tmp_path):
    steps = by_name(checker(host_root(tmp_path)).run(config_for(ontap_sim, password="wrong")))
    assert steps["array"].status is Status.FAILED and "401" in steps["array"].detail
    assert {steps[name].status for name in ("svm", "iscsi service", "portals")} == {Status.SKIPPED}


def test_an_unknown_svm_fails_its_step(ontap_sim, tmp_path):
    steps = by_name(checker(host_root(tmp_path)).run(config_for(ontap_sim, api="zapi", vserver="svm9")))
    assert steps["svm"].status is Status.FAILED and "svm9" in steps["svm"].detail


@pytest.fixture
def remote_lif_sim():
    seed = copy.deepcopy(DEFAULT_SEED)
    seed["svms"][0]["lifs"][0]["ip"] = UNROUTED
    seed["svms"][0]["iscsi"] = {"enabled": False}
    sim = Simulator(seed=seed)
    sim.start()
    yield sim
    sim.stop()


def test_unroutable_portals_and_a_disabled_service_are_named(remote_lif_sim, tmp_path):
    steps = by_name(checker(host_root(tmp_path)).run(config_for(remote_lif_sim)))
    assert steps["iscsi service"].status is Status.FAILED and "disabled" in steps["iscsi service"].detail
    assert steps["portals"].status is Status.OK
    assert (
        steps["portals"].detail
        == f"127.0.0.2:3260 via lo; unreachable: {UNROUTED}:3260 (Network is unreachable)"
    )


def test_clear_text_http_passes_with_a_warning_that_names_the_risk(ontap_sim, tmp_path):
    steps = checker(host_root(tmp_path)).run(config_for(ontap_sim))
    step = by_name(steps)["array security"]
    assert step.status is Status.WARNING and passed(steps)
    assert step.detail.startswith("scheme = http:") and "password (HTTP Basic)" in step.detail
    assert "warning  array security  scheme = http: the password" in render(steps)


def tls_config(sim: Simulator, tls_options: str):
    url = urlsplit(sim.base_url)
    return parse_config(
        f"[array]\nhostname = {url.hostname}\nport = {url.port}\napi = rest\nusername = admin\n"
        f"password = netapp1!\nvserver = svm1\n{tls_options}\n",
        Path("agent.conf"),
    )


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_an_unchecked_certificate_passes_with_a_warning(ontap_sim_tls, tmp_path):
    steps = by_name(checker(host_root(tmp_path)).run(tls_config(ontap_sim_tls, "verify_tls = false")))
    assert steps["array security"].status is Status.WARNING
    assert steps["array security"].detail.startswith(
        "verify_tls = false: the array's certificate is not checked"
    )
    assert steps["array"].status is Status.OK


def test_a_checked_certificate_is_ok_and_says_against_what(ontap_sim_tls, tmp_path):
    config = tls_config(ontap_sim_tls, f"ca_bundle = {ontap_sim_tls.ca_cert_path}")
    steps = by_name(checker(host_root(tmp_path)).run(config))
    assert steps["array security"].status is Status.OK
    assert (
        steps["array security"].detail == f"HTTPS, certificate checked against {ontap_sim_tls.ca_cert_path}"
    )


def test_a_checked_certificate_without_a_ca_bundle_names_the_system_store(ontap_sim_tls, tmp_path):
    steps = by_name(checker(host_root(tmp_path)).run(tls_config(ontap_sim_tls, "")))
    assert steps["array security"].status is Status.OK
    assert steps["array security"].detail == (
        "HTTPS, certificate checked against the system's CAs in /etc/ssl/certs/ca-certificates.crt"
    )


def test_a_ca_bundle_that_cannot_be_read_fails_the_security_step(ontap_sim_tls, tmp_path):
    missing = tmp_path / "missing-ca.pem"
    steps = by_name(checker(host_root(tmp_path)).run(tls_config(ontap_sim_tls, f"ca_bundle = {missing}")))
    assert steps["array security"].status is Status.FAILED
    assert steps["array security"].detail == f"cannot read the CA bundle {missing}: No such file or directory"


def test_certificate_authentication_configured_in_the_file_reaches_an_array_that_requires_it(
    cert_sim, client_certs, tmp_path
):
    url = urlsplit(cert_sim.base_url)
    config = parse_config(
        f"[array]\nhostname = {url.hostname}\nport = {url.port}\napi = rest\nvserver = svm1\n"
        f"ca_bundle = {cert_sim.ca_cert_path}\nclient_cert = {client_certs.trusted.cert}\n"
        f"client_key = {client_certs.trusted.key}\nconnect_timeout = 2\n",
        Path("agent.conf"),
    )
    steps = by_name(checker(host_root(tmp_path)).run(config))
    assert steps["array"].status is Status.OK and steps["svm"].status is Status.OK
    assert steps["array security"].detail == (
        f"HTTPS, certificate checked against {cert_sim.ca_cert_path}; "
        f"authenticated by the client certificate {client_certs.trusted.cert}"
    )


def multipath_runner(config_name: str = "multipath-config-stock.txt", nodes: str = "") -> FakeRunner:
    runner = FakeRunner()
    runner.reply(["iscsiadm", "--version"], stdout="iscsiadm version 2.1.8\n")
    runner.reply(["iscsiadm", "-m", "node", "-o", "show"], stdout=nodes, exit_code=0 if nodes else 21)
    runner.reply(["multipathd", "show", "daemon"], stdout="pid 412 idle\n")
    runner.reply(["multipathd", "show", "config"], stdout=captured(config_name))
    return runner


def test_a_healthy_multipath_host_passes_the_host_steps_in_order(ontap_sim, tmp_path):
    runner = multipath_runner()
    steps = checker(host_root(tmp_path), runner).run(config_for(ontap_sim, iscsi="multipath = true"))
    print(render(steps))
    assert passed(steps)
    names = [step.name for step in steps]
    assert names == [
        "initiator name",
        "iscsiadm",
        "iscsid",
        "multipathd",
        "mpath claims",
        "mpath names",
        "find_multipaths",
        "no_path_retry",
        "dev_loss_tmo",
        "array security",
        "array",
        "svm",
        "iscsi service",
        "portals",
        "node records",
    ]
    assert by_name(steps)["node records"].detail.startswith("none of iqn.1992-08.com.netapp:sn.")
    # reads only: nothing that changes multipathd or a node record runs
    assert ("multipathd", "show", "config") in runner.argvs
    assert all(
        argv[:2] in (("iscsiadm", "--version"), ("iscsiadm", "-m"), ("multipathd", "show"))
        for argv in runner.argvs
    )


def test_a_wrongly_configured_host_fails_and_each_finding_carries_its_fix(ontap_sim, tmp_path):
    runner = multipath_runner("multipath-config-overridden.txt")
    steps = checker(host_root(tmp_path, iscsid=False), runner).run(
        config_for(ontap_sim, iscsi="multipath = true")
    )
    found = by_name(steps)
    assert not passed(steps)
    assert found["iscsid"].status is Status.FAILED and found["mpath names"].status is Status.FAILED
    shown = render(steps)
    print(shown)
    assert (
        "FAILED   mpath names     user_friendly_names yes (overrides): maps are named mpathN" in shown
        and "\n         fix: user_friendly_names no in overrides of /etc/multipath.conf, then multipathd reconfigure"
        in shown
    )


def test_node_records_of_the_svms_target_are_judged_after_the_array_names_it(ontap_sim, tmp_path):
    steps = checker(host_root(tmp_path)).run(config_for(ontap_sim))
    iqn = by_name(steps)["iscsi service"].detail.removeprefix("target ")
    runner = multipath_runner(nodes=record_text(iqn, startup="automatic"))
    steps = by_name(checker(host_root(tmp_path / "again"), runner).run(config_for(ontap_sim)))
    assert steps["node records"].status is Status.WARNING
    assert steps["node records"].detail.startswith(f"{iqn} at 127.0.0.1:3260 node.startup = automatic")
    assert steps["node records"].fix.startswith(f"iscsiadm -m node -T {iqn} -o update")


def test_a_placeholder_initiator_name_fails_the_check(ontap_sim, tmp_path):
    steps = checker(host_root(tmp_path, "InitiatorName=iqn.1993-08.org.debian:01:\n")).run(
        config_for(ontap_sim)
    )
    assert by_name(steps)["initiator name"].status is Status.FAILED and not passed(steps)


def test_a_multipathd_that_answers_but_shows_no_configuration_fails_with_multipath_on(ontap_sim, tmp_path):
    runner = FakeRunner()
    runner.reply(["iscsiadm", "--version"], stdout="iscsiadm version 2.1.8\n")
    runner.reply(["multipathd", "show", "daemon"], stdout="pid 412 idle\n")
    runner.reply(["multipathd", "show", "config"], exit_code=1, stderr="timeout receiving packet\n")
    steps = by_name(checker(host_root(tmp_path), runner).run(config_for(ontap_sim, iscsi="multipath = true")))
    step = steps["multipath conf"]
    assert step.status is Status.FAILED
    assert step.detail == "multipathd show config: exit 1: timeout receiving packet"
    assert "mpath names" not in steps


def test_each_listed_interface_missing_from_the_host_is_named_with_the_fix(ontap_sim, tmp_path):
    root = host_root(tmp_path)
    (root / "sys/class/net/lo").mkdir(parents=True)
    steps = checker(root).run(config_for(ontap_sim, iscsi="ifaces = lo, ens9f1"))
    found = by_name(steps)["ifaces"]
    assert found.status is Status.FAILED and not passed(steps)
    assert found.detail == "not on this host: ens9f1 (present: lo)"
    assert "ens9f1" in (found.fix or "") and "[iscsi] ifaces" in (found.fix or "")


def test_listed_interfaces_that_exist_pass_and_only_portals_routed_through_them_count(ontap_sim, tmp_path):
    root = host_root(tmp_path)
    (root / "sys/class/net/lo").mkdir(parents=True)
    steps = checker(root).run(config_for(ontap_sim, iscsi="ifaces = lo"))
    assert passed(steps) and by_name(steps)["ifaces"].detail == "lo"
    (root / "sys/class/net/ens9f1").mkdir(parents=True)
    steps = checker(root).run(config_for(ontap_sim, iscsi="ifaces = ens9f1"))
    portals = by_name(steps)["portals"]
    assert portals.status is Status.FAILED
    assert "; not used: 127.0.0.1:3260 (routed through lo, not a listed interface)" in portals.detail


def test_without_ifaces_there_is_no_interface_step(ontap_sim, tmp_path):
    assert "ifaces" not in by_name(checker(host_root(tmp_path)).run(config_for(ontap_sim)))
