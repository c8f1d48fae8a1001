"""This host's iSCSI initiator name: read from open-iscsi's name file and checked against RFC 3720/3721.

The name is what the array's igroup must list, so a wrong one turns into a login the array
refuses much later; it is checked here, with the file and line in the error.
"""

from __future__ import annotations

import re
from pathlib import Path

from iscsi_agent.host.errors import InitiatorNameError
from iscsi_agent.host.paths import HostPaths

DEFAULT_NAME_FILE = "/etc/iscsi/initiatorname.iscsi"
KEY = "InitiatorName"
MAX_NAME_BYTES = 223  # RFC 3720 section 3.2.6.1

# iqn.YYYY-MM.reversed.domain[:anything]; labels are letters, digits and inner hyphens.
_LABEL = r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?"
_IQN = re.compile(rf"iqn\.(\d{{4}})-(\d{{2}})\.{_LABEL}(?:\.{_LABEL})*(?::[a-z0-9.:-]*)?")
_EUI = re.compile(r"eui\.[0-9A-Fa-f]{16}")
_NAA = re.compile(r"naa\.(?:[0-9A-Fa-f]{16}|[0-9A-Fa-f]{32})")


def iscsi_name_problem(name: str) -> str | None:
    """Why ``name`` is not a valid iSCSI name (iqn., eui. or naa. format), or None when it is."""
    if not name:
        return "the name is empty"
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        return f"the name is longer than {MAX_NAME_BYTES} bytes"
    kind = name[:4].lower()
    if kind == "iqn.":
        return _iqn_problem(name)
    if kind == "eui.":
        return None if _EUI.fullmatch(name) else "an eui. name is 'eui.' followed by 16 hex digits"
    if kind == "naa.":
        return None if _NAA.fullmatch(name) else "an naa. name is 'naa.' followed by 16 or 32 hex digits"
    return "the name does not start with iqn., eui. or naa."


def _iqn_problem(name: str) -> str | None:
    if name != name.lower():
        return "iSCSI names are lower case (RFC 3722 maps case away; the array compares lower case)"
    bad = sorted({char for char in name if not (char.isascii() and (char.isalnum() or char in ".-:"))})
    if bad:
        return f"the name has characters outside a-z, 0-9, '.', '-', ':': {''.join(bad)!r}"
    match = _IQN.fullmatch(name)
    if not match:
        return "an iqn. name is iqn.YYYY-MM.reversed.domain[:unique] (e.g. iqn.1993-08.org.debian:01:abc)"
    if not 1 <= int(match.group(2)) <= 12:
        return f"month {match.group(2)} in the iqn. date is not 01-12"
    return None


# Prefixes open-iscsi's iscsi-iname and the distributions' packages put before the part they generate.
GENERATOR_PREFIXES = (
    "iqn.2005-03.org.open-iscsi",
    "iqn.1993-08.org.debian",
    "iqn.1993-08.org.debian:01",
    "iqn.2004-10.com.ubuntu",
    "iqn.1994-05.com.redhat",
)
# RFC 2606's documentation domains, reversed as an iqn. name spells them.
_EXAMPLE_DOMAIN = re.compile(r"iqn\.\d{4}-\d{2}\.(com|org|net)\.example(?:[.:]|$)")


def placeholder_problem(name: str) -> str | None:
    """Why a valid name is still a template rather than this host's own, or None.

    Hosts cloned from one image, or a name file never generated, give the array the same name for
    many hosts: an igroup meant for one then admits them all.
    """
    if name.endswith(":"):
        return "the part after the last ':' is empty (a template whose unique part was never generated)"
    if name in GENERATOR_PREFIXES:
        return "it is only open-iscsi's or a distribution's prefix, with no part of this host's own"
    match = _EXAMPLE_DOMAIN.match(name)
    if match:
        return f"example.{match.group(1)} is a documentation domain (a name copied from an example)"
    return None


def parse_initiator_name(text: str, source: str) -> str:
    """The InitiatorName in an open-iscsi name file. Parses::

    ## DO NOT EDIT OR REMOVE THIS FILE!
    InitiatorName=iqn.1993-08.org.debian:01:55d7b2b7e2e
    """
    found: tuple[int, str] | None = None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or key.strip() != KEY:
            continue
        if found is not None:
            raise InitiatorNameError(
                f"{source} line {number}: a second {KEY} (the first is on line {found[0]})",
                file=source,
                line=number,
            )
        name = value.strip()
        problem = iscsi_name_problem(name)
        if problem:
            raise InitiatorNameError(
                f"{source} line {number}: {name!r} is not a valid iSCSI name: {problem}",
                file=source,
                line=number,
                name=name,
            )
        found = (number, name)
    if found is None:
        raise InitiatorNameError(f"{source} has no {KEY}= line", file=source, line=None)
    return found[1]


def read_initiator_name(paths: HostPaths, name_file: str = DEFAULT_NAME_FILE) -> str:
    """Read and check this host's initiator name from ``name_file`` (taken under the host root)."""
    path: Path = paths.under_root(name_file)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise InitiatorNameError(
            f"{name_file} does not exist (is open-iscsi installed?)", file=name_file, line=None
        ) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise InitiatorNameError(f"{name_file} cannot be read: {exc}", file=name_file, line=None) from exc
    return parse_initiator_name(text, name_file)
