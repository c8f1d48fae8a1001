"""ZAPI (ONTAPI) over HTTP: the XML envelope, ``vfiler`` tunnelling, result status and iterator paging.

Only wire mechanics live here; what the records mean is in ``zapi_parse`` and the operations
in ``zapi_client``. Replies are parsed without DTDs, entities or network access, and element
namespaces are dropped on arrival so that callers match by local name, as ONTAP clients do.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Union

from lxml import etree

from iscsi_agent.array.errors import (
    ArrayAlreadyExists,
    ArrayAlreadyMapped,
    ArrayApiError,
    ArrayNotFound,
    ArrayNotMapped,
    ArrayResponseError,
)
from iscsi_agent.array.transport import HttpTransport

log = logging.getLogger(__name__)

NAMESPACE = "http://www.netapp.com/filer/admin"
ZAPI_PATH = "/servlets/netapp.servlets.admin.XMLrequest_filer"
# Trident sends 1.21 to every ONTAP 9 release; the array answers with all the fields used here.
ONTAPI_VERSION = "1.21"
EVSERVERNOTFOUND = "15698"

# The race and idempotency errnos the client resolves by reading (see ontap-api notes §1.5).
ERRNO_CLASSES: Mapping[str, type[ArrayApiError]] = {
    "9004": ArrayAlreadyExists,  # igroup-create: igroup exists
    "13130": ArrayAlreadyExists,  # duplicate entry (igroup-create race)
    "9008": ArrayAlreadyExists,  # igroup-add: initiator already in the igroup
    "9023": ArrayAlreadyMapped,  # lun-map: LUN already mapped to this igroup
    "9016": ArrayNotMapped,  # lun-unmap: no such map
}

ArgValue = Union[None, str, int, bool, "Args", Sequence["Args"]]
Args = Mapping[str, ArgValue]

_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


def build_request(api: str, args: Args | None = None, *, vfiler: str | None = None) -> bytes:
    """The request document: ``<netapp xmlns=… version=… vfiler=svm1><api>…args…</api></netapp>``.

    Args map element names to text (str/int/bool), to nested Args, to a list of Args (each
    appended in order: how ZAPI writes lists), or to None for an empty element
    (``desired-attributes`` only looks at which elements are present).
    """
    # None keys the default namespace in lxml; its stubs only allow str keys
    root = etree.Element(f"{{{NAMESPACE}}}netapp", nsmap={None: NAMESPACE})  # type: ignore[dict-item]
    root.set("version", ONTAPI_VERSION)
    if vfiler:
        root.set("vfiler", vfiler)
    _append_args(etree.SubElement(root, f"{{{NAMESPACE}}}{api}"), args or {})
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def _append_args(parent: etree._Element, args: Args) -> None:
    for name, value in args.items():
        if isinstance(value, (list, tuple)):
            wrapper = etree.SubElement(parent, f"{{{NAMESPACE}}}{name}")
            for item in value:
                _append_args(wrapper, item)
            continue
        child = etree.SubElement(parent, f"{{{NAMESPACE}}}{name}")
        if isinstance(value, Mapping):
            _append_args(child, value)
        elif isinstance(value, bool):
            child.text = "true" if value else "false"
        elif value is not None:
            child.text = str(value)


def parse_results(body: bytes, api: str) -> etree._Element:
    """The ``<results>`` element of a passed reply; a failed one raises its errno as a typed error.

    Failure looks like
    ``<netapp version='1.15' xmlns='…'><results status="failed" errno="9023" reason="LUN already mapped to this group"/></netapp>``.
    Cinder also reads ``<errorno>``/``<reason>`` children when the attributes are absent; so do we.
    """
    try:
        root = etree.fromstring(body, parser=_PARSER)
    except etree.XMLSyntaxError as exc:
        raise ArrayResponseError(api, f"reply is not XML ({exc})") from exc
    _strip_namespaces(root)
    results = root if root.tag == "results" else root.find("results")
    if results is None:
        raise ArrayResponseError(api, "reply has no <results> element", missing="results")
    status = results.get("status")
    if status == "passed":
        return results
    errno = results.get("errno") or results.findtext("errorno") or "EAPIERROR"
    reason = results.get("reason") or results.findtext("reason") or ""
    if status != "failed":
        raise ArrayResponseError(api, f"results status is {status!r}", missing="results/@status")
    raise ERRNO_CLASSES.get(errno, ArrayApiError)(api, errno, reason)


def _strip_namespaces(root: etree._Element) -> None:
    for element in root.iter():
        if isinstance(element.tag, str):
            element.tag = etree.QName(element).localname


def required_text(element: etree._Element, path: str, api: str) -> str:
    """The text at ``path`` under ``element``; a reply without it is an ArrayResponseError."""
    value = element.findtext(path)
    if value is None:
        raise ArrayResponseError(api, f"reply lacks {path}", missing=path)
    return value.strip()


def optional_text(element: etree._Element, path: str) -> str | None:
    value = element.findtext(path)
    return value.strip() if value is not None else None


def all_texts(element: etree._Element, path: str) -> tuple[str, ...]:
    """The non-empty texts of every element at ``path`` (a list such as ``initiators/initiator-info/initiator-name``)."""
    return tuple(found.text.strip() for found in element.iterfind(path) if found.text and found.text.strip())


def required_int(element: etree._Element, path: str, api: str) -> int:
    text = required_text(element, path, api)
    try:
        return int(text)
    except ValueError as exc:
        raise ArrayResponseError(api, f"{path} is not an integer: {text!r}", missing=path) from exc


def optional_int(element: etree._Element, path: str, api: str) -> int | None:
    return required_int(element, path, api) if element.findtext(path) not in (None, "") else None


def optional_bool(element: etree._Element, path: str, default: bool) -> bool:
    text = optional_text(element, path)
    return default if not text else text.lower() == "true"


class ZapiConnection:
    """Invokes ZAPI calls on one array, tunnelled to the configured SVM unless told otherwise."""

    def __init__(self, transport: HttpTransport, vserver: str = "", *, page_size: int = 100) -> None:
        self.transport = transport
        self.vserver = vserver
        self.page_size = page_size

    def invoke(
        self, api: str, args: Args | None = None, *, idempotent: bool, tunnel: bool = True
    ) -> etree._Element:
        vfiler = self.vserver if tunnel else None
        reply = self.transport.request(
            "POST",
            ZAPI_PATH,
            data=build_request(api, args, vfiler=vfiler),
            headers={"Content-Type": "text/xml; charset=utf-8"},
            idempotent=idempotent,
        )
        if reply.status != 200:
            raise ArrayApiError(api, f"HTTP {reply.status}", reply.reason, http_status=reply.status)
        try:
            return parse_results(reply.body, api)
        except ArrayApiError as exc:
            if exc.array_code == EVSERVERNOTFOUND and vfiler:
                raise ArrayNotFound("svm", vfiler, array_code=exc.array_code) from exc
            raise

    def iterate(
        self,
        api: str,
        *,
        query: Args | None = None,
        desired: Args | None = None,
        tunnel: bool = True,
        page_size: int | None = None,
    ) -> list[etree._Element]:
        """All records of a ``*-get-iter`` call, following ``next-tag`` until it is absent.

        A page looks like ``<results status="passed"><attributes-list><lun-info>…</lun-info>
        </attributes-list><next-tag>&lt;lun-get-iter-key-td&gt;…</next-tag><num-records>1</num-records></results>``.
        """
        records: list[etree._Element] = []
        seen_tags: set[str] = set()
        tag: str | None = None
        while True:
            args: dict[str, ArgValue] = {"max-records": page_size or self.page_size}
            if tag:
                args["tag"] = tag
            if query:
                args["query"] = query
            if desired:
                args["desired-attributes"] = desired
            results = self.invoke(api, args, idempotent=True, tunnel=tunnel)
            attributes = results.find("attributes-list")
            if attributes is not None:
                records.extend(child for child in attributes if isinstance(child.tag, str))
            tag = results.findtext("next-tag")
            if not tag:
                return records
            if attributes is None:
                raise ArrayResponseError(
                    api, "a page with next-tag lacks attributes-list", missing="attributes-list"
                )
            if tag in seen_tags:
                raise ArrayResponseError(api, "next-tag repeats; paging would not end", missing="next-tag")
            seen_tags.add(tag)
