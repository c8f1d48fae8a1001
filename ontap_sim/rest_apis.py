"""The REST endpoints an iSCSI host agent uses, answered from the model.

Handlers build full records (every field the simulator knows); ``rest.select`` trims
them to what was asked for. SVM scope comes from the X-Dot-SVM-Name/-UUID headers,
``svm.*`` query filters or a body ``svm`` object, whichever the client uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ontap_sim import errors as e
from ontap_sim.errors import OntapError
from ontap_sim.model import Chap, Igroup, Lif, Lun, LunMap, State, Svm
from ontap_sim.rest import RestRequest, RestResponse, Router, collection, created, single

router = Router()
NAME_UUID = ("uuid", "name")
OWNED = ("svm.name", "svm.uuid", "uuid", "name")
LUN_EXPENSIVE = ("status.mapped", "lun_maps")
IGROUP_EXPENSIVE = ("lun_maps",)
MAP_DEFAULTS = ("svm.name", "svm.uuid", "lun.name", "lun.uuid", "igroup.name", "igroup.uuid")


@dataclass(frozen=True)
class Ctx:
    state: State
    scope: Svm | None  # from the tunnelling headers

    def visible(self, svm_name: str) -> bool:
        return self.scope is None or self.scope.name == svm_name


def handle(state: State, request: RestRequest) -> tuple[str, RestResponse]:
    """(route template for counting, response); OntapError propagates to the caller."""
    template, handler, variables = router.resolve(request.method, request.path)
    if handler is None:
        condition = e.API_NOT_FOUND if template is None else e.METHOD_NOT_ALLOWED
        raise OntapError(condition, api=f"{request.method} {request.path} is not supported")
    return template or request.path, handler(Ctx(state, _scope(state, request)), request, **variables)


def _scope(state: State, request: RestRequest) -> Svm | None:
    name, uuid = request.headers.get("x-dot-svm-name"), request.headers.get("x-dot-svm-uuid")
    if not name and not uuid:
        return None
    return state.svm(name=name or None, uuid=uuid or None)


def _owner(ctx: Ctx, request: RestRequest) -> Svm:
    """The SVM a POST acts in: body ``svm``, else the tunnelling header, else ``svm.*`` params."""
    spec = request.body.get("svm") or {}
    params = request.params
    name = spec.get("name") or params.get("svm.name")
    uuid = spec.get("uuid") or params.get("svm.uuid")
    if name or uuid:
        return ctx.state.svm(name=name, uuid=uuid)
    if ctx.scope is not None:
        return ctx.scope
    raise OntapError(e.NO_SVM_GIVEN, target="svm")


def _svm_ref(svm_name: str, state: State) -> dict[str, Any]:
    return {"name": svm_name, "uuid": state.svms[svm_name].uuid}


def _node_ref(state: State, name: str) -> dict[str, Any]:
    node = state.nodes.get(name)
    return {"name": name, "uuid": node.uuid if node else ""}


# -- records -------------------------------------------------------------------------------


def lun_record(state: State, lun: Lun) -> dict[str, Any]:
    volume = state.volumes[(lun.svm, lun.volume)]
    maps = state.maps_of_lun(lun)
    return {
        "uuid": lun.uuid,
        "name": lun.path,
        "svm": _svm_ref(lun.svm, state),
        "location": {
            "logical_unit": lun.name,
            "volume": {"name": volume.name, "uuid": volume.uuid},
            "qtree": {"name": "", "id": 0},
            "node": _node_ref(state, lun.node),
        },
        "os_type": lun.os_type,
        "class": "regular",
        "enabled": True,
        "serial_number": lun.serial,
        "serial_number_hex": lun.serial.encode("ascii").hex(),
        "space": {
            "size": lun.size,
            "used": 0,
            "scsi_thin_provisioning_support_enabled": False,
            "guarantee": {"requested": False, "reserved": False},
        },
        "status": {"state": "online", "container_state": "online", "read_only": False, "mapped": bool(maps)},
        "lun_maps": [
            {
                "logical_unit_number": m.lun_id,
                "igroup": {"name": state.igroups[m.igroup_uuid].name, "uuid": m.igroup_uuid},
            }
            for m in maps
        ],
    }


def igroup_record(state: State, igroup: Igroup) -> dict[str, Any]:
    return {
        "uuid": igroup.uuid,
        "name": igroup.name,
        "svm": _svm_ref(igroup.svm, state),
        "protocol": igroup.protocol,
        "os_type": igroup.os_type,
        "delete_on_unmap": False,
        "initiators": [{"name": i} for i in igroup.initiators],
        "lun_maps": [
            {
                "logical_unit_number": m.lun_id,
                "lun": {"name": state.luns[m.lun_uuid].path, "uuid": m.lun_uuid},
            }
            for m in state.maps_of_igroup(igroup)
        ],
    }


def map_record(state: State, lun_map: LunMap) -> dict[str, Any]:
    lun, igroup = state.luns[lun_map.lun_uuid], state.igroups[lun_map.igroup_uuid]
    return {
        "svm": _svm_ref(lun.svm, state),
        "lun": {"name": lun.path, "uuid": lun.uuid, "node": _node_ref(state, lun.node)},
        "igroup": {
            "name": igroup.name,
            "uuid": igroup.uuid,
            "os_type": igroup.os_type,
            "protocol": igroup.protocol,
            "initiators": list(igroup.initiators),
        },
        "logical_unit_number": lun_map.lun_id,
        "reporting_nodes": [_node_ref(state, n) for n in lun_map.reporting_nodes],
    }


def interface_record(state: State, lif: Lif) -> dict[str, Any]:
    node = _node_ref(state, lif.node)
    return {
        "uuid": lif.uuid,
        "name": lif.name,
        "svm": _svm_ref(lif.svm, state),
        "scope": "svm",
        "ip": {"address": lif.ip, "netmask": "8" if lif.ip.startswith("127.") else "24", "family": "ipv4"},
        "enabled": lif.enabled,
        "state": lif.state,
        "services": list(lif.services),
        "location": {
            "node": node,
            "home_node": node,
            "port": {"name": lif.port_name, "node": {"name": lif.node}},
        },
    }


def service_record(state: State, svm: Svm) -> dict[str, Any]:
    assert svm.iscsi is not None
    return {
        "svm": _svm_ref(svm.name, state),
        "enabled": svm.iscsi.enabled,
        "target": {"name": svm.iscsi.target_iqn, "alias": svm.iscsi.alias},
    }


def credential_record(state: State, entry: Chap) -> dict[str, Any]:
    """Passwords are write-only: never rendered."""
    record: dict[str, Any] = {
        "svm": _svm_ref(entry.svm, state),
        "initiator": entry.initiator,
        "authentication_type": entry.auth_type,
        "initiator_address": {"ranges": [], "masks": []},
    }
    if entry.auth_type == "chap":
        record["chap"] = {"inbound": {"user": entry.inbound_user}}
        if entry.outbound_user:
            record["chap"]["outbound"] = {"user": entry.outbound_user}
    return record


# -- cluster, nodes, SVMs, volumes ------------------------------------------------------------


@router.route("GET", "/api/cluster")
def get_cluster(ctx: Ctx, request: RestRequest) -> RestResponse:
    cluster = ctx.state.cluster
    generation, major, minor = cluster.version
    record = {
        "name": cluster.name,
        "uuid": cluster.uuid,
        "version": {"full": cluster.version_full, "generation": generation, "major": major, "minor": minor},
    }
    return single(request, record, ("name", "uuid", "version"))


def node_record(state: State, name: str) -> dict[str, Any]:
    node = state.nodes[name]
    partners = [_node_ref(state, node.ha_partner)] if node.ha_partner else []
    return {"name": node.name, "uuid": node.uuid, "ha": {"enabled": bool(partners), "partners": partners}}


@router.route("GET", "/api/cluster/nodes")
def get_nodes(ctx: Ctx, request: RestRequest) -> RestResponse:
    return collection(request, [node_record(ctx.state, n) for n in ctx.state.nodes], NAME_UUID)


@router.route("GET", "/api/cluster/nodes/{uuid}")
def get_node(ctx: Ctx, request: RestRequest, uuid: str) -> RestResponse:
    for name, node in ctx.state.nodes.items():
        if node.uuid == uuid:
            return single(request, node_record(ctx.state, name), NAME_UUID)
    raise OntapError(e.NOT_FOUND, target="uuid")


def svm_record(svm: Svm) -> dict[str, Any]:
    return {
        "name": svm.name,
        "uuid": svm.uuid,
        "state": "running",
        "subtype": "default",
        "iscsi": {"enabled": bool(svm.iscsi and svm.iscsi.enabled)},
    }


@router.route("GET", "/api/svm/svms")
def get_svms(ctx: Ctx, request: RestRequest) -> RestResponse:
    return collection(
        request, [svm_record(s) for s in ctx.state.svms.values() if ctx.visible(s.name)], NAME_UUID
    )


@router.route("GET", "/api/svm/svms/{uuid}")
def get_svm(ctx: Ctx, request: RestRequest, uuid: str) -> RestResponse:
    svm = ctx.state.svm(uuid=uuid)
    if not ctx.visible(svm.name):
        raise OntapError(e.SVM_NOT_FOUND, target="uuid", svm=uuid)
    return single(request, svm_record(svm), NAME_UUID)


@router.route("GET", "/api/storage/volumes")
def get_volumes(ctx: Ctx, request: RestRequest) -> RestResponse:
    records = [
        {
            "name": v.name,
            "uuid": v.uuid,
            "svm": _svm_ref(v.svm, ctx.state),
            "state": "online",
            "style": "flexvol",
        }
        for v in ctx.state.volumes.values()
        if ctx.visible(v.svm)
    ]
    return collection(request, records, NAME_UUID)


# -- LUNs -----------------------------------------------------------------------------------


def _lun_by_uuid(ctx: Ctx, uuid: str) -> Lun:
    return ctx.state.lun(ctx.scope.name if ctx.scope else None, uuid=uuid)


@router.route("GET", "/api/storage/luns")
def get_luns(ctx: Ctx, request: RestRequest) -> RestResponse:
    records = [lun_record(ctx.state, lun) for lun in ctx.state.luns.values() if ctx.visible(lun.svm)]
    return collection(request, records, NAME_UUID, LUN_EXPENSIVE)


@router.route("GET", "/api/storage/luns/{uuid}")
def get_lun(ctx: Ctx, request: RestRequest, uuid: str) -> RestResponse:
    return single(request, lun_record(ctx.state, _lun_by_uuid(ctx, uuid)), NAME_UUID, LUN_EXPENSIVE)


@router.route("POST", "/api/storage/luns")
def post_lun(ctx: Ctx, request: RestRequest) -> RestResponse:
    body = request.body
    path = body.get("name")
    location = body.get("location") or {}
    if not path and location.get("volume", {}).get("name") and location.get("logical_unit"):
        path = f"/vol/{location['volume']['name']}/{location['logical_unit']}"
    size = (body.get("space") or {}).get("size")
    if not path or not isinstance(size, int):
        raise OntapError(e.INVALID_INPUT, target="space.size", detail='"name" and "space.size" are required.')
    lun = ctx.state.create_lun(_owner(ctx, request), path, size, body.get("os_type", "linux"))
    return created(request, lun_record(ctx.state, lun), f"/api/storage/luns/{lun.uuid}", LUN_EXPENSIVE)


def _requested_size(space: Any) -> int:
    """``space.size`` as ONTAP takes it: an integer, or its decimal string (cinder sends one)."""
    size = space.get("size") if isinstance(space, dict) else None
    if isinstance(size, str) and size.strip().lstrip("-").isdigit():
        return int(size)
    if isinstance(size, bool) or not isinstance(size, int):
        raise OntapError(e.LUN_SIZE_INVALID, target="space.size", size=size)
    return size


@router.route("PATCH", "/api/storage/luns/{uuid}")
def patch_lun(ctx: Ctx, request: RestRequest, uuid: str) -> RestResponse:
    """Grow a LUN (``lun resize``); REST never shrinks one. Other properties are not simulated and
    are refused rather than silently ignored; the LUN's own ``name`` is accepted (cinder sends it)."""
    lun = _lun_by_uuid(ctx, uuid)
    space = request.body.get("space")
    others = sorted(
        key for key, value in request.body.items() if key != "space" and (key, value) != ("name", lun.path)
    )
    others += sorted(f"space.{key}" for key in (space if isinstance(space, dict) else {}) if key != "size")
    if others:
        detail = f"The simulator changes only space.size of a LUN, not {', '.join(others)}."
        raise OntapError(e.INVALID_INPUT, target=others[0], detail=detail)
    if space is not None:
        ctx.state.resize_lun(lun, _requested_size(space))
    return RestResponse(200, {})


