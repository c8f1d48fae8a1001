"""ONTAP REST over HTTP: JSON bodies, the ``{"error": {...}}`` envelope, SVM scoping and paging.

Only wire mechanics live here; what records mean is in ``rest_parse`` and the operations in
``rest_ops``. A reply is a failure when it carries an ``error`` object (what cinder checks) or
an HTTP status of 400 and above (what the documentation promises); error codes are compared
as strings because ONTAP documents them as strings and some releases send integers.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from iscsi_agent.array.errors import (
    ArrayAlreadyExists,
    ArrayAlreadyMapped,
    ArrayApiError,
    ArrayError,
    ArrayNotFound,
    ArrayNotMapped,
    ArrayResponseError,
)
from iscsi_agent.array.transport import HttpReply, HttpTransport

log = logging.getLogger(__name__)

HEADERS = {"Accept": "application/json", "Content-Type": "application/json"}

# The race and idempotency codes the client resolves by reading (see ontap-api notes §3.4, §3.5).
CODE_CLASSES: Mapping[str, type[ArrayApiError]] = {
    "5374023": ArrayAlreadyExists,  # igroup with that name exists
    "5374035": ArrayAlreadyExists,  # initiator already in the igroup
    "1254207": ArrayAlreadyMapped,  # LUN already mapped to the same igroup
    "5374922": ArrayNotMapped,  # LUN map does not exist
}

# "The specified SVM does not exist" (T-client tables for igroups, lun-maps, credentials, services)
SVM_NOT_FOUND = "2621462"
SVMS = "/api/svm/svms"

_MISSING = object()


def parse_reply(reply: HttpReply, api: str) -> dict[str, Any]:
    """The JSON object of a successful reply; a failure raises its error code as a typed error.

    Failure body: ``{"error": {"message": "entry doesn't exist", "code": "4", "target": "uuid"}}``.
    """
    body: Any = {}
    if reply.body.strip():
        try:
            body = json.loads(reply.body)
        except ValueError as exc:
            if reply.status < 400:
                raise ArrayResponseError(api, f"reply is not JSON ({exc})") from exc
    if not isinstance(body, dict):
        if reply.status < 400:
            raise ArrayResponseError(api, "reply is not a JSON object")
        body = {}
    record: dict[str, Any] = body
    error = record.get("error")
    if error is None and reply.status < 400:
        return record
    if not isinstance(error, dict):
        raise ArrayApiError(api, f"HTTP {reply.status}", reply.reason, http_status=reply.status)
    code = str(error.get("code", f"HTTP {reply.status}"))
    message = str(error.get("message", reply.reason))
    raise CODE_CLASSES.get(code, ArrayApiError)(api, code, message, http_status=reply.status)


def field(record: Mapping[str, Any], dotted: str, api: str) -> Any:
    """The value at a dotted path (``"space.size"``); a record without it is an ArrayResponseError."""
    value = optional_field(record, dotted, _MISSING)
    if value is _MISSING or value is None:
        raise ArrayResponseError(api, f"reply lacks {dotted}", missing=dotted)
    return value


def optional_field(record: Mapping[str, Any], dotted: str, default: Any = None) -> Any:
    value: Any = record
    for part in dotted.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return default
        value = value[part]
    return value


def int_field(record: Mapping[str, Any], dotted: str, api: str) -> int:
    value = field(record, dotted, api)
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ArrayResponseError(api, f"{dotted} is not an integer: {value!r}", missing=dotted)
    try:
        return int(value)
    except ValueError as exc:
        raise ArrayResponseError(api, f"{dotted} is not an integer: {value!r}", missing=dotted) from exc


class RestConnection:
    """Calls the REST API of one array, scoped to the configured SVM.

    Reads scope by a ``svm.name`` filter, under which a misspelt SVM matches nothing rather than
    failing as ZAPI's tunnel does (15698). So an empty scoped answer is trusted only once the SVM
    is known to exist: the first empty one, or the first refused write, costs one
    ``GET /api/svm/svms?name=`` per connection (none after ``find_svm`` or any non-empty answer),
    and an SVM the array does not have is ``ArrayNotFound(kind="svm")``, as over ZAPI.
    """

    def __init__(self, transport: HttpTransport, vserver: str = "", *, page_size: int = 100) -> None:
        self.transport = transport
        self.vserver = vserver
        self.page_size = page_size
        self.svm_confirmed = False

    def find_svm(self) -> dict[str, Any]:
        """The configured SVM's record (name, uuid); ArrayNotFound(kind="svm") when there is none.

        Without a configured vserver (the config refuses that), the array's only SVM.
        """
        query = {"name": self.vserver} if self.vserver else {}
        records = self.collect(SVMS, query, "name,uuid", scoped=False)
        if self.vserver:
            records = [r for r in records if r.get("name") == self.vserver]
        if len(records) != 1:
            raise ArrayNotFound("svm", self.vserver, matches=len(records))
        self.svm_confirmed = True
        return records[0]

    def confirm_svm(self) -> None:
        """Make sure the configured SVM exists, asking the array at most once per connection."""
        if self.vserver and not self.svm_confirmed:
            self.find_svm()

    def svm_query(self) -> dict[str, str]:
        return {"svm.name": self.vserver} if self.vserver else {}

    def svm_body(self) -> dict[str, Any]:
        """POST bodies name the SVM: the documentation says lun-maps and igroups require it."""
        return {"svm": {"name": self.vserver}} if self.vserver else {}

    def get(self, path: str, params: Mapping[str, str] | None = None) -> dict[str, Any]:
        return self._call("GET", path, params=params, idempotent=True)

    def collect(
        self,
        path: str,
        query: Mapping[str, str],
        fields: str,
        *,
        scoped: bool = True,
        page_size: int | None = None,
    ) -> list[dict[str, Any]]:
        """Every record of a collection (of the SVM when ``scoped``), following ``_links.next.href``.

        A page: ``{"records": [...], "num_records": 2, "_links": {"next": {"href": "/api/storage/luns?start.uuid=…"}}}``.
        Scoped, an empty answer is trusted only from an SVM known to exist (see the class).
        """
        records = self._collect(path, query, fields, scoped=scoped, page_size=page_size or self.page_size)
        if scoped and records:
            self.svm_confirmed = True  # the svm.name filter matched: the SVM exists
        elif scoped:
            self.confirm_svm()
        return records

    def _collect(
        self, path: str, query: Mapping[str, str], fields: str, *, scoped: bool, page_size: int
    ) -> list[dict[str, Any]]:
        params = {
            **(self.svm_query() if scoped else {}),
            **query,
            "fields": fields,
            "max_records": str(page_size),
        }
        page = self.get(path, params)
        records: list[dict[str, Any]] = []
        seen: set[str] = set()
        while True:
            batch = page.get("records", [])
            if not isinstance(batch, list):
                raise ArrayResponseError(f"GET {path}", "records is not a list", missing="records")
            records.extend(record for record in batch if isinstance(record, dict))
            href = optional_field(page, "_links.next.href")
            if not href:
                return records
            if href in seen:
                raise ArrayResponseError(
                    f"GET {path}", "_links.next repeats; paging would not end", missing="_links.next"
                )
            seen.add(href)
            page = self.get(_same_origin_path(href, path))

    def post(
        self, path: str, body: Mapping[str, Any], *, idempotent: bool, params: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        return self._call("POST", path, params=params, body=body, idempotent=idempotent)

    def patch(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return self._call("PATCH", path, body=body, idempotent=True)

    def delete(self, path: str) -> dict[str, Any]:
        return self._call("DELETE", path, idempotent=True)

    def _call(
        self,
        method: str,
        path: str,
        *,
        idempotent: bool,
        params: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        reply = self.transport.request(
            method, path, params=params, json=body, headers=HEADERS, idempotent=idempotent
        )
        try:
            return parse_reply(reply, f"{method} {path.split('?', 1)[0]}")
        except ArrayApiError as exc:
            if self.vserver and exc.array_code == SVM_NOT_FOUND:
                raise ArrayNotFound("svm", self.vserver, array_code=exc.array_code) from exc
            if method != "GET":
                self._blame_svm()
            raise

    def _blame_svm(self) -> None:
        """After a refused write: raise ArrayNotFound(svm) if the SVM is the reason, else return."""
        if self.svm_confirmed or not self.vserver:
            return
        try:
            self.confirm_svm()
        except ArrayNotFound:
            raise
        except ArrayError as exc:  # the write's own refusal is the better report
            log.debug("could not confirm SVM %s after a refused write: %s", self.vserver, exc)


def _same_origin_path(href: str, path: str) -> str:
    """The next-page link as a path on the same array; ONTAP sends ``/api/...`` hrefs."""
    parts = urlsplit(href)
    if parts.scheme or parts.netloc or not parts.path.startswith("/api/"):
        raise ArrayResponseError(
            f"GET {path}", f"_links.next is not an /api/ path: {href!r}", missing="_links.next"
        )
    return href
