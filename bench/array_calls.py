"""Array requests per attach-shaped call sequence, and client time per call, against the simulator.

Run: ``python -m bench.array_calls`` (or ``python bench/array_calls.py``). It starts the ONTAP
simulator on loopback with zero latency, drives the client over ZAPI and over REST, and prints
how many HTTP requests the simulator counted for one attach, and milliseconds per client call.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from iscsi_agent.array.client import ArrayClient  # noqa: E402
from iscsi_agent.array.connect import connect  # noqa: E402
from iscsi_agent.array.settings import ApiChoice, ArraySettings  # noqa: E402
from ontap_sim import Simulator  # noqa: E402

USERNAME, PASSWORD = "admin", "netapp1!"
INITIATOR = "iqn.1994-05.com.redhat:bench-host"
IGROUP = "openstack-bench-host"
LUNS = ("/vol/vol1/lun0", "/vol/vol1/lun1")
TIMED_RUNS = 200


def attach(client: ArrayClient, path: str) -> int:
    """The array side of one attach, in the order the attach service makes the calls."""
    client.version()
    lun = client.lun_by_path(path)
    igroups = [ig for ig in client.igroups_with_initiator(INITIATOR) if ig.has_exactly({INITIATOR})]
    igroup = igroups[0] if igroups else client.create_igroup(IGROUP, "linux", (INITIATOR,))
    lun_id = client.map_lun(lun.path, igroup.name)
    client.portals()
    client.iscsi_service()
    return lun_id


def count_requests(sim: Simulator, api: str, action: Callable[[], object]) -> int:
    sim.reset_counts()
    action()
    return sim.total(api)


def per_call_ms(action: Callable[[], object], runs: int = TIMED_RUNS) -> float:
    action()  # warm the connection
    start = time.perf_counter()
    for _ in range(runs):
        action()
    return (time.perf_counter() - start) * 1000 / runs


def measure(api: ApiChoice) -> dict[str, float]:
    sim = Simulator(username=USERNAME, password=PASSWORD)
    base_url = sim.start(host="127.0.0.1", port=0, tls=False)
    sim.latency = 0.0
    try:
        port = int(base_url.rsplit(":", 1)[1].rstrip("/"))
        settings = ArraySettings(
            "127.0.0.1", USERNAME, PASSWORD, vserver="svm1", port=port, scheme="http", api=api
        )
        client = connect(settings)
        row = {
            "attach, new host (cold)": count_requests(sim, api.value, lambda: attach(client, LUNS[0])),
            "attach, same LUN again (warm)": count_requests(sim, api.value, lambda: attach(client, LUNS[0])),
            "attach, second LUN": count_requests(sim, api.value, lambda: attach(client, LUNS[1])),
        }
        sim.reset_counts()
        row["ms: version"] = per_call_ms(client.version)
        row["ms: LUN lookup (uncached)"] = per_call_ms(lambda: client.lun_by_path(LUNS[0], fresh=True))
        row["ms: LUN lookup (cached)"] = per_call_ms(lambda: client.lun_by_path(LUNS[0]))
        row["ms: maps of igroup"] = per_call_ms(lambda: client.maps_of_igroup(IGROUP))
        row["ms: map (already mapped)"] = per_call_ms(lambda: client.map_lun(LUNS[0], IGROUP))
        row["ms: portals"] = per_call_ms(client.portals)
        row["ms: attach (warm)"] = per_call_ms(lambda: attach(client, LUNS[0]), runs=50)
        client.close()
        return row
    finally:
        sim.stop()


def table(rows: dict[str, dict[str, float]]) -> str:
    apis = list(rows)
    names = list(rows[apis[0]])
    width = max(len(name) for name in names)
    lines = [f"{'':{width}}  " + "  ".join(f"{api:>8}" for api in apis)]
    for name in names:
        cells = []
        for api in apis:
            value = rows[api][name]
            cells.append(f"{value:8.2f}" if name.startswith("ms:") else f"{int(value):8d}")
        lines.append(f"{name:{width}}  " + "  ".join(cells))
    return "\n".join(lines)


def main() -> int:
    rows = {api.value: measure(api) for api in (ApiChoice.ZAPI, ApiChoice.REST)}
    print("Array requests per attach (counted by the simulator) and client time per call, latency 0")
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
