"""The volumes other running domains on this host declare, from libvirt's status files.

While a qemu domain is active, libvirtd keeps its live XML in ``/run/libvirt/qemu/<name>.xml``
(``<domstatus>`` wrapping the ``<domain>``, metadata verbatim) and unlinks it when the domain stops
(qemuProcessRemoveDomainStatus). Reading those files answers "does another running domain use this
volume" without a libvirt connection: a hook must not call back into libvirtd, which is waiting on it.
"""

from __future__ import annotations

from pathlib import Path

from iscsi_agent.libvirt.domain import Domain, DomainXmlInvalid, parse

STATUS_DIR = Path("/run/libvirt/qemu")


def declared_elsewhere(domain: Domain, status_dir: Path = STATUS_DIR) -> dict[str, str]:
    """Each volume of ``domain`` that another running domain declares, with that domain's name."""
    wanted = set(domain.volumes)
    found: dict[str, str] = {}
    for path in sorted(status_dir.glob("*.xml")):
        try:
            other = parse(path.read_bytes())
        except (OSError, DomainXmlInvalid):
            # gone since the listing (it stopped), or unreadable; the agent still refuses to detach a
            # device an open QEMU holds, so a volume of an unreadable domain is not lost through this
            continue
        if other.name == domain.name or (domain.uuid and other.uuid == domain.uuid):
            continue
        for volume in wanted.intersection(other.volumes):
            found.setdefault(volume, other.name)
    return found
