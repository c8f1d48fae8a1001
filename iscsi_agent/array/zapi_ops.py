"""The primitive array calls over ZAPI (see ``ops.ArrayOps``), tunnelled to the configured SVM."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from iscsi_agent.array.errors import (
    ArrayAlreadyExists,
    ArrayApiError,
    ArrayError,
    ArrayNotFound,
    ArrayNotMapped,
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
from iscsi_agent.array.zapi import Args, ArgValue, ZapiConnection
from iscsi_agent.array.zapi_parse import (
    parse_assigned_lun_id,
    parse_chap,
    parse_igroup,
    parse_iscsi_service,
    parse_lun,
    parse_lun_map,
    parse_ontapi_version,
    parse_portal,
    parse_svm,
    parse_version,
)

log = logging.getLogger(__name__)

NO_SUCH_IGROUP = "9003"
NO_SUCH_OBJECT = "15661"  # EOBJECTNOTFOUND: what lun-map/lun-unmap answer for a missing LUN
NO_SUCH_LUN_7MODE = "9017"  # 7-Mode's "no such LUN"; read the same way should an array send it
NO_SUCH_LUN = (NO_SUCH_OBJECT, NO_SUCH_LUN_7MODE)
INITIATOR_HAS_NO_AUTH = "13112"  # "Initiator … not found, please use default authentication."

LUN_FIELDS: Args = {
    "lun-info": dict.fromkeys(
        ("path", "uuid", "size", "serial-number", "multiprotocol-type", "mapped", "online", "vserver", "node")
    )
}
IGROUP_FIELDS: Args = {
    "initiator-group-info": {
        "initiator-group-name": None,
        "initiator-group-type": None,
        "initiator-group-os-type": None,
        "initiator-group-uuid": None,
        "initiators": [{"initiator-info": {"initiator-name": None}}],
        "vserver": None,
    }
}
MAP_FIELDS: Args = {
    "lun-map-info": {
        "path": None,
        "lun-id": None,
        "lun-uuid": None,
        "initiator-group": None,
        "initiator-group-uuid": None,
        "reporting-nodes": [{"node-name": None}],
        "vserver": None,
    }
}


class ZapiOps:
    api = "zapi"

    def __init__(self, connection: ZapiConnection) -> None:
        self.zapi = connection

    def version(self) -> Version:
        ontapi = parse_ontapi_version(
            self.zapi.invoke("system-get-ontapi-version", idempotent=True, tunnel=False)
        )
        return parse_version(self.zapi.invoke("system-get-version", idempotent=True, tunnel=False), ontapi)

    def check_svm(self) -> Svm:
        """Tunnelled, this fails with EVSERVERNOTFOUND (15698) when the SVM does not exist."""
        query: Args = {"vserver-info": {"vserver-name": self.zapi.vserver}} if self.zapi.vserver else {}
        desired: Args = {"vserver-info": {"vserver-name": None, "uuid": None}}
        records = self.zapi.iterate("vserver-get-iter", query=query or None, desired=desired)
        if len(records) != 1:
            raise ArrayNotFound("svm", self.zapi.vserver, matches=len(records))
        return parse_svm(records[0])

    def find_luns(self, key: LunKey, value: str) -> list[Lun]:
        if key is LunKey.NAME:
            query: Args = {"path": f"/vol/*/{value}"}  # ZAPI has no name field; the client filters exactly
        else:
            query = {key.value: value}
        records = self.zapi.iterate("lun-get-iter", query={"lun-info": query}, desired=LUN_FIELDS)
        luns = [parse_lun(record) for record in records]
        if key is LunKey.PATH:
            return [lun for lun in luns if lun.path == value]
        if key is LunKey.UUID:
            return [lun for lun in luns if lun.uuid == value]
        return luns

    def luns_by_uuid(self, uuids: Sequence[str]) -> list[Lun]:
        query: Args = {"lun-info": {"uuid": "|".join(uuids)}}
        records = self.zapi.iterate("lun-get-iter", query=query, desired=LUN_FIELDS)
        wanted = set(uuids)
        return [lun for lun in map(parse_lun, records) if lun.uuid in wanted]

    def igroups_with_initiator(self, initiator: str) -> tuple[Igroup, ...]:
        query: Args = {
            "initiator-group-info": {"initiators": [{"initiator-info": {"initiator-name": initiator}}]}
        }
        igroups = self._igroups(query)
        return tuple(ig for ig in igroups if initiator.lower() in {i.lower() for i in ig.initiators})

    def igroup_by_name(self, name: str) -> Igroup | None:
        igroups = self._igroups({"initiator-group-info": {"initiator-group-name": name}})
        return next((ig for ig in igroups if ig.name == name), None)

    def _igroups(self, query: Args) -> list[Igroup]:
        return [
            parse_igroup(r) for r in self.zapi.iterate("igroup-get-iter", query=query, desired=IGROUP_FIELDS)
        ]

    def create_igroup(self, name: str, os_type: str, initiators: tuple[str, ...]) -> Igroup:
        args: Args = {"initiator-group-name": name, "initiator-group-type": "iscsi", "os-type": os_type}
        self.zapi.invoke("igroup-create", args, idempotent=False)
        for initiator in initiators:
            self.add_initiator(name, initiator)
        return Igroup(name, "iscsi", os_type, frozenset(initiators))

    def add_initiator(self, igroup: str, initiator: str) -> None:
        try:
            # a resent igroup-add cannot duplicate anything: the array answers 9008
            self.zapi.invoke(
                "igroup-add", {"initiator-group-name": igroup, "initiator": initiator}, idempotent=True
            )
        except ArrayApiError as exc:
            if exc.array_code == NO_SUCH_IGROUP:
                raise ArrayNotFound("igroup", igroup, array_code=exc.array_code) from exc
            raise

    def map_lun(self, path: str, igroup: str, lun_id: int | None) -> Mapped:
        args: dict[str, ArgValue] = {"path": path, "initiator-group": igroup}
        if lun_id is not None:
            args["lun-id"] = lun_id
        try:
            # lun-map answers only <lun-id-assigned>
            return Mapped(parse_assigned_lun_id(self.zapi.invoke("lun-map", args, idempotent=False)))
        except ArrayApiError as exc:
            if exc.array_code in NO_SUCH_LUN:
                raise ArrayNotFound("lun", path, array_code=exc.array_code) from exc
            if exc.array_code == NO_SUCH_IGROUP:
                raise ArrayNotFound("igroup", igroup, array_code=exc.array_code) from exc
            raise

    def unmap_lun(self, path: str, igroup: str, uuids: tuple[str, str] | None = None) -> None:
        """``lun-unmap`` names the map by path and igroup, in one request whether or not ``uuids`` are known."""
        # a resent lun-unmap only earns 9016 (no such map), which callers treat as done
        try:
            self.zapi.invoke("lun-unmap", {"path": path, "initiator-group": igroup}, idempotent=True)
        except ArrayApiError as exc:
            if exc.array_code in (*NO_SUCH_LUN, NO_SUCH_IGROUP):
                # no such LUN or igroup: no such map either, as REST (which reads the map first) says
                raise ArrayNotMapped(exc.api, exc.array_code, exc.array_message, exc.http_status) from exc
            raise

    def maps(self, *, path: str | None = None, igroup: str | None = None) -> tuple[LunMap, ...]:
        query: dict[str, ArgValue] = {}
        if path is not None:
            query["path"] = path
        if igroup is not None:
            query["initiator-group"] = igroup
        records = self.zapi.iterate(
            "lun-map-get-iter", query={"lun-map-info": query}, desired=MAP_FIELDS, page_size=MAPS_PAGE
        )
        return tuple(
            m
            for m in map(parse_lun_map, records)
            if (path is None or m.lun_path == path) and (igroup is None or m.igroup == igroup)
        )

    def maps_of_initiator(self, initiator: str) -> tuple[LunMap, ...]:
        """``lun-initiator-list-map-info``: the maps of every igroup holding the initiator, in one
        call that is not an iterator (nothing is paged). Its ``lun-map-info`` records are documented
        with path, igroup and LUN id; ``lun-uuid`` is read when the array sends it."""
        results = self.zapi.invoke("lun-initiator-list-map-info", {"initiator": initiator}, idempotent=True)
        api = "lun-initiator-list-map-info"
        return tuple(parse_lun_map(info, api) for info in results.iterfind("lun-maps/lun-map-info"))

    def portals(self) -> tuple[Lif, ...]:
        entries = self.zapi.iterate("iscsi-interface-get-iter")
        return tuple(portal for portal in map(parse_portal, entries) if portal is not None)

    def iscsi_service(self) -> IscsiService:
        records = self.zapi.iterate("iscsi-service-get-iter")
        if not records:
            raise ArrayNotFound("iscsi_service", self.zapi.vserver)
        return parse_iscsi_service(records[0])

    def chap_credentials(self, initiator: str) -> ChapCredentials | None:
        try:
            results = self.zapi.invoke("iscsi-initiator-get-auth", {"initiator": initiator}, idempotent=True)
        except ArrayApiError as exc:
            if exc.array_code == INITIATOR_HAS_NO_AUTH:
                return None
            raise
        return parse_chap(results, initiator)

    def set_chap_credentials(self, credentials: ChapCredentials) -> None:
        """Add the entry, or change it in place; a change of auth type replaces it, undone on failure.

        ``iscsi-initiator-modify-chap-params`` changes only the CHAP parameters of an entry whose
        auth-type is CHAP, and no ZAPI call changes an auth-type in place (the CLI's ``iscsi
        security modify -auth-type`` has no ZAPI twin), so going to or from none/deny takes
        ``iscsi-initiator-delete-auth`` then ``-add-auth``. Between the two the initiator has no
        entry of its own and the SVM's default policy applies; a failed add therefore puts an
        entry back (``_put_back``) before the failure is raised.
        """
        existing = self.chap_credentials(credentials.initiator)
        if existing is None:
            self._add_auth(credentials)
        elif existing.auth is ChapAuth.CHAP and credentials.auth is ChapAuth.CHAP:
            self._modify_chap(credentials)
        elif existing.auth is not credentials.auth:
            self._delete_auth(credentials.initiator)
            try:
                self._add_auth(credentials)
            except ArrayError as exc:
                exc.details["entry_left"] = self._put_back(existing)
                raise
        # else none or deny already: those carry nothing else to change

    def _modify_chap(self, credentials: ChapCredentials) -> None:
        args = {"initiator": credentials.initiator, **_chap_args(credentials)}
        if not credentials.mutual:
            args["remove-outbound"] = True
        self.zapi.invoke("iscsi-initiator-modify-chap-params", args, idempotent=True)

    def _delete_auth(self, initiator: str) -> None:
        try:
            self.zapi.invoke("iscsi-initiator-delete-auth", {"initiator": initiator}, idempotent=True)
        except ArrayApiError as exc:
            if exc.array_code != INITIATOR_HAS_NO_AUTH:  # a resent delete whose first try landed
                raise

    def _add_auth(self, credentials: ChapCredentials) -> None:
        """``iscsi-initiator-add-auth``; after an unknown outcome the entry is read before a resend."""
        args: dict[str, ArgValue] = {
            "initiator": credentials.initiator,
            "auth-type": _zapi_auth(credentials.auth),
        }
        if credentials.auth is ChapAuth.CHAP:
            args.update(_chap_args(credentials))

        def add() -> bool:
            self.zapi.invoke("iscsi-initiator-add-auth", args, idempotent=False)
            return True

        def landed() -> bool | None:
            found = self.chap_credentials(credentials.initiator)
            return True if found is not None and _same_entry(found, credentials) else None

        what = f"add {credentials.auth.value} authentication for {credentials.initiator}"
        try:
            write_then_verify(add, landed, what=what, budget=self.zapi.transport.budgets.current())
        except ArrayAlreadyExists:  # a resend after the first add landed late, or another writer
            if landed() is None:
                raise

    def _put_back(self, old: ChapCredentials) -> str:
        """Restore an entry in place of ``old`` after a failed add; says what the initiator has now.

        An old none or deny entry comes back exactly. An old CHAP entry cannot: the array never
        returns secrets. It comes back as deny, which admits no one, rather than leaving the
        initiator to the SVM's default policy, which may admit it with no authentication at all;
        the next ``set_chap_credentials`` replaces it like any other entry.
        """
        restored = old if old.auth is not ChapAuth.CHAP else ChapCredentials(old.initiator, ChapAuth.DENY)
        try:
            current = self.chap_credentials(old.initiator)
            if current is not None:  # someone else wrote one meanwhile: theirs stands
                return current.auth.value
            self._add_auth(restored)
        except ArrayError as exc:
            log.error(
                "%s is left without a CHAP entry of its own, so the SVM's default policy applies: "
                "putting back %s failed (%s)",
                old.initiator,
                restored.auth.value,
                exc,
            )
            return "none of its own: the SVM's default policy applies"
        if restored is old:
            log.warning("%s: the new entry failed; the old %s entry is back", old.initiator, old.auth.value)
        else:
            log.warning(
                "%s: the new entry failed; deny stands in place of the old CHAP entry, whose secrets "
                "the array does not return",
                old.initiator,
            )
        return restored.auth.value

    def close(self) -> None:
        self.zapi.transport.close()


def _zapi_auth(auth: ChapAuth) -> str:
    return "CHAP" if auth is ChapAuth.CHAP else auth.value


def _same_entry(found: ChapCredentials, wanted: ChapCredentials) -> bool:
    """The entry read back is the one written, as far as the array shows (it never returns secrets)."""
    if found.auth is not wanted.auth:
        return False
    if wanted.auth is not ChapAuth.CHAP:
        return True
    return (found.inbound_user, found.outbound_user) == (
        wanted.inbound_user or None,
        wanted.outbound_user or None,
    )


def _chap_args(credentials: ChapCredentials) -> dict[str, ArgValue]:
    """Plain-text ``passphrase`` fields (``password`` would expect ONTAP's obfuscated encoding)."""
    args: dict[str, ArgValue] = {
        "user-name": credentials.inbound_user or "",
        "passphrase": credentials.inbound_secret or "",
    }
    if credentials.mutual:
        args["outbound-user-name"] = credentials.outbound_user
        args["outbound-passphrase"] = credentials.outbound_secret or ""
    return args
