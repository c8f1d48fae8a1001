"""The primitive array calls over ONTAP REST (see ``ops.ArrayOps``), scoped to the configured SVM."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

from iscsi_agent.array.errors import (
    ArrayAlreadyExists,
    ArrayApiError,
    ArrayNotFound,
    ArrayNotMapped,
    ArrayResponseError,
)
from iscsi_agent.array.model import (
    MAPS_PAGE,
    ChapAuth,
    ChapCredentials,
    Igroup,
    IscsiService,
    Lif,
    Lun,
    LunMap,
    Mapped,
    Svm,
    Version,
)
from iscsi_agent.array.ops import LunKey
from iscsi_agent.array.recovery import write_then_verify
from iscsi_agent.array.rest import RestConnection, field, optional_field
from iscsi_agent.array.rest_parse import (
    parse_chap,
    parse_igroup,
    parse_iscsi_service,
    parse_lun,
    parse_lun_map,
    parse_map_reply,
    parse_portal,
    parse_version,
)

LUNS = "/api/storage/luns"
IGROUPS = "/api/protocols/san/igroups"
LUN_MAPS = "/api/protocols/san/lun-maps"
INTERFACES = "/api/network/ip/interfaces"
ISCSI_SERVICES = "/api/protocols/san/iscsi/services"
CREDENTIALS = "/api/protocols/san/iscsi/credentials"

# lun_maps and location.node: to which igroups the LUN is mapped and where it is hosted, which an
# attach would otherwise read from the map before and after making it
LUN_FIELDS = "name,uuid,serial_number,os_type,space.size,status.state,status.mapped,svm.name,lun_maps,location.node.name"
IGROUP_FIELDS = "name,uuid,protocol,os_type,initiators"
MAP_FIELDS = "lun.name,lun.uuid,igroup.name,igroup.uuid,logical_unit_number,reporting_nodes"
PORTAL_FIELDS = "name,ip.address,enabled,state,location.node.name,location.home_node.name"
LUN_QUERY_FIELD = {LunKey.PATH: "name", LunKey.UUID: "uuid", LunKey.NAME: "location.logical_unit"}

IGROUP_MISSING = "5374852"
# lun-maps POST: "LUN does not exist" / "does not exist or is not accessible"; the igroup named is not
# there / not in the LUN's SVM
MAP_LUN_MISSING = ("1254201", "5374875")
MAP_IGROUP_MISSING = (IGROUP_MISSING, "5374878")
CREDENTIAL_EXISTS = "5374142"


class RestOps:
    api = "rest"

    def __init__(self, connection: RestConnection) -> None:
        self.rest = connection

    def version(self) -> Version:
        return parse_version(self.rest.get("/api/cluster", {"fields": "version"}))

    def check_svm(self) -> Svm:
        record = self.rest.find_svm()
        return Svm(str(field(record, "name", "GET /api/svm/svms")), optional_field(record, "uuid"))

    def find_luns(self, key: LunKey, value: str) -> list[Lun]:
        records = self.rest.collect(LUNS, {LUN_QUERY_FIELD[key]: value}, LUN_FIELDS)
        luns = [parse_lun(record) for record in records]
        if key is LunKey.PATH:
            return [lun for lun in luns if lun.path == value]
        if key is LunKey.UUID:
            return [lun for lun in luns if lun.uuid == value]
        return luns

    def luns_by_uuid(self, uuids: Sequence[str]) -> list[Lun]:
        records = self.rest.collect(LUNS, {"uuid": "|".join(uuids)}, LUN_FIELDS)
        wanted = set(uuids)
        return [lun for lun in map(parse_lun, records) if lun.uuid in wanted]

    def igroups_with_initiator(self, initiator: str) -> tuple[Igroup, ...]:
        igroups = self._igroups({"initiators.name": initiator})
        return tuple(ig for ig in igroups if initiator.lower() in {i.lower() for i in ig.initiators})

    def igroup_by_name(self, name: str) -> Igroup | None:
        return next((ig for ig in self._igroups({"name": name}) if ig.name == name), None)

    def _igroups(self, query: dict[str, str]) -> list[Igroup]:
        return [parse_igroup(record) for record in self.rest.collect(IGROUPS, query, IGROUP_FIELDS)]

    def create_igroup(self, name: str, os_type: str, initiators: tuple[str, ...]) -> Igroup:
        body: dict[str, Any] = {**self.rest.svm_body(), "name": name, "protocol": "iscsi", "os_type": os_type}
        if initiators:
            body["initiators"] = [{"name": initiator} for initiator in initiators]
        try:
            reply = self.rest.post(IGROUPS, body, params={"return_records": "true"}, idempotent=False)
        except ArrayApiError as exc:
            if exc.http_status == 409 and not isinstance(exc, ArrayAlreadyExists):
                # HTTP 409 is "conflict / already exists" whatever the code (trident reads it so)
                raise ArrayAlreadyExists(exc.api, exc.array_code, exc.array_message, exc.http_status) from exc
            raise
        records = reply.get("records") or []
        uuid = optional_field(records[0], "uuid") if records and isinstance(records[0], dict) else None
        return Igroup(name, "iscsi", os_type, frozenset(initiators), uuid)

    def add_initiator(self, igroup: str, initiator: str) -> None:
        found = self.igroup_by_name(igroup)
        if found is None or not found.uuid:
            raise ArrayNotFound("igroup", igroup)
        try:
            # a resent add cannot duplicate anything: the array answers 5374035
            self.rest.post(f"{IGROUPS}/{found.uuid}/initiators", {"name": initiator}, idempotent=True)
        except ArrayApiError as exc:
            if exc.array_code == IGROUP_MISSING:
                raise ArrayNotFound("igroup", igroup, array_code=exc.array_code) from exc
            raise

    def map_lun(self, path: str, igroup: str, lun_id: int | None) -> Mapped:
        body: dict[str, Any] = {**self.rest.svm_body(), "lun": {"name": path}, "igroup": {"name": igroup}}
        if lun_id is not None:
            body["logical_unit_number"] = lun_id
        try:
            reply = self.rest.post(LUN_MAPS, body, params={"return_records": "true"}, idempotent=False)
        except ArrayApiError as exc:
            if exc.array_code in MAP_LUN_MISSING:
                raise ArrayNotFound("lun", path, array_code=exc.array_code) from exc
            if exc.array_code in MAP_IGROUP_MISSING:
                raise ArrayNotFound("igroup", igroup, array_code=exc.array_code) from exc
            raise
        records = reply.get("records") or []
        if records and isinstance(records[0], dict) and "logical_unit_number" in records[0]:
            return parse_map_reply(records[0])
        created = self.maps(path=path, igroup=igroup)  # an array that did not echo the record
        if not created:
            raise ArrayResponseError(
                f"POST {LUN_MAPS}", "map created but not readable", missing="logical_unit_number"
            )
        return Mapped.read(created[0])

    def unmap_lun(self, path: str, igroup: str, uuids: tuple[str, str] | None = None) -> None:
        if uuids is not None:
            self._delete_map(*uuids, path=path, igroup=igroup)
            return
        found = self.maps(path=path, igroup=igroup)
        if not found:
            raise ArrayNotMapped(f"DELETE {LUN_MAPS}", "", f"{path} is not mapped to {igroup}")
        lun_map = found[0]
        if not lun_map.lun_uuid or not lun_map.igroup_uuid:
            raise ArrayResponseError(
                f"GET {LUN_MAPS}", "map lacks lun.uuid or igroup.uuid", missing="lun.uuid"
            )
        self._delete_map(lun_map.lun_uuid, lun_map.igroup_uuid, path=path, igroup=igroup)

    def _delete_map(self, lun_uuid: str, igroup_uuid: str, *, path: str, igroup: str) -> None:
        """``DELETE /api/protocols/san/lun-maps/{lun.uuid}/{igroup.uuid}``. Not found, whichever of the
        three (LUN, igroup, map), means no map of that LUN to that igroup is there to remove."""
        try:
            self.rest.delete(f"{LUN_MAPS}/{lun_uuid}/{igroup_uuid}")
        except ArrayNotMapped:
            raise
        except ArrayApiError as exc:
            if exc.http_status != 404:
                raise
            raise ArrayNotMapped(
                exc.api, exc.array_code, f"{path} is not mapped to {igroup}: {exc.array_message}", 404
            ) from exc

    def maps(self, *, path: str | None = None, igroup: str | None = None) -> tuple[LunMap, ...]:
        query = {}
        if path is not None:
            query["lun.name"] = path
        if igroup is not None:
            query["igroup.name"] = igroup
        maps = map(parse_lun_map, self.rest.collect(LUN_MAPS, query, MAP_FIELDS, page_size=MAPS_PAGE))
        return tuple(
            m for m in maps if (path is None or m.lun_path == path) and (igroup is None or m.igroup == igroup)
        )

    def maps_of_initiator(self, initiator: str) -> tuple[LunMap, ...]:
        """``GET /api/protocols/san/lun-maps?igroup.initiators=<iqn>`` (a documented filter since 9.6):
        one page, since ONTAP lets one initiator see each LUN id once. Records whose igroup does not
        list the initiator are dropped, so an array that ignored the filter cannot widen the view."""
        records = self.rest.collect(
            LUN_MAPS, {"igroup.initiators": initiator}, f"{MAP_FIELDS},igroup.initiators", page_size=MAPS_PAGE
        )
        wanted = initiator.lower()
        return tuple(
            parse_lun_map(record)
            for record in records
            if wanted in {str(i).lower() for i in optional_field(record, "igroup.initiators") or ()}
        )

    def portals(self) -> tuple[Lif, ...]:
        records = self.rest.collect(INTERFACES, {"services": "data_iscsi"}, PORTAL_FIELDS)
        return tuple(portal for portal in map(parse_portal, records) if portal is not None)

    def iscsi_service(self) -> IscsiService:
        records = self.rest.collect(ISCSI_SERVICES, {}, "target.name,target.alias,enabled")
        if not records:
            raise ArrayNotFound("iscsi_service", self.rest.vserver)
        return parse_iscsi_service(records[0])

    def chap_credentials(self, initiator: str) -> ChapCredentials | None:
        record = self._credential_record(initiator)
        return parse_chap(record) if record is not None else None

    def _credential_record(self, initiator: str) -> dict[str, Any] | None:
        fields = "initiator,authentication_type,chap.inbound.user,chap.outbound.user,svm.uuid"
        records = self.rest.collect(CREDENTIALS, {"initiator": initiator}, fields)
        return next((r for r in records if r.get("initiator") == initiator), None)

    def set_chap_credentials(self, credentials: ChapCredentials) -> None:
        """Create the entry, or PATCH it in place (an empty outbound user clears mutual CHAP).

        A create whose outcome is unknown is settled by reading: an entry found there, or one
        another writer created meanwhile, is PATCHed, which is safe to repeat.
        """
        existing = self._credential_record(credentials.initiator)
        if existing is None:
            existing = self._create_credential(credentials)
            if existing is None:
                return
        svm_uuid = field(existing, "svm.uuid", f"GET {CREDENTIALS}")
        self.rest.patch(
            f"{CREDENTIALS}/{svm_uuid}/{quote(credentials.initiator, safe='')}",
            _credential_body(credentials, clear_outbound=True),
        )

    def _create_credential(self, credentials: ChapCredentials) -> dict[str, Any] | None:
        """POST the entry: None once created, or the entry found there after an unknown outcome."""
        body = {**self.rest.svm_body(), "initiator": credentials.initiator, **_credential_body(credentials)}

        def create() -> dict[str, Any] | None:
            self.rest.post(CREDENTIALS, body, idempotent=False)
            return None

        try:
            return write_then_verify(
                create,
                lambda: self._credential_record(credentials.initiator),
                what=f"create the CHAP entry of {credentials.initiator}",
                budget=self.rest.transport.budgets.current(),
            )
        except ArrayApiError as exc:
            if exc.array_code != CREDENTIAL_EXISTS:
                raise
            existing = self._credential_record(credentials.initiator)
            if existing is None:
                raise
            return existing

    def close(self) -> None:
        self.rest.transport.close()


def _credential_body(credentials: ChapCredentials, *, clear_outbound: bool = False) -> dict[str, Any]:
    """The credential fields; on PATCH an empty outbound user removes mutual CHAP."""
    body: dict[str, Any] = {"authentication_type": credentials.auth.value}
    if credentials.auth is not ChapAuth.CHAP:
        return body
    chap: dict[str, Any] = {
        "inbound": {"user": credentials.inbound_user or "", "password": credentials.inbound_secret or ""}
    }
    if credentials.mutual:
        chap["outbound"] = {"user": credentials.outbound_user, "password": credentials.outbound_secret or ""}
    elif clear_outbound:
        chap["outbound"] = {"user": ""}
    body["chap"] = chap
    return body
