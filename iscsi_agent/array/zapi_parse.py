"""Pure parsers from ZAPI reply elements (namespaces already dropped) to the array model."""

from __future__ import annotations

import re

from lxml import etree

from iscsi_agent.array.errors import ArrayResponseError
from iscsi_agent.array.model import (
    ChapAuth,
    ChapCredentials,
    Igroup,
    IscsiService,
    Lif,
    Lun,
    LunMap,
    Svm,
    Version,
)
from iscsi_agent.array.zapi import (
    all_texts,
    optional_bool,
    optional_int,
    optional_text,
    required_int,
    required_text,
)
from iscsi_agent.portal import Portal

_RELEASE = re.compile(r"(\d+)\.(\d+)(?:\.(\d+))?")


def parse_version(results: etree._Element, ontapi: tuple[int, int] | None = None) -> Version:
    """``system-get-version``: ``<version>NetApp Release 9.6P2: …</version>
    <version-tuple><system-version-tuple><generation>9</generation><major>6</major><minor>0</minor>…``.

    Older releases lack the tuple; then the release is read from the version text.
    """
    api = "system-get-version"
    full = optional_text(results, "version") or ""
    tuple_ = results.find("version-tuple/system-version-tuple")
    if tuple_ is not None:
        return Version(
            required_int(tuple_, "generation", api),
            required_int(tuple_, "major", api),
            required_int(tuple_, "minor", api),
            full,
            ontapi,
        )
    match = _RELEASE.search(full)
    if not match:
        raise ArrayResponseError(
            api, "reply lacks version-tuple and a readable version", missing="version-tuple"
        )
    return Version(int(match[1]), int(match[2]), int(match[3] or 0), full, ontapi)


def parse_ontapi_version(results: etree._Element) -> tuple[int, int]:
    """``system-get-ontapi-version``: ``<major-version>1</major-version><minor-version>170</minor-version>``."""
    api = "system-get-ontapi-version"
    return (required_int(results, "major-version", api), required_int(results, "minor-version", api))


def parse_svm(info: etree._Element) -> Svm:
    """``vserver-info``: ``<vserver-name>svm1</vserver-name><uuid>4d2b…</uuid><state>running</state>``."""
    return Svm(required_text(info, "vserver-name", "vserver-get-iter"), optional_text(info, "uuid"))


def parse_lun(info: etree._Element) -> Lun:
    """``lun-info``: ``<path>/vol/vol1/lun0</path><uuid>…</uuid><serial-number>2FfGI$APyN68</serial-number>
    <size>1073741824</size><multiprotocol-type>linux</multiprotocol-type><mapped>false</mapped><online>true</online>``."""
    api = "lun-get-iter"
    mapped = required_text(info, "mapped", api).lower() == "true"
    return Lun(
        path=required_text(info, "path", api),
        uuid=required_text(info, "uuid", api),
        serial=required_text(info, "serial-number", api),
        size=required_int(info, "size", api),
        os_type=required_text(info, "multiprotocol-type", api),
        mapped=mapped,
        online=optional_bool(info, "online", True),
        svm=optional_text(info, "vserver") or "",
        mapped_to=None if mapped else frozenset(),  # lun-info does not say to which igroups
        node=optional_text(info, "node") or "",
    )


def parse_igroup(info: etree._Element) -> Igroup:
    """``initiator-group-info``: ``<initiator-group-name>host1</initiator-group-name>
    <initiator-group-type>iscsi</initiator-group-type><initiator-group-os-type>linux</initiator-group-os-type>
    <initiators><initiator-info><initiator-name>iqn.1994-05.com.redhat:abc</initiator-name></initiator-info></initiators>``."""
    api = "igroup-get-iter"
    return Igroup(
        name=required_text(info, "initiator-group-name", api),
        protocol=optional_text(info, "initiator-group-type") or "",
        os_type=optional_text(info, "initiator-group-os-type") or "",
        initiators=frozenset(all_texts(info, "initiators/initiator-info/initiator-name")),
        uuid=optional_text(info, "initiator-group-uuid"),
    )


def parse_lun_map(info: etree._Element, api: str = "lun-map-get-iter") -> LunMap:
    """``lun-map-info``: ``<path>/vol/vol1/lun0</path><initiator-group>host1</initiator-group><lun-id>0</lun-id>
    <lun-uuid>…</lun-uuid><initiator-group-uuid>…</initiator-group-uuid>
    <reporting-nodes><node-name>node-01</node-name><node-name>node-02</node-name></reporting-nodes>``."""
    return LunMap(
        lun_path=required_text(info, "path", api),
        igroup=required_text(info, "initiator-group", api),
        lun_id=required_int(info, "lun-id", api),
        lun_uuid=optional_text(info, "lun-uuid"),
        igroup_uuid=optional_text(info, "initiator-group-uuid"),
        reporting_nodes=all_texts(info, "reporting-nodes/node-name"),
    )


def parse_assigned_lun_id(results: etree._Element) -> int:
    """``lun-map`` success: ``<results status="passed"><lun-id-assigned>3</lun-id-assigned></results>``."""
    return required_int(results, "lun-id-assigned", "lun-map")


def parse_portal(entry: etree._Element) -> Lif | None:
    """``iscsi-interface-list-entry-info``; None for a disabled interface.

    ``<current-node>node-01</current-node><interface-name>iscsi_lif1</interface-name><ip-address>10.0.0.11</ip-address>
    <ip-port>3260</ip-port><is-interface-enabled>true</is-interface-enabled><tpgroup-tag>1038</tpgroup-tag>``
    """
    api = "iscsi-interface-get-iter"
    if not optional_bool(entry, "is-interface-enabled", True):
        return None
    return Lif(
        portal=Portal(required_text(entry, "ip-address", api), required_int(entry, "ip-port", api)),
        tpgt=optional_int(entry, "tpgroup-tag", api),
        current_node=optional_text(entry, "current-node"),
        home_node=None,  # ZAPI's iscsi interface list does not carry the home node
        name=optional_text(entry, "interface-name") or "",
    )


def parse_iscsi_service(info: etree._Element) -> IscsiService:
    """``iscsi-service-info``: ``<node-name>iqn.1992-08.com.netapp:sn.fa9:vs.105</node-name>
    <alias-name>svm1</alias-name><is-available>true</is-available>``."""
    return IscsiService(
        target_iqn=required_text(info, "node-name", "iscsi-service-get-iter"),
        alias=optional_text(info, "alias-name") or "",
        enabled=optional_bool(info, "is-available", True),
    )


def parse_chap(results: etree._Element, initiator: str) -> ChapCredentials:
    """``iscsi-initiator-get-auth``: ``<auth-type>CHAP</auth-type><user-name>inuser</user-name>
    <outbound-user-name>outuser</outbound-user-name>``. Secrets are never returned."""
    api = "iscsi-initiator-get-auth"
    text = required_text(results, "auth-type", api)
    try:
        auth = ChapAuth.parse(text)
    except ValueError as exc:
        raise ArrayResponseError(api, f"unknown auth-type {text!r}", missing="auth-type") from exc
    return ChapCredentials(
        initiator=initiator,
        auth=auth,
        inbound_user=optional_text(results, "user-name") or None,
        outbound_user=optional_text(results, "outbound-user-name") or None,
    )
