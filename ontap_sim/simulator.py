"""The public face of the simulator: build from a seed, start on loopback, inspect, stop."""

from __future__ import annotations

import ipaddress
import logging
import shutil
import tempfile
import threading
from collections import Counter
from pathlib import Path
from typing import Any, Self

from ontap_sim.app import App
from ontap_sim.faults import Faults
from ontap_sim.mirror import TgtadmLike, TgtMirror
from ontap_sim.model import State
from ontap_sim.seed import build_state, load_seed
from ontap_sim.server import SimServer, tls_context
from ontap_sim.tgt import FIRST_DATA_LUN_ID
from ontap_sim.tls import write_certs

log = logging.getLogger(__name__)


class Simulator:
    """A stateful ONTAP cluster answering ZAPI and REST on one loopback port."""

    def __init__(
        self,
        seed: dict[str, Any] | None = None,
        username: str = "admin",
        password: str = "netapp1!",
        tgt: TgtadmLike | TgtMirror | None = None,
    ) -> None:
        self.state: State = build_state(seed)
        self.faults = Faults()
        self._stopping = threading.Event()
        self._app = App(self.state, self.faults, username, password, wait=self._stopping.wait)
        self.mirror = tgt if isinstance(tgt, TgtMirror) or tgt is None else TgtMirror(tgt)
        if self.mirror is not None:  # ids below tgtd's first data LUN cannot be mirrored
            self.state.reserved_lun_ids = frozenset(range(FIRST_DATA_LUN_ID))
        self.base_url: str | None = None
        self.ca_cert_path: str | None = None
        self._server: SimServer | None = None
        self._cert_dir: Path | None = None

    @classmethod
    def from_file(cls, path: str | Path, **kwargs: Any) -> Simulator:
        return cls(seed=load_seed(path), **kwargs)

    # -- lifecycle ------------------------------------------------------------------------

    def start(
        self, host: str = "127.0.0.1", port: int = 0, tls: bool = False, client_ca: str | None = None
    ) -> str:
        """Serve on host:port (0 picks a free port); returns the base URL.

        With ``client_ca`` (TLS only) every client must present a certificate that CA issued; one
        whose common name is the account's user name is authenticated without a password.
        """
        if self._server is not None:
            raise RuntimeError("simulator already started")
        if not ipaddress.ip_address(host).is_loopback:
            raise ValueError(f"the simulator listens on loopback only, not {host}")
        if client_ca is not None and not tls:
            raise ValueError("client certificates need tls=True")
        context = None
        if tls:
            self._cert_dir = Path(tempfile.mkdtemp(prefix="ontap-sim-tls-"))
            files = write_certs(self._cert_dir, host)
            context = tls_context(str(files.server_cert), str(files.server_key), client_ca)
            self.ca_cert_path = str(files.ca_cert)
        self._stopping.clear()
        if self.mirror is not None:
            with self.state.lock:
                self.mirror.start(self.state)
        self._server = SimServer((host, port), self._app, context)
        self._server.serve()
        bound_port = self._server.server_address[1]
        shown_host = f"[{host}]" if ":" in host else host
        self.base_url = f"{'https' if tls else 'http'}://{shown_host}:{bound_port}"
        log.info("ONTAP simulator for cluster %s serving at %s", self.state.cluster.name, self.base_url)
        return self.base_url

    def stop(self) -> None:
        """Stop serving, wake held requests, drop keep-alive connections, undo the tgtd mirror."""
        self._stopping.set()
        if self._server is not None:
            self._server.stop()
            self._server = None
        if self.mirror is not None:
            with self.state.lock:
                if self.mirror.sync in self.state.listeners:
                    self.state.listeners.remove(self.mirror.sync)
                    self.mirror.close()
        if self._cert_dir is not None:
            shutil.rmtree(self._cert_dir, ignore_errors=True)
            self._cert_dir = None
            self.ca_cert_path = None
        self.base_url = None

    def __enter__(self) -> Self:
        if self._server is None:
            self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- observation and control -----------------------------------------------------------------

    @property
    def counts(self) -> Counter[tuple[str, str]]:
        """Requests per API: ("zapi", "lun-map") or ("rest", "POST /api/protocols/san/lun-maps")."""
        return self._app.snapshot_counts()

    def total(self, kind: str) -> int:
        """All requests of one API family: "zapi" or "rest"."""
        return sum(n for (k, _), n in self._app.snapshot_counts().items() if k == kind)

    def reset_counts(self) -> None:
        self._app.reset_counts()

    @property
    def latency(self) -> float:
        return self._app.latency

    @latency.setter
    def latency(self, seconds: float) -> None:
        self._app.latency = seconds
