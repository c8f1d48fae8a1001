"""The host's findings of `iscsi-agent check`: pure judgements over what the host printed, each with its fix.

The multipath settings are those of NetApp's host configuration guide for ONTAP LUNs (ONTAP SAN
host configuration, the DM-Multipath parameter table for each distribution), which are also
multipath-tools' own built-in NETAPP "LUN" entry (Debian 12's 0.9.4 prints it with
``multipath -t``): ``user_friendly_names no``, ``no_path_retry queue``, ``dev_loss_tmo infinity``.
The first is what the agent's answers rely on (``/dev/mapper/3600a0980…``); the other two are the
guide's, so a host that chose otherwise passes with a warning that says what it gives up.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from iscsi_agent.findings import Status, Step
from iscsi_agent.host.command import CommandError, CommandResult
from iscsi_agent.host.errors import InitiatorNameError
from iscsi_agent.host.initiator import placeholder_problem
from iscsi_agent.host.multipath_config import (
    NOT_SET,
    Section,
    aliases,
    blacklisting,
    effective,
    parse_config,
)
from iscsi_agent.naa import NETAPP_NAA_PREFIX, normalize_wwid
from iscsi_agent.portal import bracketed

# How an ONTAP LUN answers INQUIRY; the hardware table matches these.
VENDOR, PRODUCT = "NETAPP", "LUN C-Mode"
NETAPP_ENTRY = 'devices { device { vendor "NETAPP" product "LUN" } }'
NETAPP_TARGET_PREFIX = "iqn.1992-08.com.netapp:"
# iscsid listens here (or systemd's iscsid.socket for it); iscsiadm connects to it.
ISCSID_SOCKET = "@ISCSIADM_ABSTRACT_NAMESPACE"
REGISTERS = "the agent registers each LUN's WWID (multipath -a 3600a0980…) before it adds the LUN's paths"


def _config_fix(key: str, value: str, where: str) -> str:
    return f"{key} {value} in {where} of /etc/multipath.conf, then multipathd reconfigure"


def iscsid_step(unix_sockets: str | None) -> Step:
    """From /proc/net/unix: a listening abstract socket ``@ISCSIADM_ABSTRACT_NAMESPACE`` is iscsid,
    or systemd's socket unit that starts it on the first request (so it holds under both)."""
    fix = "systemctl enable --now iscsid.socket (or start iscsid)"
    if unix_sockets is None:
        return Step("iscsid", Status.FAILED, "cannot read /proc/net/unix to find iscsid's socket", fix)
    for line in unix_sockets.splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 8 and fields[7] == ISCSID_SOCKET:
            return Step("iscsid", Status.OK, f"listening on {ISCSID_SOCKET}")
    return Step("iscsid", Status.FAILED, f"nothing listens on {ISCSID_SOCKET}: iscsiadm cannot log in", fix)


def multipathd_step(answer: CommandResult | CommandError, required: bool) -> Step:
    """From ``multipathd show daemon``: it answers ("pid 412 idle") when the daemon runs."""
    if isinstance(answer, CommandResult) and answer.exit_code == 0:
        return Step("multipathd", Status.OK, answer.stdout.strip() or "answers")
    if not required:
        return Step("multipathd", Status.OK, "not running; not used ([iscsi] multipath = false)")
    if isinstance(answer, CommandResult):
        said = (answer.stderr.strip() or answer.stdout.strip()).splitlines()
        seen = f"does not answer (exit {answer.exit_code}){': ' + said[-1] if said else ''}"
    else:
        seen = f"does not answer: {answer}"
    return Step(
        "multipathd",
        Status.FAILED,
        f"{seen}; [iscsi] multipath = true needs it",
        "systemctl enable --now multipathd (or start multipathd)",
    )


