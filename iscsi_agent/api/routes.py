"""The socket API's paths and methods, each a small function from a checked request to the service and back.

A route is resolved from the request line alone (404, 405, a bad volume in the path) before any
body is read. ``{volume}`` is one path segment, percent-decoded after the path is split, so
``/v1/attachments/%2Fvol%2Fvol1%2Flun0`` names the LUN ``/vol/vol1/lun0``.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from iscsi_agent.api import wire
from iscsi_agent.api.errors import BadRequest, MethodNotAllowed, RouteNotFound
from iscsi_agent.api.params import json_object, query_flags, volume_name
from iscsi_agent.service_api import AttachService

VOLUME = "{volume}"


@dataclass(frozen=True)
class Call:
    """A resolved request: what its handler needs besides the service."""

    volume: str
    query: str
    body: bytes


@dataclass(frozen=True)
class Reply:
    status: HTTPStatus
    payload: dict[str, Any]


Handler = Callable[[AttachService, Call], Reply]


def attach(service: AttachService, call: Call) -> Reply:
    query_flags(call.query, ())
    volume = volume_name(json_object(call.body, {"volume": str})["volume"])
    attachment, created = service.attach(volume)
    return Reply(HTTPStatus.CREATED if created else HTTPStatus.OK, wire.attachment_json(attachment))


def list_attachments(service: AttachService, call: Call) -> Reply:
    query_flags(call.query, ())
    return Reply(HTTPStatus.OK, wire.attachments_json(service.attachments()))


def show_attachment(service: AttachService, call: Call) -> Reply:
    query_flags(call.query, ())
    return Reply(HTTPStatus.OK, wire.attachment_json(service.attachment(call.volume)))


def detach(service: AttachService, call: Call) -> Reply:
    force = query_flags(call.query, ("force",)).get("force", False)
    return Reply(HTTPStatus.OK, wire.detachment_json(service.detach(call.volume, force=force)))


def resize(service: AttachService, call: Call) -> Reply:
    """No body, or an empty JSON object (clients that always send one are not refused for it)."""
    query_flags(call.query, ())
    if call.body:
        json_object(call.body, {})
    return Reply(HTTPStatus.OK, wire.resized_json(service.resize(call.volume)))


def health(service: AttachService, call: Call) -> Reply:
    query_flags(call.query, ())
    return Reply(HTTPStatus.OK, wire.health_json(service.health()))


def reconcile(service: AttachService, call: Call) -> Reply:
    query_flags(call.query, ())
    dry_run = json_object(call.body, {"dry_run": bool})["dry_run"]
    return Reply(HTTPStatus.OK, wire.actions_json(service.reconcile(dry_run=dry_run)))


ROUTES: Mapping[tuple[str, ...], Mapping[str, Handler]] = {
    ("v1", "attachments"): {"GET": list_attachments, "POST": attach},
    ("v1", "attachments", VOLUME): {"GET": show_attachment, "DELETE": detach},
    ("v1", "attachments", VOLUME, "resize"): {"POST": resize},
    ("v1", "health"): {"GET": health},
    ("v1", "reconcile"): {"POST": reconcile},
}


@dataclass(frozen=True)
class Resolved:
    handler: Handler
    volume: str
    query: str
    takes_body: bool  # a POST carries a JSON object; GET and DELETE carry nothing


def resolve(method: str, target: str) -> Resolved:
    """The handler for a request line's method and target, or RouteNotFound / MethodNotAllowed / BadRequest."""
    if not target.startswith("/"):
        raise BadRequest(f"the request target must be a path such as /v1/health, not {target[:100]!r}")
    path, _, query = target.partition("?")
    segments = tuple(path[1:].split("/"))
    for pattern, methods in ROUTES.items():
        if len(pattern) != len(segments) or any(
            want not in (VOLUME, got) for want, got in zip(pattern, segments, strict=True)
        ):
            continue
        handler = methods.get(method)
        if handler is None:
            raise MethodNotAllowed(method[:20], tuple(sorted(methods)))
        volume = volume_name(_decoded(segments[pattern.index(VOLUME)])) if VOLUME in pattern else ""
        return Resolved(handler, volume, query, takes_body=method == "POST")
    raise RouteNotFound(path[:200])


def _decoded(segment: str) -> str:
    try:
        return urllib.parse.unquote(segment, errors="strict")
    except UnicodeDecodeError:
        raise BadRequest("volume: its percent-encoding is not UTF-8", field="volume") from None
