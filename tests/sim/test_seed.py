"""Seeds describe the cluster to simulate; the default one is what the fixtures and demos use."""

from __future__ import annotations

import json
from pathlib import Path

import requests

from ontap_sim import Simulator
from ontap_sim.seed import DEFAULT_SEED, build_state, ontapi_for
from tests.sim.wire import ZAPI_PATH, field, results_of, zapi_body


class TestDefaultSeed:
    def test_shape(self) -> None:
        state = build_state()
        assert (state.cluster.version, state.cluster.ontapi) == ((9, 13, 1), (1, 231))
        assert {n.name: n.ha_partner for n in state.nodes.values()} == {
            "node-01": "node-02",
            "node-02": "node-01",
        }
        assert [(lif.ip, lif.node, lif.ip_port) for lif in state.lifs.values()] == [
            ("127.0.0.1", "node-01", 3260),
            ("127.0.0.2", "node-02", 3260),
        ]
        assert [lun.path for lun in state.luns.values()] == [f"/vol/vol1/lun{i}" for i in range(4)]
        assert state.igroups == {} and state.maps == []

    def test_serials_exercise_escaping(self) -> None:
        serials = "".join(lun.serial for lun in build_state().luns.values())
        assert {"?", "$", "/"} <= set(serials)

    def test_is_deterministic(self) -> None:
        first, second = build_state(), build_state()
        assert list(first.luns) == list(second.luns)
        assert first.svms["svm1"].iscsi == second.svms["svm1"].iscsi

    def test_is_not_mutated_by_use(self) -> None:
        before = json.dumps(DEFAULT_SEED, sort_keys=True)
        build_state(DEFAULT_SEED)
        assert json.dumps(DEFAULT_SEED, sort_keys=True) == before


class TestCustomSeeds:
    def test_an_old_cluster_reports_its_ontapi(self, start_sim) -> None:
        sim = start_sim(seed={**DEFAULT_SEED, "cluster": {"name": "old", "version": "9.7"}})
        reply = requests.post(
            sim.base_url + ZAPI_PATH,
            data=zapi_body("system-get-ontapi-version", vfiler=None),
            auth=("admin", "netapp1!"),
            timeout=5,
        )
        assert field(results_of(reply.content), "minor-version") == "170"

    def test_ontapi_follows_the_release(self) -> None:
        assert [ontapi_for(v) for v in [(9, 7, 0), (9, 8, 0), (9, 10, 1), (9, 13, 1)]] == [
            (1, 170),
            (1, 180),
            (1, 201),
            (1, 231),
        ]

    def test_igroups_maps_and_chap_from_a_file(self, tmp_path: Path) -> None:
        seed = {
            "svms": [
                {
                    "name": "svmA",
                    "uuid": "11111111-2222-3333-4444-555555555555",
                    "iscsi": {
                        "target_iqn": "iqn.1992-08.com.netapp:sn.0123456789abcdef0123456789abcdef:vs.7"
                    },
                    "lifs": [{"name": "lif", "ip": "127.0.0.3"}],
                    "volumes": [
                        {"name": "v", "luns": [{"name": "l", "size": 4096, "serial": "abc$def?gh/i"}]}
                    ],
                    "igroups": [{"name": "g", "initiators": ["iqn.1994-05.com.redhat:x"]}],
                    "maps": [{"lun": "/vol/v/l", "igroup": "g", "lun_id": 3}],
                    "chap": [
                        {
                            "initiator": "iqn.1994-05.com.redhat:x",
                            "inbound_user": "u",
                            "inbound_password": "p4ssw0rd1234",
                        }
                    ],
                }
            ],
        }
        path = tmp_path / "seed.json"
        path.write_text(json.dumps(seed))
        state = Simulator.from_file(path).state
        assert state.svms["svmA"].uuid == "11111111-2222-3333-4444-555555555555"
        assert state.svms["svmA"].iscsi.target_iqn.endswith(":vs.7")
        assert [m.lun_id for m in state.maps] == [3]
        assert state.chap[("svmA", "iqn.1994-05.com.redhat:x")].auth_type == "chap"
        assert state.chap[("svmA", "default")].auth_type == "none"