@router.route("DELETE", "/api/storage/luns/{uuid}")
def delete_lun(ctx: Ctx, request: RestRequest, uuid: str) -> RestResponse:
    ctx.state.delete_lun(_lun_by_uuid(ctx, uuid))
    return RestResponse(200, {})


# -- igroups --------------------------------------------------------------------------------


def _igroup_by_uuid(ctx: Ctx, uuid: str) -> Igroup:
    return ctx.state.igroup(ctx.scope.name if ctx.scope else None, uuid=uuid)


@router.route("GET", "/api/protocols/san/igroups")
def get_igroups(ctx: Ctx, request: RestRequest) -> RestResponse:
    records = [igroup_record(ctx.state, ig) for ig in ctx.state.igroups.values() if ctx.visible(ig.svm)]
    return collection(request, records, OWNED, IGROUP_EXPENSIVE)


@router.route("GET", "/api/protocols/san/igroups/{uuid}")
def get_igroup(ctx: Ctx, request: RestRequest, uuid: str) -> RestResponse:
    return single(request, igroup_record(ctx.state, _igroup_by_uuid(ctx, uuid)), OWNED, IGROUP_EXPENSIVE)


def _initiator_names(body: Any) -> list[str]:
    """Initiators arrive as ``[{"name": iqn}]``, ``{"records": [...]}`` or a single ``{"name": iqn}``."""
    items = body.get("records") if isinstance(body, dict) and "records" in body else body
    if isinstance(items, dict):
        items = [items]
    names = [item.get("name") if isinstance(item, dict) else item for item in items or []]
    if not names or not all(isinstance(n, str) and n for n in names):
        raise OntapError(e.INITIATOR_NOT_GIVEN, target="name")
    return names


