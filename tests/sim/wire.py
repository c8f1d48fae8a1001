"""Tiny ZAPI helpers for the simulator's tests: build an envelope, read fields from <results>."""

from __future__ import annotations

from lxml import etree

AUTH = ("admin", "netapp1!")
ZAPI_PATH = "/servlets/netapp.servlets.admin.XMLrequest_filer"
NS = "http://www.netapp.com/filer/admin"


def zapi_body(api: str, inner: str = "", vfiler: str | None = "svm1", version: str = "1.21") -> bytes:
    tunnel = f' vfiler="{vfiler}"' if vfiler else ""
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><netapp xmlns="{NS}" '
        f'version="{version}"{tunnel}><{api}>{inner}</{api}></netapp>'
    ).encode()


def results_of(content: bytes) -> etree._Element:
    return etree.fromstring(content).find(f"{{{NS}}}results")


def field(results: etree._Element, path: str) -> str | None:
    """Text at a slash path of local names below ``results``, e.g. "version-tuple/system-version-tuple/major"."""
    node = results
    for name in path.split("/"):
        node = node.find(f"{{{NS}}}{name}")
        if node is None:
            return None
    return node.text


def records(results: etree._Element) -> list[etree._Element]:
    attributes = results.find(f"{{{NS}}}attributes-list")
    return [] if attributes is None else list(attributes)


def texts(results: etree._Element, record_path: str) -> list[str | None]:
    """One field of every record in attributes-list."""
    return [field(record, record_path) for record in records(results)]
