"""ZAPI (ONTAPI) wire format: the ``<netapp>`` envelope, ``<results>``, and the iterator protocol.

A request looks like::

    <netapp xmlns="http://www.netapp.com/filer/admin" version="1.21" vfiler="svm1">
      <lun-get-iter><max-records>100</max-records></lun-get-iter>
    </netapp>

Children are matched by local name, so clients that send no namespace work too. The
API handlers themselves live in ``zapi_apis``; this module only parses and renders.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from lxml import etree

from ontap_sim import errors as e
from ontap_sim.errors import OntapError
from ontap_sim.model import wildcard_match

NS = "http://www.netapp.com/filer/admin"
DEFAULT_MAX_RECORDS = 20
PROLOGUE = b"<?xml version='1.0' encoding='UTF-8' ?>\n<!DOCTYPE netapp SYSTEM 'file:/etc/netapp_gx.dtd'>\n"
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, remove_blank_text=True)


@dataclass(frozen=True)
class ZapiRequest:
    api: str
    args: etree._Element
    vfiler: str | None
    version: str


class EnvelopeError(ValueError):
    """The body is not a ZAPI envelope at all (answered like ONTAP's servlet would)."""


def local(element: etree._Element) -> str:
    return etree.QName(element).localname


def parse_request(body: bytes) -> ZapiRequest:
    try:
        root = etree.fromstring(body, _PARSER)
    except etree.XMLSyntaxError as exc:
        raise EnvelopeError(f"XML parse error: {exc}") from exc
    api_elements = [c for c in root if isinstance(c.tag, str)]
    if local(root) != "netapp" or len(api_elements) != 1:
        raise EnvelopeError("expected <netapp> with exactly one API element")
    return ZapiRequest(
        local(api_elements[0]), api_elements[0], root.get("vfiler") or None, root.get("version", "")
    )


def peek_api(body: bytes) -> str | None:
    """The API name for counting and fault matching, or None when the body is not ZAPI."""
    try:
        return parse_request(body).api
    except EnvelopeError:
        return None


def child(element: etree._Element | None, name: str) -> etree._Element | None:
    if element is None:
        return None
    for c in element:
        if isinstance(c.tag, str) and local(c) == name:
            return c
    return None


def text(element: etree._Element | None, name: str, default: str | None = None) -> str | None:
    found = child(element, name)
    if found is None or found.text is None:
        return default
    return found.text.strip()


def required(args: etree._Element, name: str) -> str:
    value = text(args, name)
    if value is None or value == "":
        raise OntapError(e.INVALID_INPUT, detail=f"Missing input: {name}")
    return value


def boolean(args: etree._Element, name: str, default: bool = False) -> bool:
    value = text(args, name)
    return default if value is None else value.lower() == "true"


def integer(args: etree._Element, name: str) -> int | None:
    value = text(args, name)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError as exc:
        raise OntapError(e.INVALID_INPUT, detail=f"Invalid integer value for {name}: {value}") from exc


def el(tag: str, value: object = None, *children: etree._Element) -> etree._Element:
    """A namespaced element; booleans are written the ZAPI way (true/false)."""
    element = etree.Element(f"{{{NS}}}{tag}", nsmap={None: NS})
    if isinstance(value, bool):
        element.text = "true" if value else "false"
    elif value is not None:
        element.text = str(value)
    element.extend(children)
    return element


def render(results: Sequence[etree._Element], version: str) -> bytes:
    root = el("netapp")
    root.set("version", version)
    body = etree.SubElement(root, f"{{{NS}}}results", status="passed")
    body.extend(results)
    return PROLOGUE + etree.tostring(root, encoding="UTF-8")


def render_failure(errno: int | str, reason: str, version: str) -> bytes:
    root = el("netapp")
    root.set("version", version)
    etree.SubElement(root, f"{{{NS}}}results", status="failed", errno=str(errno), reason=reason)
    return PROLOGUE + etree.tostring(root, encoding="UTF-8")


# -- queries, desired-attributes, paging ------------------------------------------------


def value_matches(pattern: str, value: str) -> bool:
    """ZAPI query values: ``a|b`` alternatives, ``!x`` negation, ``*`` wildcards; booleans caseless."""
    for alternative in pattern.split("|"):
        negate = alternative.startswith("!")
        term = alternative[1:] if negate else alternative
        if term.lower() in ("true", "false"):
            hit = term.lower() == value.lower()
        else:
            hit = wildcard_match(term, value)
        if hit != negate:
            return True
    return False


def record_matches(query: etree._Element, record: etree._Element) -> bool:
    """Every field set in the query template must be matched by some same-named child of the record."""
    for wanted in query:
        if not isinstance(wanted.tag, str):
            continue
        candidates = [c for c in record if isinstance(c.tag, str) and local(c) == local(wanted)]
        if len(wanted):
            if not any(record_matches(wanted, c) for c in candidates):
                return False
        elif (
            wanted.text is not None
            and wanted.text.strip()
            and not any(value_matches(wanted.text.strip(), (c.text or "").strip()) for c in candidates)
        ):
            return False
    return True


def prune(record: etree._Element, desired: etree._Element) -> etree._Element:
    """Keep the children named in ``desired``; element presence selects, its text is ignored."""
    wanted = {local(c): c for c in desired if isinstance(c.tag, str)}
    for c in list(record):
        template = wanted.get(local(c))
        if template is None:
            record.remove(c)
        elif len(template):
            prune(c, template)  # a struct or a list wrapper: the template names what to keep inside
    return record


def _tag_for(api: str, key: Sequence[str]) -> str:
    keys = "".join(f"<key-{i}>{etree_escape(k)}</key-{i}>" for i, k in enumerate(key))
    return f"<{api}-key-td>{keys}</{api}-key-td>"


def etree_escape(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _key_from_tag(tag: str) -> tuple[str, ...]:
    try:
        root = etree.fromstring(tag.encode("utf-8"), _PARSER)
    except etree.XMLSyntaxError as exc:
        raise OntapError(e.INVALID_INPUT, detail='Invalid value specified for "tag"') from exc
    return tuple((c.text or "") for c in root)


def iterate(
    api: str, args: etree._Element, records: Sequence[tuple[tuple[str, ...], etree._Element]]
) -> list[etree._Element]:
    """Run a ``*-get-iter`` call over (key, full record) pairs: query, paging and desired-attributes."""
    query_wrapper = child(args, "query")
    query = query_wrapper[0] if query_wrapper is not None and len(query_wrapper) else None
    desired_wrapper = child(args, "desired-attributes")
    desired = desired_wrapper[0] if desired_wrapper is not None and len(desired_wrapper) else None
    max_records = integer(args, "max-records") or DEFAULT_MAX_RECORDS
    ordered = sorted((r for r in records if query is None or record_matches(query, r[1])), key=lambda r: r[0])
    tag = text(args, "tag")
    if tag:
        resume = _key_from_tag(tag)
        ordered = [r for r in ordered if r[0] >= resume]
    page, rest = ordered[:max_records], ordered[max_records:]
    results: list[etree._Element] = []
    if page:
        results.append(
            el("attributes-list", None, *(prune(r, desired) if desired is not None else r for _, r in page))
        )
    if rest:
        results.append(el("next-tag", _tag_for(api, rest[0][0])))
    results.append(el("num-records", len(page)))
    return results