@router.route("POST", "/api/protocols/san/igroups")
def post_igroup(ctx: Ctx, request: RestRequest) -> RestResponse:
    body = request.body
    initiators = _initiator_names(body["initiators"]) if body.get("initiators") else []
    igroup = ctx.state.create_igroup(
        _owner(ctx, request),
        body.get("name", ""),
        body.get("protocol", "mixed"),
        body.get("os_type", "linux"),
        tuple(initiators),
    )
    return created(
        request,
        igroup_record(ctx.state, igroup),
        f"/api/protocols/san/igroups/{igroup.uuid}",
        IGROUP_EXPENSIVE,
    )


@router.route("DELETE", "/api/protocols/san/igroups/{uuid}")
def delete_igroup(ctx: Ctx, request: RestRequest, uuid: str) -> RestResponse:
    ctx.state.destroy_igroup(
        _igroup_by_uuid(ctx, uuid), allow_mapped=request.flag("allow_delete_while_mapped")
    )
    return RestResponse(200, {})


def _member(ctx: Ctx, igroup_uuid: str) -> Igroup:
    return ctx.state.igroup(ctx.scope.name if ctx.scope else None, uuid=igroup_uuid)


@router.route("GET", "/api/protocols/san/igroups/{igroup.uuid}/initiators")
def get_initiators(ctx: Ctx, request: RestRequest, igroup_uuid: str) -> RestResponse:
    igroup = _member(ctx, igroup_uuid)
    return collection(request, [{"name": i, "comment": ""} for i in igroup.initiators], ("name",))


