"""Builds a ``State`` from a seed: a JSON-shaped dict describing the cluster to simulate.

Seed format (every key optional; missing parts come from DEFAULT_SEED's conventions)::

    {
      "cluster": {"name": "cluster1", "uuid": "...", "version": "9.13.1", "ontapi": "1.231"},
      "nodes": [{"name": "node-01", "ha_partner": "node-02"}, {"name": "node-02", "ha_partner": "node-01"}],
      "svms": [{
        "name": "svm1", "uuid": "...",
        "iscsi": {"enabled": true, "target_iqn": "iqn.1992-08.com.netapp:sn.<32 hex>:vs.2"},  # null: no service
        "lifs": [{"name": "iscsi_lif1", "ip": "127.0.0.1", "node": "node-01", "tpgroup_tag": 1027,
                  "enabled": true, "port": "e0d", "services": ["data_core", "data_iscsi"]}],
        "volumes": [{"name": "vol1", "node": "node-01",
                     "luns": [{"name": "lun0", "size": 1073741824, "serial": "wH5?k2Lm/9Qa", "os_type": "linux"}]}],
        "igroups": [{"name": "host1", "protocol": "iscsi", "os_type": "linux", "initiators": ["iqn..."]}],
        "maps": [{"lun": "/vol/vol1/lun0", "igroup": "host1", "lun_id": 0}],
        "chap": [{"initiator": "iqn...", "auth_type": "chap", "inbound_user": "u", "inbound_password": "p",
                  "outbound_user": "", "outbound_password": ""}]
      }]
    }

``ontapi`` defaults to the ONTAPI release that shipped with ``version`` (9.7 -> 1.170,
9.13.1 -> 1.231), so ``{"cluster": {"version": "9.7"}}`` emulates an old cluster.
UUIDs, serials and target IQNs left out are derived deterministically from the names.
"""

from __future__ import annotations

import copy
import json
import random
import uuid as uuidlib
from pathlib import Path
from typing import Any

from ontap_sim.model import Chap, Cluster, IscsiService, Lif, Node, State, Svm, Volume

GiB = 1024**3

DEFAULT_SEED: dict[str, Any] = {
    "cluster": {"name": "cluster1", "version": "9.13.1"},
    "nodes": [
        {"name": "node-01", "ha_partner": "node-02"},
        {"name": "node-02", "ha_partner": "node-01"},
    ],
    "svms": [
        {
            "name": "svm1",
            "iscsi": {"enabled": True},
            "lifs": [
                {"name": "iscsi_lif1", "ip": "127.0.0.1", "node": "node-01", "tpgroup_tag": 1027},
                {"name": "iscsi_lif2", "ip": "127.0.0.2", "node": "node-02", "tpgroup_tag": 1028},
            ],
            "volumes": [
                {
                    "name": "vol1",
                    "node": "node-01",
                    "luns": [
                        {"name": "lun0", "size": 1 * GiB, "serial": "wH5?k2Lm/9Qa"},
                        {"name": "lun1", "size": 2 * GiB, "serial": "Zp$3Rt7/xY?b"},
                        {"name": "lun2", "size": 1 * GiB, "serial": "8dK?mN2$vB4c"},
                        {"name": "lun3", "size": 4 * GiB, "serial": "Qe/5Ju$8Xw?1"},
                    ],
                }
            ],
        }
    ],
}


def load_seed(path: str | Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def ontapi_for(version: tuple[int, int, int]) -> tuple[int, int]:
    """The ONTAPI minor that shipped with an ONTAP 9 release (9.7 -> 170, 9.10.1 -> 201)."""
    minor = version[1]
    return (1, 100 + 10 * minor + (1 if minor >= 10 else 0))


def _version(text: str) -> tuple[int, int, int]:
    parts = [int(p) for p in text.split(".")] + [0, 0]
    return parts[0], parts[1], parts[2]


def _uuid(*names: str) -> str:
    return str(uuidlib.uuid5(uuidlib.NAMESPACE_URL, "ontap-sim:" + ":".join(names)))


def build_state(seed: dict[str, Any] | None = None) -> State:
    seed = copy.deepcopy(DEFAULT_SEED if seed is None else seed)
    spec = seed.get("cluster", {})
    name = spec.get("name", "cluster1")
    version = _version(str(spec.get("version", "9.13.1")))
    ontapi = _version(str(spec["ontapi"]))[:2] if "ontapi" in spec else ontapi_for(version)
    cluster = Cluster(name, spec.get("uuid", _uuid(name)), version, ontapi)
    state = State(cluster, random.Random(cluster.uuid))
    for node in seed.get("nodes", DEFAULT_SEED["nodes"]):
        state.nodes[node["name"]] = Node(
            node["name"], node.get("uuid", _uuid(name, node["name"])), node.get("ha_partner")
        )
    first_node = next(iter(state.nodes))
    for index, svm_spec in enumerate(seed.get("svms", [])):
        _add_svm(state, svm_spec, index, first_node)
    return state


def _add_svm(state: State, spec: dict[str, Any], index: int, first_node: str) -> None:
    name = spec["name"]
    svm_uuid = spec.get("uuid", _uuid(state.cluster.name, name))
    iscsi = spec.get("iscsi", {"enabled": True})
    service = None
    if iscsi is not None:
        iqn = (
            iscsi.get("target_iqn")
            or f"iqn.1992-08.com.netapp:sn.{uuidlib.UUID(state.cluster.uuid).hex}:vs.{index + 2}"
        )
        service = IscsiService(iqn, iscsi.get("alias", name), bool(iscsi.get("enabled", True)))
    svm = Svm(name, svm_uuid, service)
    state.svms[name] = svm
    for lif in spec.get("lifs", []):
        record = Lif(
            svm=name,
            name=lif["name"],
            uuid=lif.get("uuid", _uuid(name, "lif", lif["name"])),
            ip=lif["ip"],
            node=lif.get("node", first_node),
            port_name=lif.get("port", "e0d"),
            tpgroup_tag=int(lif.get("tpgroup_tag", 1027 + len(state.lifs))),
            enabled=bool(lif.get("enabled", True)),
            services=tuple(lif.get("services", ("data_core", "data_iscsi"))),
        )
        state.lifs[record.uuid] = record
    for vol in spec.get("volumes", []):
        volume = Volume(
            name, vol["name"], vol.get("uuid", _uuid(name, "vol", vol["name"])), vol.get("node", first_node)
        )
        state.volumes[(name, volume.name)] = volume
        for lun in vol.get("luns", []):
            state.create_lun(
                svm,
                f"/vol/{volume.name}/{lun['name']}",
                int(lun.get("size", GiB)),
                lun.get("os_type", "linux"),
                lun.get("serial"),
            )
    for ig in spec.get("igroups", []):
        state.create_igroup(
            svm,
            ig["name"],
            ig.get("protocol", "iscsi"),
            ig.get("os_type", "linux"),
            tuple(ig.get("initiators", ())),
        )
    for m in spec.get("maps", []):
        state.map_lun(state.lun(name, path=m["lun"]), state.igroup(name, name=m["igroup"]), m.get("lun_id"))
    for c in spec.get("chap", []):
        state.add_chap(
            Chap(
                name,
                c["initiator"],
                c.get("auth_type", "chap"),
                c.get("inbound_user", ""),
                c.get("inbound_password", ""),
                c.get("outbound_user", ""),
                c.get("outbound_password", ""),
            )
        )
    if (name, "default") not in state.chap:
        state.chap[(name, "default")] = Chap(name, "default", "none")