def multipath_steps(config_text: str, *, multipath: bool) -> list[Step]:
    """The effective configuration for an ONTAP LUN, from ``multipathd show config``.

    Without ``[iscsi] multipath`` only one thing matters: that multipathd leaves the single-path
    disks the agent hands out alone.
    """
    config = parse_config(config_text)
    if not config.sections("defaults"):
        return [
            Step(
                "multipath conf",
                Status.FAILED if multipath else Status.WARNING,
                "multipathd show config printed no defaults section",
                "multipathd reconfigure, and read multipathd's log (journalctl -u multipathd)",
            )
        ]
    if not multipath:
        return [_single_paths(config)]
    return [
        _claims(config),
        _names(config),
        _find_multipaths(config),
        _no_path_retry(config),
        _dev_loss(config),
    ]


def _claims(config: Section) -> Step:
    entry = blacklisting(config, VENDOR, PRODUCT)
    if entry is None:
        return Step("mpath claims", Status.OK, f"no blacklist device entry takes {VENDOR} {PRODUCT}")
    return Step(
        "mpath claims",
        Status.FAILED,
        f"ONTAP LUNs are blacklisted by {entry}: multipathd builds no map for them",
        'remove that entry, or add blacklist_exceptions { device { vendor "NETAPP" product "LUN" } } '
        "to /etc/multipath.conf, then multipathd reconfigure",
    )


def _names(config: Section) -> Step:
    setting = effective(config, "user_friendly_names", VENDOR, PRODUCT)
    aliased = [
        (wwid, alias) for wwid, alias in aliases(config) if normalize_wwid(wwid).startswith(NETAPP_NAA_PREFIX)
    ]
    if setting.value in (None, "no") and aliased:
        wwid, alias = aliased[0]
        return Step(
            "mpath names",
            Status.FAILED,
            f"multipaths {{ multipath {{ wwid {wwid} alias {alias} }} }}: that LUN's map is /dev/mapper/{alias}, "
            f"not /dev/mapper/{wwid} as the agent answers",
            f"remove alias {alias} from multipaths in /etc/multipath.conf, then multipathd reconfigure",
        )
    if setting.value in (None, "no"):
        return Step(
            "mpath names",
            Status.OK,
            f"user_friendly_names no: maps are /dev/mapper/3600a0980… (by WWID), as the agent answers ({setting.source})",
        )
    return Step(
        "mpath names",
        Status.FAILED,
        f"user_friendly_names {setting.value} ({setting.source}): maps are named mpathN from the bindings "
        "file, not /dev/mapper/3600a0980… as the agent answers; such a name differs between hosts",
        _config_fix("user_friendly_names", "no", setting.source),
    )


_FIND_MULTIPATHS = {
    "strict": "multipathd maps only WWIDs in its wwids file",
    "on": "multipathd maps a WWID once two paths show it, or one in its wwids file",
    "smart": "multipathd holds a new path back for find_multipaths_timeout and maps it if a second one comes",
    "off": "multipathd maps every path it is not blacklisted from",
    "greedy": "multipathd maps every path it is not blacklisted from",
}
_ALIASES = {"yes": "on", "no": "off"}


def _find_multipaths(config: Section) -> Step:
    value = effective(config, "find_multipaths", VENDOR, PRODUCT).value or "strict"
    what = _FIND_MULTIPATHS.get(_ALIASES.get(value, value), "a value this check does not know")
    return Step(
        "find_multipaths", Status.OK, f"{value}: {what}; {REGISTERS}, so its maps come up with any value"
    )


def _single_paths(config: Section) -> Step:
    value = effective(config, "find_multipaths", VENDOR, PRODUCT).value or "strict"
    if _ALIASES.get(value, value) in ("off", "greedy"):
        return Step(
            "find_multipaths",
            Status.WARNING,
            f"{value}: multipathd builds a map over every path it is not blacklisted from, the single-path "
            "disks the agent hands out ([iscsi] multipath = false) among them, and holds them",
            _config_fix("find_multipaths", "strict", "defaults"),
        )
    return Step(
        "find_multipaths",
        Status.OK,
        f"{value}: multipathd leaves the agent's single-path disks alone ([iscsi] multipath = false)",
    )