@router.route("GET", "/api/protocols/san/igroups/{igroup.uuid}/initiators/{name}")
def get_initiator(ctx: Ctx, request: RestRequest, igroup_uuid: str, name: str) -> RestResponse:
    igroup = _member(ctx, igroup_uuid)
    if name not in igroup.initiators:
        raise OntapError(e.INITIATOR_ABSENT, target="name", initiator=name, igroup=igroup.name)
    return single(request, {"name": name, "comment": ""}, ("name",))


@router.route("POST", "/api/protocols/san/igroups/{igroup.uuid}/initiators")
def post_initiators(ctx: Ctx, request: RestRequest, igroup_uuid: str) -> RestResponse:
    igroup = _member(ctx, igroup_uuid)
    names = _initiator_names(request.body)
    for name in names:
        igroup = ctx.state.add_initiator(igroup, name)
    location = f"/api/protocols/san/igroups/{igroup.uuid}/initiators/{names[-1]}"
    return created(request, {"name": names[-1], "comment": ""}, location)


@router.route("DELETE", "/api/protocols/san/igroups/{igroup.uuid}/initiators/{name}")
def delete_initiator(ctx: Ctx, request: RestRequest, igroup_uuid: str, name: str) -> RestResponse:
    ctx.state.remove_initiator(
        _member(ctx, igroup_uuid), name, allow_mapped=request.flag("allow_delete_while_mapped")
    )
    return RestResponse(200, {})


