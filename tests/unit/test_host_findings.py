"""The host's findings of `iscsi-agent check`, judged from captured text: each names what it found and the fix."""

from pathlib import Path

import pytest

from iscsi_agent.findings import Status
from iscsi_agent.host.command import CommandResult
from iscsi_agent.host.iscsiadm import parse_records
from iscsi_agent.host_findings import (
    initiator_step,
    iscsid_step,
    multipath_steps,
    multipathd_step,
    node_records_step,
)

CAPTURED = Path(__file__).parent / "host" / "captured"
TARGET = "iqn.1992-08.com.netapp:sn.4b1d6e0f2a9c11efb3c1005056a7d2e4:vs.3"
OTHER_TARGET = "iqn.1992-08.com.netapp:sn.77aa6e0f2a9c11efb3c1005056a7d2e4:vs.9"
# /proc/net/unix with iscsid's listening socket (the socket unit's or iscsid's own) and a client
UNIX_WITH_ISCSID = """\
Num       RefCount Protocol Flags    Type St Inode Path
000000006d4ead56: 00000002 00000000 00010000 0001 01 21947 @ISCSIADM_ABSTRACT_NAMESPACE
000000009177a110: 00000002 00000000 00010000 0001 01 21950 @/org/kernel/linux/storage/multipathd
00000000a1b2c3d4: 00000003 00000000 00000000 0001 03  1223
"""
UNIX_WITHOUT = """\
Num       RefCount Protocol Flags    Type St Inode Path
000000006d4ead56: 00000003 00000000 00000000 0001 03  1223
"""


def captured(name: str) -> str:
    return (CAPTURED / name).read_text()


def by_name(steps):
    return {step.name: step for step in steps}


# -- daemons --------------------------------------------------------------------------------------


def test_iscsid_is_running_when_its_socket_listens():
    step = iscsid_step(UNIX_WITH_ISCSID)
    assert step.status is Status.OK and "@ISCSIADM_ABSTRACT_NAMESPACE" in step.detail


def test_no_iscsid_socket_fails_with_how_to_start_it():
    step = iscsid_step(UNIX_WITHOUT)
    assert step.status is Status.FAILED
    assert "nothing listens on @ISCSIADM_ABSTRACT_NAMESPACE" in step.detail
    assert step.fix == "systemctl enable --now iscsid.socket (or start iscsid)"


def test_multipathd_that_answers_is_running():
    step = multipathd_step(CommandResult(("multipathd", "show", "daemon"), 0, "pid 412 idle\n", ""), True)
    assert step.status is Status.OK and step.detail == "pid 412 idle"


def test_multipathd_that_does_not_answer_fails_only_when_multipath_is_on():
    silent = CommandResult(("multipathd", "show", "daemon"), 1, "", "")
    needed = multipathd_step(silent, True)
    assert needed.status is Status.FAILED and "does not answer (exit 1)" in needed.detail
    assert needed.fix == "systemctl enable --now multipathd (or start multipathd)"
    unused = multipathd_step(silent, False)
    assert unused.status is Status.OK and unused.detail == "not running; not used ([iscsi] multipath = false)"


# -- multipath settings ----------------------------------------------------------------------------


def test_the_stock_netapp_entry_passes_every_multipath_setting():
    steps = by_name(multipath_steps(captured("multipath-config-stock.txt"), multipath=True))
    assert {step.status for step in steps.values()} == {Status.OK}
    assert steps["mpath names"].detail.startswith("user_friendly_names no: maps are /dev/mapper/3600a0980")
    assert "multipath -a" in steps["find_multipaths"].detail
    assert steps["no_path_retry"].detail.startswith("queue (")
    assert steps["dev_loss_tmo"].detail.startswith("infinity (")


def test_the_vm_tiers_finite_no_path_retry_passes_with_a_warning_naming_the_guide():
    steps = by_name(multipath_steps(captured("multipath-config-vm-tier.txt"), multipath=True))
    step = steps["no_path_retry"]
    assert step.status is Status.WARNING
    assert step.detail.startswith('2 (devices { device { vendor "NETAPP" product "LUN C-Mode" } })')
    assert "NetApp's guide: queue" in step.detail
    assert step.fix == (
        'no_path_retry queue in devices { device { vendor "NETAPP" product "LUN C-Mode" } } '
        "of /etc/multipath.conf, then multipathd reconfigure"
    )
    assert steps["mpath names"].status is Status.OK and steps["dev_loss_tmo"].status is Status.OK


def test_friendly_names_from_overrides_fail_and_deviations_from_the_guide_warn():
    steps = by_name(multipath_steps(captured("multipath-config-overridden.txt"), multipath=True))
    names = steps["mpath names"]
    assert names.status is Status.FAILED
    assert names.detail.startswith("user_friendly_names yes (overrides): maps are named mpathN")
    assert (
        names.fix == "user_friendly_names no in overrides of /etc/multipath.conf, then multipathd reconfigure"
    )
    assert steps["no_path_retry"].status is Status.WARNING and "fail" in steps["no_path_retry"].detail
    assert steps["dev_loss_tmo"].status is Status.WARNING
    assert steps["dev_loss_tmo"].fix.startswith("dev_loss_tmo infinity in devices")
    finding = steps["find_multipaths"]
    assert finding.status is Status.OK and finding.detail.startswith("on: ")
    assert "the agent registers each LUN's WWID (multipath -a" in finding.detail


