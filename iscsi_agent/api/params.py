"""What a request carries, checked and typed: JSON bodies, query parameters and volume names.

Every refusal is a BadRequest whose message names the field or parameter and says what is wrong,
because the caller is usually a hook script whose author reads nothing else. Bodies are strict:
exactly the keys of the contract, of its types, no duplicate keys, no NaN.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Mapping
from typing import Any

from iscsi_agent.api.errors import BadRequest

MAX_VOLUME_LENGTH = 1024  # well over ONTAP's longest LUN path; longer is a broken client
_MAX_QUERY_FIELDS = 16

_JSON_TYPE_NAMES = {bool: "a boolean", str: "a string", int: "a number", float: "a number"}


def _json_type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return _JSON_TYPE_NAMES.get(type(value), type(value).__name__)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            raise BadRequest(f"body: key {key[:100]!r} appears more than once", field=key[:100])
        seen.add(key)
    return dict(pairs)


def _no_constant(name: str) -> Any:
    raise BadRequest(f"body: {name} is not a JSON value", field="body")


def json_object(body: bytes, fields: Mapping[str, type]) -> dict[str, Any]:
    """The body as a JSON object with exactly ``fields``, each of its type (bool is not a number)."""
    if not body:
        raise BadRequest(f"body: empty; send a JSON object with {_key_list(fields)}", field="body")
    try:
        value = json.loads(
            body.decode("utf-8"), object_pairs_hook=_no_duplicates, parse_constant=_no_constant
        )
    except UnicodeDecodeError:
        raise BadRequest("body: not UTF-8 text", field="body") from None
    except RecursionError:
        raise BadRequest("body: nested too deeply", field="body") from None
    except ValueError as exc:
        raise BadRequest(f"body: not JSON ({exc})", field="body") from None
    if not isinstance(value, dict):
        raise BadRequest(f"body: must be a JSON object, not {_json_type_name(value)}", field="body")
    for key in value:
        if key not in fields:
            raise BadRequest(
                f"body: unknown key {key[:100]!r}; expected {_key_list(fields)}", field=key[:100]
            )
    for key, kind in fields.items():
        if key not in value:
            raise BadRequest(f"body: missing key {key!r}", field=key)
        if type(value[key]) is not kind:
            raise BadRequest(
                f"{key}: must be {_JSON_TYPE_NAMES[kind]}, not {_json_type_name(value[key])}", field=key
            )
    return value


def _key_list(fields: Mapping[str, type]) -> str:
    return ", ".join(repr(key) for key in fields)


def query_flags(query: str, allowed: tuple[str, ...]) -> dict[str, bool]:
    """Query parameters that are flags (``force=true``): only ``allowed`` names, only true or false."""
    try:
        pairs = urllib.parse.parse_qsl(
            query, keep_blank_values=True, strict_parsing=bool(query), max_num_fields=_MAX_QUERY_FIELDS
        )
    except (ValueError, UnicodeError) as exc:
        raise BadRequest(f"query: cannot be read ({exc})", parameter=query[:100]) from None
    flags: dict[str, bool] = {}
    for name, text in pairs:
        if name not in allowed:
            expected = f"only {', '.join(allowed)}" if allowed else "no parameters"
            raise BadRequest(
                f"query: unknown parameter {name[:100]!r}; this path takes {expected}", parameter=name[:100]
            )
        if name in flags:
            raise BadRequest(f"{name}: given more than once", parameter=name)
        if text not in ("true", "false"):
            raise BadRequest(f"{name}: must be true or false, not {text[:100]!r}", parameter=name)
        flags[name] = text == "true"
    return flags


def volume_name(text: str) -> str:
    """A volume as a caller names it: a LUN path, name or UUID; the service decides which LUN it is."""
    if not text:
        raise BadRequest("volume: must not be empty", field="volume")
    if len(text) > MAX_VOLUME_LENGTH:
        raise BadRequest(f"volume: {len(text)} characters, over {MAX_VOLUME_LENGTH}", field="volume")
    if not text.isprintable():
        raise BadRequest("volume: contains control characters", field="volume")
    return text
