"""What a storage administrator does to the simulated array behind the agent's back, over its own wire.

The agent never resizes a LUN, so its ``ArrayClient`` has no such call; tests that need a LUN grown
on the array (a Cinder or Trident extend) use these instead. They speak to the simulator on
loopback exactly as those drivers speak to ONTAP: REST ``PATCH /api/storage/luns/{uuid}`` with
``space.size`` (Trident, Cinder's REST client), or ZAPI ``lun-resize`` (Cinder's ZAPI client), so
the request goes through the same parsing, rules and tgtd mirror as any other client's::

    new_size = grow_lun_rest(sim, "/vol/vol1/lun1", 2 * GiB)   # the size ONTAP set (rounded up)
"""

from __future__ import annotations

import requests
from lxml import etree

from ontap_sim import Simulator

SVM = "svm1"
AUTH = ("admin", "netapp1!")
ZAPI_PATH = "/servlets/netapp.servlets.admin.XMLrequest_filer"
ZAPI_NS = "http://www.netapp.com/filer/admin"
TIMEOUT = 30.0


class ArrayRefused(Exception):
    """The simulated array refused the administrator's request; carries ONTAP's code and words."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


def _base_url(sim: Simulator) -> str:
    if sim.base_url is None:
        raise RuntimeError("the simulator is not serving")
    return sim.base_url


def grow_lun_rest(sim: Simulator, path: str, size: int, svm: str = SVM) -> int:
    """Grow the LUN at ``path`` to ``size`` bytes over REST; the size the array reports afterwards."""
    base = _base_url(sim)
    with requests.Session() as session:
        session.auth = AUTH
        found = session.get(
            f"{base}/api/storage/luns", params={"name": path, "svm.name": svm}, timeout=TIMEOUT
        ).json()
        if found.get("num_records") != 1:
            raise ArrayRefused("5374875", f"no single LUN at {path}: {found}")
        uuid = found["records"][0]["uuid"]
        reply = session.patch(
            f"{base}/api/storage/luns/{uuid}", json={"space": {"size": size}}, timeout=TIMEOUT
        )
        if reply.status_code != 200:
            error = reply.json()["error"]
            raise ArrayRefused(error["code"], error["message"])
        shown = session.get(
            f"{base}/api/storage/luns/{uuid}", params={"fields": "space.size"}, timeout=TIMEOUT
        )
        return int(shown.json()["space"]["size"])


def resize_lun_zapi(sim: Simulator, path: str, size: int, force: bool = False, svm: str = SVM) -> int:
    """Resize the LUN at ``path`` over ZAPI ``lun-resize``; the ``actual-size`` the array answers."""
    body = (
        f'<?xml version="1.0" encoding="UTF-8"?><netapp xmlns="{ZAPI_NS}" version="1.21" vfiler="{svm}">'
        f"<lun-resize><path>{path}</path><size>{size}</size><force>{str(force).lower()}</force></lun-resize>"
        "</netapp>"
    ).encode()
    reply = requests.post(
        _base_url(sim) + ZAPI_PATH,
        data=body,
        auth=AUTH,
        headers={"Content-Type": "text/xml"},
        timeout=TIMEOUT,
    )
    results = etree.fromstring(reply.content).find(f"{{{ZAPI_NS}}}results")
    if results is None or results.get("status") != "passed":
        shown = {} if results is None else dict(results.attrib)
        raise ArrayRefused(str(shown.get("errno", reply.status_code)), str(shown.get("reason", reply.text)))
    return int(results.findtext(f"{{{ZAPI_NS}}}actual-size", default="-1"))
