"""ONTAP REST wire conventions: tolerant query parsing, routing, fields, filters, paging, errors.

Clients in the wild send unencoded ``/``, ``:`` and ``,`` in query values
(``lun.name=/vol/vol1/lun1``), trailing slashes (``/api/cluster/``) and dotted keys in
JSON bodies (``{"lun.name": ...}``); all of that is accepted here. Handlers live in
``rest_apis`` and return full records; this module decides what of them goes on the wire.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote

from ontap_sim import errors as e
from ontap_sim.errors import OntapError
from ontap_sim.model import wildcard_match

CONTROL_PARAMS = frozenset(
    {
        "fields",
        "max_records",
        "return_records",
        "return_timeout",
        "order_by",
        "start.index",
        "allow_delete_while_mapped",
        "local_delete_only",
        "additional_reporting_node.name",
        "additional_reporting_node.uuid",
    }
)
QUERY_SAFE = "/:,*|!<>=.@?$"
_MISSING = object()


@dataclass(frozen=True)
class RestRequest:
    method: str
    path: str  # without query and trailing slash
    query: tuple[tuple[str, str], ...]
    headers: Mapping[str, str]
    body: Mapping[str, Any]

    @property
    def params(self) -> dict[str, str]:
        return dict(self.query)

    def flag(self, name: str) -> bool:
        return self.params.get(name, "false").lower() == "true"


@dataclass(frozen=True)
class RestResponse:
    status: int
    body: Mapping[str, Any]
    headers: Mapping[str, str] = field(default_factory=dict)


def parse_query(raw: str) -> tuple[tuple[str, str], ...]:
    """Split ``a=b&c=d`` on ``&`` and the first ``=`` only, so raw ``,`` ``:`` ``/`` survive."""
    pairs = []
    for part in raw.split("&"):
        if part:
            key, _, value = part.partition("=")
            pairs.append((unquote(key), unquote(value)))
    return tuple(pairs)


def parse_body(raw: bytes) -> dict[str, Any]:
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise OntapError(e.INVALID_INPUT, detail=f"Invalid JSON input: {exc}") from exc
    if not isinstance(body, dict):
        raise OntapError(e.INVALID_INPUT, detail="The request body must be a JSON object.")
    return expand_dotted(body)


def expand_dotted(body: Mapping[str, Any]) -> dict[str, Any]:
    """``{"lun.name": "x"}`` becomes ``{"lun": {"name": "x"}}``; nested objects are expanded too."""
    result: dict[str, Any] = {}
    for key, given in body.items():
        value = expand_dotted(given) if isinstance(given, dict) else given
        *parents, leaf = key.split(".")
        target = result
        for parent in parents:
            target = target.setdefault(parent, {})
        if isinstance(value, dict) and isinstance(target.get(leaf), dict):
            target[leaf].update(value)
        else:
            target[leaf] = value
    return result


def error_response(error: OntapError) -> RestResponse:
    body: dict[str, Any] = {"message": error.message, "code": error.condition.rest_code}
    if error.target:
        body["target"] = error.target
    return RestResponse(error.condition.http_status, {"error": body})


# -- routing -----------------------------------------------------------------------------

Handler = Callable[..., RestResponse]


class Router:
    """Path templates like ``/api/storage/luns/{uuid}``; a segment variable matches one segment."""

    def __init__(self) -> None:
        self._routes: list[tuple[str, str, re.Pattern[str], Handler]] = []

    def route(self, method: str, template: str) -> Callable[[Handler], Handler]:
        pattern = re.compile(
            "^" + re.sub(r"\{([^}]+)\}", lambda m: f"(?P<{_group(m[1])}>[^/]+)", template) + "$"
        )

        def register(handler: Handler) -> Handler:
            self._routes.append((method, template, pattern, handler))
            return handler

        return register

    def resolve(self, method: str, path: str) -> tuple[str | None, Handler | None, dict[str, str]]:
        """(template, handler, path variables); template without handler means wrong method."""
        template_seen = None
        for route_method, template, pattern, handler in self._routes:
            found = pattern.match(path)
            if found:
                template_seen = template
                if route_method == method:
                    return template, handler, {k: unquote(v) for k, v in found.groupdict().items()}
        return template_seen, None, {}


def _group(name: str) -> str:
    return name.replace(".", "_")


# -- fields --------------------------------------------------------------------------------


def _pick(source: Any, parts: Sequence[str]) -> Any:
    """The value at a dotted path; through a list it collects from every item."""
    if not parts:
        return source
    if isinstance(source, list):
        picked = [_pick(item, parts) for item in source]
        return [p for p in picked if p is not _MISSING]
    if isinstance(source, dict) and parts[0] in source:
        return _pick(source[parts[0]], parts[1:])
    return _MISSING


def _tree(paths: Sequence[str]) -> dict[str, Any]:
    """``["svm.name", "lun"]`` -> ``{"svm": {"name": True}, "lun": True}``; True keeps a whole subtree."""
    tree: dict[str, Any] = {}
    for path in paths:
        node = tree
        *parents, leaf = path.split(".")
        for part in parents:
            if node.get(part) is True:
                break
            node = node.setdefault(part, {})
        else:
            node[leaf] = True
    return tree


def _project(value: Any, tree: dict[str, Any] | bool) -> Any:
    if tree is True:
        return value
    if isinstance(value, list):
        return [_project(item, tree) for item in value]
    if isinstance(value, dict):
        return {k: _project(value[k], sub) for k, sub in tree.items() if k in value}
    return value


def _without(record: Mapping[str, Any], paths: Sequence[str]) -> dict[str, Any]:
    result = json.loads(json.dumps(record))
    for path in paths:
        *parents, leaf = path.split(".")
        node = result
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(leaf, None)
    return result


def _union(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    for key, value in extra.items():
        if isinstance(base.get(key), dict) and isinstance(value, dict):
            _union(base[key], value)
        else:
            base.setdefault(key, value)
    return base


def select(
    record: Mapping[str, Any], fields: str | None, defaults: Sequence[str], expensive: Sequence[str]
) -> dict[str, Any]:
    """The record as ONTAP shows it: defaults plus named fields; expensive ones only when named or ``**``."""
    requested = [f.strip() for f in fields.split(",") if f.strip()] if fields else []
    if "**" in requested:
        return json.loads(json.dumps(record))
    named = [f for f in requested if f != "*"]
    shown = _project(json.loads(json.dumps(record)), _tree([*defaults, *named]))
    if "*" in requested:
        return _union(_without(record, expensive), shown)
    return shown


# -- filters ---------------------------------------------------------------------------------


def _leaves(value: Any) -> list[Any]:
    if isinstance(value, list):
        return [leaf for item in value for leaf in _leaves(item)]
    return [value]


def _term_matches(term: str, value: Any) -> bool:
    if term == "null":
        return value is None
    if term == "!null":
        return value is not None
    if term.startswith("!"):
        return not _term_matches(term[1:], value)
    for op in ("<=", ">=", "<", ">"):
        if term.startswith(op) and isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                bound = float(term[len(op) :])
            except ValueError:
                return False
            return {"<=": value <= bound, ">=": value >= bound, "<": value < bound, ">": value > bound}[op]
    if isinstance(value, bool):
        return term.lower() == str(value).lower()
    return value is not None and wildcard_match(term, str(value))


def filter_matches(record: Mapping[str, Any], path: str, expression: str) -> bool:
    """``a|b`` is OR; a comma is read as OR too (cinder joins values with commas)."""
    found = _pick(record, path.split("."))
    values = [None] if found is _MISSING else _leaves(found) or [None]
    terms = [t for part in expression.split("|") for t in part.split(",")]
    return any(_term_matches(term, value) for term in terms for value in values)


# -- collections -------------------------------------------------------------------------------


def collection(
    request: RestRequest,
    records: Sequence[Mapping[str, Any]],
    defaults: Sequence[str],
    expensive: Sequence[str] = (),
) -> RestResponse:
    """Filter, order, page and trim records; ``_links.next`` carries the whole query onward."""
    params = request.params
    chosen = [
        r
        for r in records
        if all(filter_matches(r, k, v) for k, v in request.query if k not in CONTROL_PARAMS)
    ]
    for clause in reversed([c.strip() for c in params.get("order_by", "").split(",") if c.strip()]):
        name, _, direction = clause.partition(" ")
        chosen.sort(key=lambda r, n=name: str(_pick(r, n.split("."))), reverse=direction.strip() == "desc")
    start = _int_param(params, "start.index", 0)
    limit = _int_param(params, "max_records", 0) or len(chosen)
    page = chosen[start : start + limit]
    self_href = _href(request.path, request.query)
    return_records = params.get("return_records", "true").lower() != "false"
    body: dict[str, Any] = {"num_records": len(page) if return_records else len(chosen)}
    if return_records:
        body["records"] = [select(r, params.get("fields"), defaults, expensive) for r in page]
    links: dict[str, Any] = {"self": {"href": self_href}}
    if start + limit < len(chosen):
        onward = [(k, v) for k, v in request.query if k != "start.index"] + [
            ("start.index", str(start + limit))
        ]
        links["next"] = {"href": _href(request.path, tuple(onward))}
    body["_links"] = links
    return RestResponse(200, body)


def single(
    request: RestRequest, record: Mapping[str, Any], defaults: Sequence[str], expensive: Sequence[str] = ()
) -> RestResponse:
    return RestResponse(200, select(record, request.params.get("fields"), defaults, expensive))


def created(
    request: RestRequest, record: Mapping[str, Any], location: str, expensive: Sequence[str] = ()
) -> RestResponse:
    """201 with Location; with ``return_records=true`` the created record is echoed."""
    body: dict[str, Any] = {}
    if request.flag("return_records"):
        body = {"num_records": 1, "records": [select(record, "*", (), expensive)]}
    return RestResponse(201, body, {"Location": location})


def _int_param(params: Mapping[str, str], name: str, default: int) -> int:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    try:
        return max(0, int(raw))
    except ValueError as exc:
        raise OntapError(e.INVALID_INPUT, target=name, detail=f'Invalid value "{raw}" for "{name}".') from exc


def _href(path: str, query: Sequence[tuple[str, str]]) -> str:
    if not query:
        return path
    return path + "?" + "&".join(f"{quote(k, safe='.')}={quote(v, safe=QUERY_SAFE)}" for k, v in query)
