"""``python -m ontap_sim --listen 127.0.0.1:8443 [--tls] [--seed seed.json] [--tgt]``: run until Ctrl-C/SIGTERM."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence

from ontap_sim.seed import load_seed
from ontap_sim.simulator import Simulator


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m ontap_sim", description="Simulated ONTAP cluster (ZAPI + REST)."
    )
    parser.add_argument(
        "--listen", default="127.0.0.1:8443", help="loopback address:port (default %(default)s)"
    )
    parser.add_argument("--tls", action="store_true", help="serve HTTPS with a throw-away CA")
    parser.add_argument("--seed", help="seed JSON file (default: the built-in seed)")
    parser.add_argument("--user", default="admin")
    parser.add_argument("--password", default="netapp1!")
    parser.add_argument("--tgt", action="store_true", help="mirror maps into the local tgtd via tgtadm")
    parser.add_argument("--tid", type=int, default=1, help="tgtd target id for --tgt (default %(default)s)")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    host, _, port = args.listen.rpartition(":")
    tgt = None
    if args.tgt:
        from ontap_sim.mirror import TgtMirror
        from ontap_sim.tgt import Tgtadm

        tgt = TgtMirror(Tgtadm(), tid=args.tid)
    seed = load_seed(args.seed) if args.seed else None
    sim = Simulator(seed=seed, username=args.user, password=args.password, tgt=tgt)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    base_url = sim.start(host=host.strip("[]") or "127.0.0.1", port=int(port or 8443), tls=args.tls)
    print(base_url, flush=True)
    if sim.ca_cert_path:
        print(f"CA certificate: {sim.ca_cert_path}", flush=True)
    stop.wait()
    sim.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
