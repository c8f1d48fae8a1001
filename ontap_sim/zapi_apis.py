"""The ZAPI calls an iSCSI host agent makes, answered from the model.

Each handler takes the SVM scope (from ``vfiler``; None in cluster scope) and the API
element, and returns the children of ``<results>``. SVM-only calls made in cluster
scope fail with 13005 "Unable to find API", as ONTAP does for untunnelled vserver APIs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from lxml import etree

from ontap_sim import errors as e
from ontap_sim.errors import OntapError
from ontap_sim.model import Chap, Igroup, Lif, Lun, LunMap, State, Svm
from ontap_sim.zapi import ZapiRequest, boolean, el, integer, iterate, required, text

BUILD_TIMESTAMP = 1704715200


@dataclass(frozen=True)
class Scope:
    state: State
    svm: Svm | None

    @property
    def svm_name(self) -> str | None:
        return self.svm.name if self.svm else None

    def in_scope(self, svm_name: str) -> bool:
        return self.svm is None or self.svm.name == svm_name

    @property
    def vserver(self) -> Svm:
        assert self.svm is not None  # guaranteed by the registry for svm-only APIs
        return self.svm


Handler = Callable[[Scope, etree._Element], list[etree._Element]]
APIS: dict[str, tuple[Handler, bool]] = {}


def api(name: str, svm_only: bool = False) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        APIS[name] = (handler, svm_only)
        return handler

    return register


def handle(state: State, request: ZapiRequest) -> list[etree._Element]:
    svm = state.svm(name=request.vfiler) if request.vfiler else None
    entry = APIS.get(request.api)
    if entry is None or (entry[1] and svm is None):
        raise OntapError(e.API_NOT_FOUND, api=request.api)
    return entry[0](Scope(state, svm), request.args)


# -- records ----------------------------------------------------------------------------


def lun_info(state: State, lun: Lun) -> etree._Element:
    return el(
        "lun-info",
        None,
        el("alignment", "aligned"),
        el("block-size", 512),
        el("class", "regular"),
        el("is-space-alloc-enabled", False),
        el("is-space-reservation-enabled", False),
        el("mapped", bool(state.maps_of_lun(lun))),
        el("multiprotocol-type", lun.os_type),
        el("node", lun.node),
        el("online", True),
        el("path", lun.path),
        el("qtree", ""),
        el("read-only", False),
        el("serial-number", lun.serial),
        el("share-state", "active"),
        el("size", lun.size),
        el("size-used", 0),
        el("state", "online"),
        el("uuid", lun.uuid),
        el("volume", lun.volume),
        el("vserver", lun.svm),
    )


def initiators_el(igroup: Igroup) -> etree._Element:
    return el(
        "initiators", None, *(el("initiator-info", None, el("initiator-name", i)) for i in igroup.initiators)
    )


def igroup_info(igroup: Igroup, lun_id: int | None = None) -> etree._Element:
    record = el(
        "initiator-group-info",
        None,
        el("initiator-group-alua-enabled", True),
        el("initiator-group-delete-on-unmap", False),
        el("initiator-group-name", igroup.name),
        el("initiator-group-os-type", igroup.os_type),
        el("initiator-group-portset-name", ""),
        el("initiator-group-report-scsi-name-enabled", True),
        el("initiator-group-type", igroup.protocol),
        el("initiator-group-use-partner", True),
        el("initiator-group-uuid", igroup.uuid),
        el("initiator-group-vsa-enabled", False),
        initiators_el(igroup),
        el("vserver", igroup.svm),
    )
    if lun_id is not None:
        record.append(el("lun-id", lun_id))
    return record


def lun_map_info(state: State, lun_map: LunMap) -> etree._Element:
    lun, igroup = state.luns[lun_map.lun_uuid], state.igroups[lun_map.igroup_uuid]
    return el(
        "lun-map-info",
        None,
        el("initiator-group", igroup.name),
        el("initiator-group-uuid", igroup.uuid),
        el("lun-id", lun_map.lun_id),
        el("lun-uuid", lun.uuid),
        el("node", lun.node),
        el("path", lun.path),
        el("reporting-nodes", None, *(el("node-name", n) for n in lun_map.reporting_nodes)),
        el("vserver", lun.svm),
    )


def interface_info(lif: Lif, relative_port_id: int) -> etree._Element:
    return el(
        "iscsi-interface-list-entry-info",
        None,
        el("current-node", lif.node),
        el("current-port", lif.port_name),
        el("interface-name", lif.name),
        el("ip-address", lif.ip),
        el("ip-port", lif.ip_port),
        el("is-interface-enabled", lif.enabled),
        el("relative-port-id", relative_port_id),
        el("tpgroup-name", lif.name),
        el("tpgroup-tag", lif.tpgroup_tag),
        el("vserver", lif.svm),
    )


def zapi_auth_type(auth_type: str) -> str:
    return "CHAP" if auth_type == "chap" else auth_type


def auth_fields(entry: Chap) -> list[etree._Element]:
    return [
        el("auth-chap-policy", "local"),
        el("auth-type", zapi_auth_type(entry.auth_type)),
        el("initiator-address-ranges"),
        el("outbound-user-name", entry.outbound_user or None),
        el("user-name", entry.inbound_user or None),
    ]


# -- version and SVM -------------------------------------------------------------------


@api("system-get-version")
def system_get_version(scope: Scope, args: etree._Element) -> list[etree._Element]:
    cluster = scope.state.cluster
    generation, major, minor = cluster.version
    results = [
        el("build-timestamp", BUILD_TIMESTAMP),
        el("is-clustered", True),
        el("version", cluster.version_full),
        el(
            "version-tuple",
            None,
            el(
                "system-version-tuple",
                None,
                el("generation", generation),
                el("major", major),
                el("minor", minor),
            ),
        ),
    ]
    if scope.svm is None:
        results.append(
            el(
                "node-version-details",
                None,
                *(
                    el(
                        "node-version-detail-info",
                        None,
                        el("build-timestamp", BUILD_TIMESTAMP),
                        el("node-name", n.name),
                        el("node-uuid", n.uuid),
                        el("version", cluster.version_full),
                    )
                    for n in scope.state.nodes.values()
                ),
            )
        )
    return results


@api("system-get-ontapi-version")
def system_get_ontapi_version(scope: Scope, args: etree._Element) -> list[etree._Element]:
    major, minor = scope.state.cluster.ontapi
    return [el("major-version", major), el("minor-version", minor)]


@api("vserver-get-iter")
def vserver_get_iter(scope: Scope, args: etree._Element) -> list[etree._Element]:
    records = [
        (
            (svm.name,),
            el(
                "vserver-info",
                None,
                el("allowed-protocols", None, el("protocol", "iscsi")),
                el("operational-state", "running"),
                el("state", "running"),
                el("uuid", svm.uuid),
                el("vserver-name", svm.name),
                el("vserver-type", "data"),
            ),
        )
        for svm in scope.state.svms.values()
        if scope.in_scope(svm.name)
    ]
    return iterate("vserver-get-iter", args, records)


# -- LUNs --------------------------------------------------------------------------------


@api("lun-get-iter")
def lun_get_iter(scope: Scope, args: etree._Element) -> list[etree._Element]:
    state = scope.state
    records = [
        ((lun.svm, lun.path), lun_info(state, lun)) for lun in state.luns.values() if scope.in_scope(lun.svm)
    ]
    return iterate("lun-get-iter", args, records)


@api("lun-get-serial-number", svm_only=True)
def lun_get_serial_number(scope: Scope, args: etree._Element) -> list[etree._Element]:
    lun = scope.state.lun(scope.svm_name, path=required(args, "path"))
    return [el("serial-number", lun.serial)]


@api("lun-create-by-size", svm_only=True)
def lun_create_by_size(scope: Scope, args: etree._Element) -> list[etree._Element]:
    os_type = text(args, "ostype") or text(args, "os-type") or "linux"
    lun = scope.state.create_lun(scope.vserver, required(args, "path"), integer(args, "size") or 0, os_type)
    return [el("actual-size", lun.size)]


@api("lun-resize", svm_only=True)
def lun_resize(scope: Scope, args: etree._Element) -> list[etree._Element]:
    """Grow, or with ``force`` shrink; a resize to the current size is 9042, as clients expect."""
    lun = scope.state.lun(scope.svm_name, path=required(args, "path"))
    size = integer(args, "size")
    if size is None:
        raise OntapError(e.INVALID_INPUT, detail="Missing input: size")
    resized = scope.state.resize_lun(lun, size, allow_shrink=boolean(args, "force"))
    if resized.size == lun.size:
        raise OntapError(e.LUN_SIZE_UNCHANGED, target="size")
    return [el("actual-size", resized.size)]


# -- igroups -----------------------------------------------------------------------------


@api("igroup-get-iter")
def igroup_get_iter(scope: Scope, args: etree._Element) -> list[etree._Element]:
    records = [
        ((ig.svm, ig.name), igroup_info(ig)) for ig in scope.state.igroups.values() if scope.in_scope(ig.svm)
    ]
    return iterate("igroup-get-iter", args, records)


@api("igroup-create", svm_only=True)
def igroup_create(scope: Scope, args: etree._Element) -> list[etree._Element]:
    os_type = text(args, "os-type") or text(args, "ostype") or "default"
    scope.state.create_igroup(
        scope.vserver,
        required(args, "initiator-group-name"),
        text(args, "initiator-group-type") or "iscsi",
        os_type,
    )
    return []


def _igroup(scope: Scope, args: etree._Element) -> Igroup:
    return scope.state.igroup(scope.svm_name, name=required(args, "initiator-group-name"))


@api("igroup-add", svm_only=True)
def igroup_add(scope: Scope, args: etree._Element) -> list[etree._Element]:
    scope.state.add_initiator(_igroup(scope, args), required(args, "initiator"))
    return []


@api("igroup-remove", svm_only=True)
def igroup_remove(scope: Scope, args: etree._Element) -> list[etree._Element]:
    scope.state.remove_initiator(_igroup(scope, args), required(args, "initiator"))
    return []


@api("igroup-destroy", svm_only=True)
def igroup_destroy(scope: Scope, args: etree._Element) -> list[etree._Element]:
    scope.state.destroy_igroup(_igroup(scope, args), allow_mapped=boolean(args, "force"))
    return []


# -- maps --------------------------------------------------------------------------------


@api("lun-map", svm_only=True)
def lun_map(scope: Scope, args: etree._Element) -> list[etree._Element]:
    lun = scope.state.lun(scope.svm_name, path=required(args, "path"))
    created = scope.state.map_lun(lun, _igroup_named(scope, args), integer(args, "lun-id"))
    return [el("lun-id-assigned", created.lun_id)]


def _igroup_named(scope: Scope, args: etree._Element) -> Igroup:
    return scope.state.igroup(scope.svm_name, name=required(args, "initiator-group"))


@api("lun-unmap", svm_only=True)
def lun_unmap(scope: Scope, args: etree._Element) -> list[etree._Element]:
    lun = scope.state.lun(scope.svm_name, path=required(args, "path"))
    scope.state.unmap_lun(lun, _igroup_named(scope, args))
    return []


@api("lun-map-get-iter")
def lun_map_get_iter(scope: Scope, args: etree._Element) -> list[etree._Element]:
    state = scope.state
    records = []
    for lun_map in state.maps:
        if scope.in_scope(lun_map.svm):
            lun, igroup = state.luns[lun_map.lun_uuid], state.igroups[lun_map.igroup_uuid]
            records.append(((lun.svm, lun.path, igroup.name), lun_map_info(state, lun_map)))
    return iterate("lun-map-get-iter", args, records)


@api("lun-map-list-info", svm_only=True)
def lun_map_list_info(scope: Scope, args: etree._Element) -> list[etree._Element]:
    state = scope.state
    lun = state.lun(scope.svm_name, path=required(args, "path"))
    groups = [igroup_info(state.igroups[m.igroup_uuid], m.lun_id) for m in state.maps_of_lun(lun)]
    return [el("initiator-groups", None, *groups)]


@api("lun-initiator-list-map-info", svm_only=True)
def lun_initiator_list_map_info(scope: Scope, args: etree._Element) -> list[etree._Element]:
    state, initiator = scope.state, required(args, "initiator")
    found = []
    for lun_map in state.maps:
        igroup = state.igroups[lun_map.igroup_uuid]
        if igroup.svm == scope.vserver.name and initiator in igroup.initiators:
            lun = state.luns[lun_map.lun_uuid]
            found.append(
                el(
                    "lun-map-info",
                    None,
                    el("initiator-group", igroup.name),
                    el("lun-id", lun_map.lun_id),
                    el("path", lun.path),
                    el("vserver", lun.svm),
                )
            )
    return [el("lun-maps", None, *found)]


# -- iSCSI target ------------------------------------------------------------------------


@api("iscsi-interface-get-iter")
def iscsi_interface_get_iter(scope: Scope, args: etree._Element) -> list[etree._Element]:
    records = [
        ((lif.svm, lif.name), interface_info(lif, index + 1))
        for index, lif in enumerate(scope.state.lifs.values())
        if scope.in_scope(lif.svm) and "data_iscsi" in lif.services
    ]
    return iterate("iscsi-interface-get-iter", args, records)


@api("iscsi-service-get-iter")
def iscsi_service_get_iter(scope: Scope, args: etree._Element) -> list[etree._Element]:
    records = [
        (
            (svm.name,),
            el(
                "iscsi-service-info",
                None,
                el("alias-name", svm.iscsi.alias),
                el("is-available", svm.iscsi.enabled),
                el("login-timeout", 15),
                el("max-cmds-per-session", 128),
                el("max-conn-per-session", 4),
                el("max-error-recovery-level", 0),
                el("node-name", svm.iscsi.target_iqn),
                el("retain-timeout", 20),
                el("tcp-window-size", 131400),
                el("vserver", svm.name),
            ),
        )
        for svm in scope.state.svms.values()
        if svm.iscsi is not None and scope.in_scope(svm.name)
    ]
    return iterate("iscsi-service-get-iter", args, records)


@api("iscsi-node-get-name", svm_only=True)
def iscsi_node_get_name(scope: Scope, args: etree._Element) -> list[etree._Element]:
    if scope.vserver.iscsi is None:
        raise OntapError(e.NO_ISCSI_SERVICE)
    return [el("node-name", scope.vserver.iscsi.target_iqn)]


# -- CHAP --------------------------------------------------------------------------------


@api("iscsi-initiator-auth-get-iter")
def iscsi_initiator_auth_get_iter(scope: Scope, args: etree._Element) -> list[etree._Element]:
    records = [
        (
            (entry.svm, entry.initiator),
            el(
                "iscsi-security-entry-info",
                None,
                *auth_fields(entry),
                el("initiator", entry.initiator),
                el("vserver", entry.svm),
            ),
        )
        for entry in scope.state.chap.values()
        if scope.in_scope(entry.svm)
    ]
    return iterate("iscsi-initiator-auth-get-iter", args, records)


@api("iscsi-initiator-get-auth", svm_only=True)
def iscsi_initiator_get_auth(scope: Scope, args: etree._Element) -> list[etree._Element]:
    return auth_fields(scope.state.chap_entry(scope.vserver, required(args, "initiator")))


@api("iscsi-initiator-get-default-auth", svm_only=True)
def iscsi_initiator_get_default_auth(scope: Scope, args: etree._Element) -> list[etree._Element]:
    return auth_fields(scope.state.chap_entry(scope.vserver, "default"))


def _secret(args: etree._Element, prefix: str) -> str:
    """Cleartext ``passphrase`` is preferred; ``password`` (an obfuscated form) is taken as given."""
    return text(args, f"{prefix}passphrase") or text(args, f"{prefix}password") or ""


def _entry_from(scope: Scope, args: etree._Element, initiator: str) -> Chap:
    return Chap(
        scope.vserver.name,
        initiator,
        (text(args, "auth-type") or "none"),
        text(args, "user-name") or "",
        _secret(args, ""),
        text(args, "outbound-user-name") or "",
        _secret(args, "outbound-"),
    )


@api("iscsi-initiator-add-auth", svm_only=True)
def iscsi_initiator_add_auth(scope: Scope, args: etree._Element) -> list[etree._Element]:
    scope.state.add_chap(_entry_from(scope, args, required(args, "initiator")))
    return []


@api("iscsi-initiator-set-default-auth", svm_only=True)
def iscsi_initiator_set_default_auth(scope: Scope, args: etree._Element) -> list[etree._Element]:
    scope.state.modify_chap(_entry_from(scope, args, "default"))
    return []


@api("iscsi-initiator-modify-chap-params", svm_only=True)
def iscsi_initiator_modify_chap_params(scope: Scope, args: etree._Element) -> list[etree._Element]:
    current = scope.state.chap_entry(scope.vserver, required(args, "initiator"))
    remove_outbound = boolean(args, "remove-outbound")
    updated = Chap(
        current.svm,
        current.initiator,
        "chap",
        text(args, "user-name") or current.inbound_user,
        _secret(args, "") or current.inbound_password,
        "" if remove_outbound else (text(args, "outbound-user-name") or current.outbound_user),
        "" if remove_outbound else (_secret(args, "outbound-") or current.outbound_password),
    )
    scope.state.modify_chap(updated)
    return []


@api("iscsi-initiator-delete-auth", svm_only=True)
def iscsi_initiator_delete_auth(scope: Scope, args: etree._Element) -> list[etree._Element]:
    scope.state.delete_chap(scope.vserver, required(args, "initiator"))
    return []