def _no_path_retry(config: Section) -> Step:
    setting = effective(config, "no_path_retry", VENDOR, PRODUCT)
    where = setting.source if setting.source != NOT_SET else NETAPP_ENTRY
    if setting.value == "queue":
        return Step(
            "no_path_retry",
            Status.OK,
            f"queue ({setting.source}): I/O waits for a path to come back, as the guide says",
        )
    if setting.value in (None, "fail", "0"):
        lost = "I/O fails as soon as every path is down"
    else:
        lost = f"I/O fails after {setting.value} path checks (polling_interval) with every path down"
    return Step(
        "no_path_retry",
        Status.WARNING,
        f"{setting.value or 'unset'} ({setting.source}): {lost}; NetApp's guide: queue",
        _config_fix("no_path_retry", "queue", where),
    )


def _dev_loss(config: Section) -> Step:
    setting = effective(config, "dev_loss_tmo", VENDOR, PRODUCT)
    where = setting.source if setting.source != NOT_SET else NETAPP_ENTRY
    if setting.value == "infinity":
        return Step("dev_loss_tmo", Status.OK, f"infinity ({setting.source}), as the guide says")
    return Step(
        "dev_loss_tmo",
        Status.WARNING,
        f"{setting.value or 'unset'} ({setting.source}): NetApp's guide: infinity (multipathd sets it on "
        "FC and SAS remote ports, so a lost path is kept for its return; it ignores it on iSCSI paths, "
        "whose session recovery_tmo it sets from fast_io_fail_tmo)",
        _config_fix("dev_loss_tmo", "infinity", where),
    )


def initiator_step(found: str | InitiatorNameError, name_file: str) -> Step:
    """The name the array's igroup must hold: present, valid, and this host's own (not a template)."""
    fix = (
        f'echo "InitiatorName=$(iscsi-iname -p iqn.1993-08.org.debian:01)" > {name_file}, '
        "then restart iscsid (before any login: the array knows the host by this name)"
    )
    if isinstance(found, InitiatorNameError):
        return Step("initiator name", Status.FAILED, str(found), fix)
    problem = placeholder_problem(found)
    if problem:
        return Step(
            "initiator name", Status.FAILED, f"{found} ({name_file}) is a placeholder: {problem}", fix
        )
    return Step("initiator name", Status.OK, f"{found} ({name_file})")


_AGENTS = (("node.startup", "manual"), ("node.session.scan", "manual"))


def _portal(record: Mapping[str, str]) -> str:
    return f"{bracketed(record.get('node.conn[0].address', '?'))}:{record.get('node.conn[0].port', '?')}"


def node_records_step(records: Sequence[Mapping[str, str]], target_iqn: str | None) -> Step:
    """Node records of the SVM's target (or, without it, of any NetApp target) that log in at boot
    or scan every LUN: another tool's discovery resets records so (README, the session step)."""
    whose = target_iqn or "a NetApp target"
    ours = [
        record
        for record in records
        if (
            record.get("node.name") == target_iqn
            if target_iqn
            else record.get("node.name", "").startswith(NETAPP_TARGET_PREFIX)
        )
    ]
    if not ours:
        return Step("node records", Status.OK, f"none of {whose} yet")
    bad: dict[str, list[str]] = {}
    for record in ours:
        problems = [
            f"{name} = {record[name]}" for name, wanted in _AGENTS if record.get(name, wanted) != wanted
        ]
        if problems:
            bad.setdefault(record["node.name"], []).append(f"at {_portal(record)} {', '.join(problems)}")
    if not bad:
        return Step(
            "node records", Status.OK, f"{len(ours)} of {whose}: node.startup and node.session.scan manual"
        )
    found = "; ".join(f"{iqn} {'; '.join(portals)}" for iqn, portals in bad.items())
    return Step(
        "node records",
        Status.WARNING,
        f"{found}: at boot open-iscsi logs in to automatic records, and a login with scan auto brings in "
        "every LUN mapped to this host",
        "; ".join(
            f"iscsiadm -m node -T {iqn} -o update -n node.startup -v manual -n node.session.scan -v manual"
            for iqn in bad
        ),
    )
