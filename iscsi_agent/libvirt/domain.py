"""What a libvirt domain XML says about the agent's volumes: the ones it declares and its block disks.

A domain declares its volumes in its metadata, in the agent's namespace, and names the device path
the agent answers for each as a block disk's source::

    <domain type='kvm'>
      <name>vm1</name>
      <metadata>
        <ia:volumes xmlns:ia="urn:iscsi-agent:libvirt:1"><ia:volume>/vol/vol1/lun0</ia:volume></ia:volumes>
      </metadata>
      <devices>
        <disk type='block' device='disk'><source dev='/dev/disk/by-id/wwn-0x600a0980...'/>...</disk>
      </devices>
    </domain>

libvirt's status files of running domains (``<domstatus>`` around the ``<domain>``) parse the same.
The XML comes from libvirt, but a domain's definition is written by whoever may define domains: the
parser resolves no entities, loads no DTD, reaches no network, and refuses a DOCTYPE outright
(libvirt never writes one).
"""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from iscsi_agent.errors import AgentError

NAMESPACE = "urn:iscsi-agent:libvirt:1"
MAX_XML_BYTES = 4 * 1024 * 1024  # a domain with hundreds of disks is well under 1 MiB


class DomainXmlInvalid(AgentError):
    code = "domain_xml_invalid"


@dataclass(frozen=True)
class Domain:
    name: str
    uuid: str
    volumes: tuple[str, ...]  # as declared, in order, each once
    block_sources: frozenset[str]  # source dev of every <disk type='block'>


def parse(xml: bytes) -> Domain:
    """The domain in ``xml``: a ``<domain>`` document, or libvirt's ``<domstatus>`` status file."""
    if len(xml) > MAX_XML_BYTES:
        raise DomainXmlInvalid(f"domain XML of {len(xml)} bytes is over {MAX_XML_BYTES}", size=len(xml))
    parser = etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False, huge_tree=False
    )
    try:
        root = etree.fromstring(xml, parser)
    except etree.XMLSyntaxError as exc:
        raise DomainXmlInvalid(f"domain XML does not parse: {exc}") from None
    if root.getroottree().docinfo.internalDTD is not None:
        raise DomainXmlInvalid("domain XML carries a DOCTYPE, which libvirt never writes")
    domain = root if root.tag == "domain" else root.find("domain")
    if domain is None:
        raise DomainXmlInvalid(f"no <domain> element in the XML (root <{root.tag}>)", root=str(root.tag))
    return Domain(
        name=(domain.findtext("name") or "").strip(),
        uuid=(domain.findtext("uuid") or "").strip(),
        volumes=_volumes(domain),
        block_sources=frozenset(
            dev
            for source in domain.iterfind("devices/disk[@type='block']/source")
            if (dev := source.get("dev"))
        ),
    )


def _volumes(domain: etree._Element) -> tuple[str, ...]:
    found: list[str] = []
    for element in domain.iterfind(f"metadata/{{{NAMESPACE}}}volumes/{{{NAMESPACE}}}volume"):
        volume = (element.text or "").strip()
        if not volume:
            raise DomainXmlInvalid("an empty <ia:volume> in the domain's metadata")
        if volume not in found:
            found.append(volume)
    return tuple(found)