def test_a_blacklisted_netapp_lun_fails_with_the_entry_named():
    text = captured("multipath-config-stock.txt").replace(
        "blacklist {\n", 'blacklist {\n\tdevice {\n\t\tvendor "NETAPP"\n\t\tproduct ".*"\n\t}\n', 1
    )
    steps = by_name(multipath_steps(text, multipath=True))
    step = steps["mpath claims"]
    assert step.status is Status.FAILED
    assert 'blacklist { device { vendor "NETAPP" product ".*" } }' in step.detail
    assert step.fix.startswith("remove that entry, or add")


def test_without_multipath_only_whether_multipathd_would_claim_single_paths_is_judged():
    greedy = captured("multipath-config-stock.txt").replace(
        'find_multipaths "strict"', 'find_multipaths "off"'
    )
    steps = multipath_steps(greedy, multipath=False)
    assert [step.name for step in steps] == ["find_multipaths"]
    assert steps[0].status is Status.WARNING
    assert "builds a map over every path" in steps[0].detail
    assert (
        steps[0].fix
        == "find_multipaths strict in defaults of /etc/multipath.conf, then multipathd reconfigure"
    )
    assert multipath_steps(captured("multipath-config-stock.txt"), multipath=False)[0].status is Status.OK


# -- initiator name --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("iqn.1993-08.org.debian:01:", "the part after the last ':' is empty"),
        ("iqn.2005-03.org.open-iscsi", "only open-iscsi's or a distribution's prefix"),
        ("iqn.1994-05.com.redhat", "only open-iscsi's or a distribution's prefix"),
        ("iqn.2001-04.com.example:host7", "example.com is a documentation domain"),
    ],
)
def test_a_placeholder_initiator_name_fails_with_how_to_generate_one(name, why):
    step = initiator_step(name, "/etc/iscsi/initiatorname.iscsi")
    assert step.status is Status.FAILED and why in step.detail
    assert step.fix == (
        'echo "InitiatorName=$(iscsi-iname -p iqn.1993-08.org.debian:01)" > /etc/iscsi/initiatorname.iscsi, '
        "then restart iscsid (before any login: the array knows the host by this name)"
    )


def test_a_generated_initiator_name_passes():
    step = initiator_step("iqn.1993-08.org.debian:01:55d7b2b7e2e", "/etc/iscsi/initiatorname.iscsi")
    assert step.status is Status.OK
    assert step.detail == "iqn.1993-08.org.debian:01:55d7b2b7e2e (/etc/iscsi/initiatorname.iscsi)"


# -- node records ----------------------------------------------------------------------------------


def record_text(
    target: str = TARGET, address: str = "127.0.0.1", startup: str = "manual", scan: str = "manual"
):
    text = captured("node-record-configured.txt")
    return (
        text.replace(TARGET, target)
        .replace("node.conn[0].address = 127.0.0.1", f"node.conn[0].address = {address}")
        .replace("node.startup = manual", f"node.startup = {startup}")
        .replace("node.session.scan = manual", f"node.session.scan = {scan}")
    )


def test_records_as_the_agent_writes_them_pass():
    step = node_records_step(parse_records(record_text() + record_text(address="127.0.0.2")), TARGET)
    assert step.status is Status.OK
    assert step.detail == f"2 of {TARGET}: node.startup and node.session.scan manual"


def test_records_a_plain_discovery_reset_are_reported_with_the_update_that_fixes_them():
    # a discovery without -o new leaves every record at iscsid.conf's defaults (captured in the VM)
    defaults = captured("node-record-after-discovery.txt")
    step = node_records_step(
        parse_records(defaults + record_text(address="127.0.0.2", startup="automatic")), TARGET
    )
    assert step.status is Status.WARNING
    assert step.detail == (
        f"{TARGET} at 127.0.0.1:3260 node.session.scan = auto; "
        "at 127.0.0.2:3260 node.startup = automatic: at boot open-iscsi logs in to automatic records, "
        "and a login with scan auto brings in every LUN mapped to this host"
    )
    assert step.fix == (
        f"iscsiadm -m node -T {TARGET} -o update -n node.startup -v manual -n node.session.scan -v manual"
    )


def test_records_of_other_targets_are_not_judged():
    records = parse_records(record_text(OTHER_TARGET, startup="automatic", scan="auto"))
    step = node_records_step(records, TARGET)
    assert step.status is Status.OK and step.detail == f"none of {TARGET} yet"


def test_without_the_arrays_target_every_netapp_targets_records_are_judged():
    records = parse_records(record_text(OTHER_TARGET, startup="automatic"))
    step = node_records_step(records, None)
    assert step.status is Status.WARNING and step.detail.startswith(f"{OTHER_TARGET} at 127.0.0.1:3260")


def test_an_alias_for_an_ontap_wwid_fails_the_names_step_naming_the_lun():
    text = captured("multipath-config-stock.txt") + (
        'multipaths {\n\tmultipath {\n\t\twwid "3600a098038314461522451712f316969"\n\t\talias "db1"\n\t}\n}\n'
    )
    step = by_name(multipath_steps(text, multipath=True))["mpath names"]
    assert step.status is Status.FAILED
    assert step.detail == (
        "multipaths { multipath { wwid 3600a098038314461522451712f316969 alias db1 } }: that LUN's map is "
        "/dev/mapper/db1, not /dev/mapper/3600a098038314461522451712f316969 as the agent answers"
    )
    assert step.fix == "remove alias db1 from multipaths in /etc/multipath.conf, then multipathd reconfigure"
