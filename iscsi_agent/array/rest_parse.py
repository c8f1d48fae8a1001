"""Pure parsers from ONTAP REST records (decoded JSON) to the array model."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from iscsi_agent.array.errors import ArrayResponseError
from iscsi_agent.array.model import (
    ChapAuth,
    ChapCredentials,
    Igroup,
    IscsiService,
    Lif,
    Lun,
    LunMap,
    Mapped,
    Version,
)
from iscsi_agent.array.rest import field, int_field, optional_field
from iscsi_agent.portal import Portal

Record = Mapping[str, Any]


def parse_version(cluster: Record) -> Version:
    """``GET /api/cluster?fields=version``:
    ``{"name": "cluster1", "version": {"full": "NetApp Release 9.11.1: …", "generation": 9, "major": 11, "minor": 1}}``."""
    api = "GET /api/cluster"
    return Version(
        int_field(cluster, "version.generation", api),
        int_field(cluster, "version.major", api),
        int_field(cluster, "version.minor", api),
        str(optional_field(cluster, "version.full", "")),
    )


def parse_lun(record: Record) -> Lun:
    """``/api/storage/luns`` record: ``{"uuid": "bd6b…", "name": "/vol/vol1/lun1", "os_type": "linux",
    "serial_number": "ZlAFA?QMnBdX", "space": {"size": 10737418240}, "status": {"state": "online", "mapped": true}}``."""
    api = "GET /api/storage/luns"
    return Lun(
        path=str(field(record, "name", api)),
        uuid=str(field(record, "uuid", api)),
        serial=str(field(record, "serial_number", api)),
        size=int_field(record, "space.size", api),
        os_type=str(field(record, "os_type", api)),
        mapped=bool(field(record, "status.mapped", api)),
        online=optional_field(record, "status.state", "online") == "online",
        svm=str(optional_field(record, "svm.name", "")),
        mapped_to=_mapped_to(record, api),
        node=str(optional_field(record, "location.node.name", "")),
    )


def _mapped_to(record: Record, api: str) -> frozenset[str] | None:
    """The igroups of the LUN's ``lun_maps`` (``[{"igroup": {"name": "host1", "uuid": "…"},
    "logical_unit_number": 0}]``); None when the record has none to say (the field not sent)."""
    if "lun_maps" not in record:
        return frozenset() if optional_field(record, "status.mapped") is False else None
    return frozenset(str(field(m, "igroup.name", api)) for m in _objects(record, "lun_maps", api))


def parse_igroup(record: Record) -> Igroup:
    """``/api/protocols/san/igroups`` record: ``{"uuid": "…", "name": "host1", "protocol": "iscsi",
    "os_type": "linux", "initiators": [{"name": "iqn.1994-05.com.redhat:abc"}]}``."""
    api = "GET /api/protocols/san/igroups"
    return Igroup(
        name=str(field(record, "name", api)),
        protocol=str(optional_field(record, "protocol", "")),
        os_type=str(optional_field(record, "os_type", "")),
        initiators=frozenset(str(field(i, "name", api)) for i in _objects(record, "initiators", api)),
        uuid=optional_field(record, "uuid"),
    )


def parse_lun_map(record: Record) -> LunMap:
    """``/api/protocols/san/lun-maps`` record: ``{"lun": {"name": "/vol/vol1/lun1", "uuid": "…"},
    "igroup": {"name": "host1", "uuid": "…"}, "logical_unit_number": 0, "reporting_nodes": [{"name": "node-01"}]}``."""
    api = "GET /api/protocols/san/lun-maps"
    return LunMap(
        lun_path=str(field(record, "lun.name", api)),
        igroup=str(field(record, "igroup.name", api)),
        lun_id=int_field(record, "logical_unit_number", api),
        lun_uuid=optional_field(record, "lun.uuid"),
        igroup_uuid=optional_field(record, "igroup.uuid"),
        reporting_nodes=tuple(str(field(n, "name", api)) for n in _objects(record, "reporting_nodes", api)),
    )


def parse_map_reply(record: Record) -> Mapped:
    """The record a ``POST /api/protocols/san/lun-maps?return_records=true`` echoes: at least its
    ``logical_unit_number``; ``igroup.uuid`` and ``reporting_nodes`` are read when it carries them."""
    api = "POST /api/protocols/san/lun-maps"
    nodes = _objects(record, "reporting_nodes", api) if "reporting_nodes" in record else None
    return Mapped(
        int_field(record, "logical_unit_number", api),
        optional_field(record, "igroup.uuid"),
        tuple(str(field(n, "name", api)) for n in nodes) if nodes is not None else None,
    )


def _objects(record: Record, name: str, api: str) -> list[Record]:
    """A list of objects (absent means empty); any other shape is an error, not an empty list."""
    value = optional_field(record, name) or []
    if not isinstance(value, list) or not all(isinstance(item, Mapping) for item in value):
        raise ArrayResponseError(api, f"{name} is not a list of objects: {value!r}", missing=name)
    return value


def parse_portal(record: Record) -> Lif | None:
    """``/api/network/ip/interfaces`` record; None for a disabled or down interface.

    ``{"name": "iscsi_lif1", "ip": {"address": "10.0.0.11"}, "enabled": true, "state": "up",
    "location": {"node": {"name": "node-01"}, "home_node": {"name": "node-01"}}}``
    """
    if optional_field(record, "enabled", True) is False or optional_field(record, "state") == "down":
        return None
    return Lif(
        # REST has no port for LIFs: the iSCSI port cannot change on ONTAP
        portal=Portal(str(field(record, "ip.address", "GET /api/network/ip/interfaces"))),
        tpgt=None,
        current_node=optional_field(record, "location.node.name"),
        home_node=optional_field(record, "location.home_node.name"),
        name=str(optional_field(record, "name", "")),
    )


def parse_iscsi_service(record: Record) -> IscsiService:
    """``/api/protocols/san/iscsi/services`` record: ``{"enabled": true,
    "target": {"name": "iqn.1992-08.com.netapp:sn.574caf71890911e8a6b7005056b4ea79:vs.2", "alias": "svm1"}}``."""
    return IscsiService(
        target_iqn=str(field(record, "target.name", "GET /api/protocols/san/iscsi/services")),
        alias=str(optional_field(record, "target.alias", "")),
        enabled=bool(optional_field(record, "enabled", True)),
    )


def parse_chap(record: Record) -> ChapCredentials:
    """``/api/protocols/san/iscsi/credentials`` record (passwords are write-only, never returned):
    ``{"initiator": "iqn…", "authentication_type": "chap", "chap": {"inbound": {"user": "in"}, "outbound": {"user": "out"}}}``."""
    api = "GET /api/protocols/san/iscsi/credentials"
    text = str(field(record, "authentication_type", api))
    try:
        auth = ChapAuth.parse(text)
    except ValueError as exc:
        raise ArrayResponseError(
            api, f"unknown authentication_type {text!r}", missing="authentication_type"
        ) from exc
    return ChapCredentials(
        initiator=str(field(record, "initiator", api)),
        auth=auth,
        inbound_user=optional_field(record, "chap.inbound.user") or None,
        outbound_user=optional_field(record, "chap.outbound.user") or None,
    )
