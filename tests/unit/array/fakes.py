"""Fakes for the array layer's unit tests: a scripted transport, a scripted session, an in-memory array."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

import requests

from iscsi_agent.array.budget import Budgets
from iscsi_agent.array.errors import (
    ArrayAlreadyExists,
    ArrayAlreadyMapped,
    ArrayNotFound,
    ArrayNotMapped,
    ArrayUnreachable,
)
from iscsi_agent.array.model import (
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
from iscsi_agent.array.transport import HttpReply
from iscsi_agent.portal import Portal

NS = "http://www.netapp.com/filer/admin"


def xml_reply(inner: str = "", *, status: str = "passed", attrs: str = "") -> HttpReply:
    """A ZAPI reply shaped like ONTAP's, with the prologue and DOCTYPE clients must not depend on."""
    body = (
        "<?xml version='1.0' encoding='UTF-8' ?>\n"
        "<!DOCTYPE netapp SYSTEM 'file:/etc/netapp_gx.dtd'>\n"
        f"<netapp version='1.21' xmlns='{NS}'><results status=\"{status}\" {attrs}>{inner}</results></netapp>"
    )
    return HttpReply(200, "OK", {"Content-Type": "text/xml"}, body.encode())


def zapi_failure(errno: str, reason: str) -> HttpReply:
    return xml_reply(status="failed", attrs=f'errno="{errno}" reason="{reason}"')


def json_reply(body: Any, status: int = 200, reason: str = "OK") -> HttpReply:
    return HttpReply(status, reason, {"Content-Type": "application/hal+json"}, json.dumps(body).encode())


@dataclass(frozen=True)
class SentRequest:
    method: str
    path: str
    params: Any
    json: Any
    data: bytes | None
    idempotent: bool


class ScriptedTransport:
    """Stands in for HttpTransport: replays replies or raises errors in order, records each request."""

    base_url = "https://array.test:443"

    def __init__(self, *replies: HttpReply | Exception) -> None:
        self.replies = list(replies)
        self.requests: list[SentRequest] = []
        self.closed = False
        self.sleeps: list[float] = []
        self.budgets = Budgets(sleep=self.sleeps.append, rand=lambda: 1.0)

    def request(self, method, path, *, idempotent, params=None, json=None, data=None, headers=None):
        self.requests.append(SentRequest(method, path, params, json, data, idempotent))
        if not self.replies:
            raise AssertionError(f"unexpected request {method} {path}")
        reply = self.replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        return reply

    def close(self) -> None:
        self.closed = True


def response(status: int = 200, body: bytes = b"", reason: str = "OK") -> requests.Response:
    made = requests.Response()
    made.status_code = status
    made.reason = reason
    made._content = body
    return made


class ScriptedSession:
    """Stands in for requests.Session under HttpTransport: replays responses or raises exceptions."""

    def __init__(self, *outcomes: requests.Response | Exception) -> None:
        self.outcomes = list(outcomes)
        self.calls: list[tuple[str, str, dict]] = []

    def request(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        self.calls.append((method, url, kwargs))
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def close(self) -> None:
        pass


class FakeOps:
    """An in-memory array behind the ArrayOps interface, counting calls and able to lose replies.

    ``lose_reply_of`` names an operation whose next call is applied and then reported as a
    connection reset, the case where only re-reading can tell that the write happened.
    """

    api = "fake"

    def __init__(self, luns: list[Lun]) -> None:
        self.luns = {lun.path: lun for lun in luns}
        self.igroups: dict[str, Igroup] = {}
        self.maps_: dict[tuple[str, str], int] = {}
        self.calls: list[str] = []
        self.lose_reply_of: set[str] = set()
        self.fail_before: set[str] = set()

    def _call(self, name: str) -> None:
        self.calls.append(name)
        if name in self.fail_before:
            self.fail_before.discard(name)
            raise ArrayUnreachable("connection refused")

    def _reply(self, name: str, value: Any) -> Any:
        if name in self.lose_reply_of:
            self.lose_reply_of.discard(name)
            raise ArrayUnreachable("connection reset by peer")
        return value

    def version(self) -> Version:
        self._call("version")
        return Version(9, 14, 1)

    def check_svm(self) -> Svm:
        self._call("check_svm")
        return Svm("svm1")

    def find_luns(self, key: LunKey, value: str) -> list[Lun]:
        self._call("find_luns")
        attribute = {LunKey.PATH: "path", LunKey.UUID: "uuid", LunKey.NAME: "name"}[key]
        return [
            dataclasses.replace(lun, mapped=any(p == lun.path for p, _ in self.maps_))
            for lun in self.luns.values()
            if getattr(lun, attribute) == value
        ]

    def igroups_with_initiator(self, initiator: str) -> tuple[Igroup, ...]:
        self._call("igroups_with_initiator")
        return tuple(ig for ig in self.igroups.values() if initiator in ig.initiators)

    def igroup_by_name(self, name: str) -> Igroup | None:
        self._call("igroup_by_name")
        return self.igroups.get(name)

    def create_igroup(self, name: str, os_type: str, initiators: tuple[str, ...]) -> Igroup:
        self._call("create_igroup")
        if name in self.igroups:
            raise ArrayAlreadyExists("igroup-create", "9004", "igroup exists")
        self.igroups[name] = Igroup(name, "iscsi", os_type, frozenset(initiators))
        return self._reply("create_igroup", self.igroups[name])

    def add_initiator(self, igroup: str, initiator: str) -> None:
        self._call("add_initiator")
        if igroup not in self.igroups:
            raise ArrayNotFound("igroup", igroup)
        found = self.igroups[igroup]
        if initiator in found.initiators:
            raise ArrayAlreadyExists("igroup-add", "9008", "already in igroup")
        self.igroups[igroup] = dataclasses.replace(found, initiators=found.initiators | {initiator})
        self._reply("add_initiator", None)

    def map_lun(self, path: str, igroup: str, lun_id: int | None) -> Mapped:
        self._call("map_lun")
        if (path, igroup) in self.maps_:
            raise ArrayAlreadyMapped("lun-map", "9023", "LUN already mapped to this group")
        used = {i for (_, g), i in self.maps_.items() if g == igroup}
        assigned = lun_id if lun_id is not None else min(set(range(len(used) + 1)) - used)
        self.maps_[(path, igroup)] = assigned
        return self._reply("map_lun", Mapped(assigned))

    def unmap_lun(self, path: str, igroup: str, uuids: tuple[str, str] | None = None) -> None:
        self._call("unmap_lun")
        if self.maps_.pop((path, igroup), None) is None:
            raise ArrayNotMapped("lun-unmap", "9016", "no such map")

    def maps(self, *, path: str | None = None, igroup: str | None = None) -> tuple[LunMap, ...]:
        self._call("maps")
        return tuple(
            LunMap(p, g, i, reporting_nodes=("node-01", "node-02"))
            for (p, g), i in sorted(self.maps_.items())
            if (path is None or p == path) and (igroup is None or g == igroup)
        )

    def portals(self) -> tuple[Lif, ...]:
        self._call("portals")
        return (Lif(Portal("127.0.0.1", 3260), 1, "node-01", "node-01"),)

    def iscsi_service(self) -> IscsiService:
        self._call("iscsi_service")
        return IscsiService("iqn.1992-08.com.netapp:sn.1:vs.2")

    def chap_credentials(self, initiator: str) -> ChapCredentials | None:
        self._call("chap_credentials")
        return None

    def set_chap_credentials(self, credentials: ChapCredentials) -> None:
        self._call("set_chap_credentials")

    def close(self) -> None:
        self._call("close")
