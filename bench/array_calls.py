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

from iscsi_agent.array.budget import Budgets
from iscsi_agent.array.client import ArrayClient
from iscsi_agent.array.connect import connect
from iscsi_agent.array.settings import ApiChoice, ArraySettings
from iscsi_agent.array.transport import HttpReply, HttpTransport
from ontap_sim import Simulator

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


class Recorder:
    """Wraps the real transport and keeps the replies, so they can be replayed without a network."""

    def __init__(self, inner: HttpTransport) -> None:
        self.inner = inner
        self.base_url = inner.base_url
        self.budgets = inner.budgets
        self.replies: list[HttpReply] = []

    def request(self, method: str, path: str, **kwargs: object) -> HttpReply:
        reply = self.inner.request(method, path, **kwargs)
        self.replies.append(reply)
        return reply

    def close(self) -> None:
        self.inner.close()


class Replayer:
    """Answers every request with recorded replies in turn: what is left is the client's own time."""

    base_url = "replay"
    budgets = Budgets()  # never spent: a replayed reply does not fail

    def __init__(self, replies: list[HttpReply]) -> None:
        self.replies = replies
        self.next = 0

    def request(self, method: str, path: str, **kwargs: object) -> HttpReply:
        reply = self.replies[self.next % len(self.replies)]
        self.next += 1
        return reply

    def close(self) -> None:
        pass


def client_only_ms(settings: ArraySettings, call: Callable[[ArrayClient], object]) -> float:
    """Milliseconds per call spent in the client itself (building requests, parsing replies)."""
    recorder = Recorder(HttpTransport.from_settings(settings))
    call(connect(settings, transport=recorder))  # type: ignore[arg-type]
    replayed = connect(settings, transport=Replayer(recorder.replies))  # type: ignore[arg-type]
    return per_call_ms(lambda: call(replayed), runs=TIMED_RUNS * 5)


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
        lookup = client_only_ms(settings, lambda c: c.lun_by_path(LUNS[0], fresh=True))
        row["ms: LUN lookup, client only"] = lookup
        row["ms: maps of igroup, client only"] = client_only_ms(settings, lambda c: c.maps_of_igroup(IGROUP))
        row["ms: portals, client only"] = client_only_ms(settings, lambda c: c.portals())
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
    print("Array requests per attach (counted by the simulator) and time per call, simulator latency 0;")
    print("'ms' rows include loopback HTTP and the simulator, 'client only' rows replay recorded replies")
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