# -- LUN maps -------------------------------------------------------------------------------


@router.route("GET", "/api/protocols/san/lun-maps")
def get_lun_maps(ctx: Ctx, request: RestRequest) -> RestResponse:
    records = [map_record(ctx.state, m) for m in ctx.state.maps if ctx.visible(m.svm)]
    return collection(request, records, MAP_DEFAULTS)


@router.route("POST", "/api/protocols/san/lun-maps")
def post_lun_map(ctx: Ctx, request: RestRequest) -> RestResponse:
    body, state = request.body, ctx.state
    svm = _owner(ctx, request)
    lun_ref, igroup_ref = body.get("lun") or {}, body.get("igroup") or {}
    if not lun_ref.get("name") and not lun_ref.get("uuid"):
        raise OntapError(e.LUN_NOT_GIVEN, target="lun")
    if not igroup_ref.get("name") and not igroup_ref.get("uuid"):
        raise OntapError(e.IGROUP_NOT_GIVEN, target="igroup")
    lun = state.lun(svm.name, path=lun_ref.get("name"), uuid=lun_ref.get("uuid"), missing=e.MAP_LUN_NOT_FOUND)
    igroup = state.igroup(svm.name, name=igroup_ref.get("name"), uuid=igroup_ref.get("uuid"))
    lun_id = body.get("logical_unit_number")
    if lun_id is not None and not isinstance(lun_id, int):
        raise OntapError(
            e.INVALID_INPUT, target="logical_unit_number", detail="logical_unit_number must be an integer."
        )
    lun_map = state.map_lun(lun, igroup, lun_id)
    location = f"/api/protocols/san/lun-maps/{lun.uuid}/{igroup.uuid}"
    return created(request, map_record(state, lun_map), location)


def _map(ctx: Ctx, lun_uuid: str, igroup_uuid: str) -> tuple[Lun, Igroup, LunMap]:
    scope = ctx.scope.name if ctx.scope else None
    lun = ctx.state.lun(scope, uuid=lun_uuid)
    igroup = ctx.state.igroup(lun.svm, uuid=igroup_uuid, missing=e.MAP_IGROUP_NOT_FOUND)
    for lun_map in ctx.state.maps_of_lun(lun):
        if lun_map.igroup_uuid == igroup.uuid:
            return lun, igroup, lun_map
    raise OntapError(e.NO_SUCH_MAP, target="igroup.uuid")


@router.route("GET", "/api/protocols/san/lun-maps/{lun.uuid}/{igroup.uuid}")
def get_lun_map(ctx: Ctx, request: RestRequest, lun_uuid: str, igroup_uuid: str) -> RestResponse:
    return single(request, map_record(ctx.state, _map(ctx, lun_uuid, igroup_uuid)[2]), MAP_DEFAULTS)


@router.route("DELETE", "/api/protocols/san/lun-maps/{lun.uuid}/{igroup.uuid}")
def delete_lun_map(ctx: Ctx, request: RestRequest, lun_uuid: str, igroup_uuid: str) -> RestResponse:
    lun, igroup, _ = _map(ctx, lun_uuid, igroup_uuid)
    ctx.state.unmap_lun(lun, igroup)
    return RestResponse(200, {})


# -- portals and the iSCSI service -------------------------------------------------------------


@router.route("GET", "/api/network/ip/interfaces")
def get_interfaces(ctx: Ctx, request: RestRequest) -> RestResponse:
    records = [interface_record(ctx.state, lif) for lif in ctx.state.lifs.values() if ctx.visible(lif.svm)]
    return collection(request, records, NAME_UUID)


@router.route("GET", "/api/network/ip/interfaces/{uuid}")
def get_interface(ctx: Ctx, request: RestRequest, uuid: str) -> RestResponse:
    lif = ctx.state.lifs.get(uuid)
    if lif is None or not ctx.visible(lif.svm):
        raise OntapError(e.NOT_FOUND, target="uuid")
    return single(request, interface_record(ctx.state, lif), NAME_UUID)


@router.route("GET", "/api/protocols/san/iscsi/services")
def get_services(ctx: Ctx, request: RestRequest) -> RestResponse:
    records = [
        service_record(ctx.state, s) for s in ctx.state.svms.values() if s.iscsi and ctx.visible(s.name)
    ]
    return collection(request, records, ("svm.name", "svm.uuid"))


