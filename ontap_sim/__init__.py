"""A stateful ONTAP simulator serving ZAPI and REST on loopback, for tests and demos.

    from ontap_sim import Simulator
    sim = Simulator()                      # default seed, admin / netapp1!
    base_url = sim.start()                 # "http://127.0.0.1:<port>"; start(tls=True) -> https + sim.ca_cert_path
    sim.faults.inject("lun-map", "errno", errno=13001, reason="busy")
    sim.counts[("zapi", "lun-map")]; sim.total("rest"); sim.state.maps
    sim.stop()

Default seed (``ontap_sim.seed.DEFAULT_SEED``): cluster ``cluster1`` running 9.13.1
(ONTAPI 1.231); HA pair ``node-01``/``node-02``; SVM ``svm1`` with an enabled iSCSI
service (target ``iqn.1992-08.com.netapp:sn.<32 hex>:vs.2``), data LIFs ``iscsi_lif1``
127.0.0.1 on node-01 (tpgroup 1027) and ``iscsi_lif2`` 127.0.0.2 on node-02 (tpgroup 1028);
volume ``vol1`` (on node-01) holding ``/vol/vol1/lun0`` .. ``lun3`` with serials
``wH5?k2Lm/9Qa``, ``Zp$3Rt7/xY?b``, ``8dK?mN2$vB4c``, ``Qe/5Ju$8Xw?1``; no igroups, no
maps, CHAP default ``none``. The seed JSON format is documented in ``ontap_sim.seed``.

The agent's runtime never imports this package; ``python -m ontap_sim`` runs it standalone.
"""

from ontap_sim.simulator import Simulator

__all__ = ["Simulator"]