@router.route("GET", "/api/protocols/san/iscsi/services/{svm.uuid}")
def get_service(ctx: Ctx, request: RestRequest, svm_uuid: str) -> RestResponse:
    svm = ctx.state.svm(uuid=svm_uuid)
    if svm.iscsi is None:
        raise OntapError(e.NO_ISCSI_SERVICE, target="svm.uuid")
    return single(request, service_record(ctx.state, svm), ("svm.name", "svm.uuid"))


# -- CHAP -------------------------------------------------------------------------------------


CREDENTIAL_DEFAULTS = ("svm.name", "svm.uuid", "initiator")


def _chap_from(svm: Svm, initiator: str, body: dict[str, Any], base: Chap | None = None) -> Chap:
    """Merge a POST/PATCH body over ``base``; an empty outbound user clears outbound CHAP."""
    chap = body.get("chap") or {}
    inbound, outbound = chap.get("inbound") or {}, chap.get("outbound") or {}
    base = base or Chap(svm.name, initiator, "none")
    auth_type = str(body.get("authentication_type", base.auth_type))
    entry = Chap(
        svm.name,
        initiator,
        auth_type,
        inbound.get("user", base.inbound_user),
        inbound.get("password", base.inbound_password),
        outbound.get("user", base.outbound_user),
        outbound.get("password", base.outbound_password),
    )
    if "user" in outbound and not outbound["user"]:
        entry = Chap(entry.svm, entry.initiator, entry.auth_type, entry.inbound_user, entry.inbound_password)
    if auth_type.lower() != "chap" and "chap" not in body:
        entry = Chap(svm.name, initiator, auth_type)
    return entry


def _service_svm(svm: Svm) -> Svm:
    if svm.iscsi is None:
        raise OntapError(e.NO_ISCSI_SERVICE, target="svm")
    return svm


@router.route("GET", "/api/protocols/san/iscsi/credentials")
def get_credentials(ctx: Ctx, request: RestRequest) -> RestResponse:
    records = [credential_record(ctx.state, c) for c in ctx.state.chap.values() if ctx.visible(c.svm)]
    return collection(request, records, CREDENTIAL_DEFAULTS)


@router.route("POST", "/api/protocols/san/iscsi/credentials")
def post_credential(ctx: Ctx, request: RestRequest) -> RestResponse:
    svm = _service_svm(_owner(ctx, request))
    initiator = request.body.get("initiator")
    if not initiator:
        raise OntapError(e.INVALID_INPUT, target="initiator", detail='"initiator" is required.')
    entry = ctx.state.add_chap(_chap_from(svm, initiator, dict(request.body)))
    location = f"/api/protocols/san/iscsi/credentials/{svm.uuid}/{initiator}"
    return created(request, credential_record(ctx.state, entry), location)


def _credential(ctx: Ctx, svm_uuid: str, initiator: str) -> tuple[Svm, Chap]:
    svm = _service_svm(ctx.state.svm(uuid=svm_uuid))
    return svm, ctx.state.chap_entry(svm, initiator)


@router.route("GET", "/api/protocols/san/iscsi/credentials/{svm.uuid}/{initiator}")
def get_credential(ctx: Ctx, request: RestRequest, svm_uuid: str, initiator: str) -> RestResponse:
    return single(
        request, credential_record(ctx.state, _credential(ctx, svm_uuid, initiator)[1]), CREDENTIAL_DEFAULTS
    )


@router.route("PATCH", "/api/protocols/san/iscsi/credentials/{svm.uuid}/{initiator}")
def patch_credential(ctx: Ctx, request: RestRequest, svm_uuid: str, initiator: str) -> RestResponse:
    svm, current = _credential(ctx, svm_uuid, initiator)
    ctx.state.modify_chap(_chap_from(svm, initiator, dict(request.body), current))
    return RestResponse(200, {})


@router.route("DELETE", "/api/protocols/san/iscsi/credentials/{svm.uuid}/{initiator}")
def delete_credential(ctx: Ctx, request: RestRequest, svm_uuid: str, initiator: str) -> RestResponse:
    svm, _ = _credential(ctx, svm_uuid, initiator)
    ctx.state.delete_chap(svm, initiator)
    return RestResponse(200, {})
