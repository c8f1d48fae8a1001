"""How to reach the array: one frozen settings value, built by the config layer and passed down."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from iscsi_agent.portal import bracketed

DEFAULT_PORTS = {"https": 443, "http": 80}
SYSTEM_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
"""The system's trust store (Debian's, kept by update-ca-certificates): what an operator edits, where
requests would otherwise use the certifi bundle shipped inside the Python environment."""


class ApiChoice(enum.Enum):
    AUTO = "auto"
    REST = "rest"
    ZAPI = "zapi"


@dataclass(frozen=True)
class ArraySettings:
    """Connection settings for one ONTAP cluster or SVM management LIF.

    With ``client_cert``/``client_key`` set the client authenticates by certificate and sends
    no password, as ONTAP expects. ``ca_bundle`` replaces the system trust store
    (``SYSTEM_CA_BUNDLE``) when given;
    ``verify_tls=False`` and ``scheme="http"`` are for labs only (``security_risks`` says why).
    ``timeout`` is the read timeout per request. One client call tries at most ``attempts``
    times in all and gives up at ``deadline`` seconds (by default ``call_deadline``).
    """

    hostname: str
    username: str = ""
    password: str = field(default="", repr=False)
    vserver: str = ""
    port: int | None = None
    scheme: str = "https"
    verify_tls: bool = True
    ca_bundle: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    timeout: float = 30.0
    connect_timeout: float = 10.0
    api: ApiChoice = ApiChoice.AUTO
    attempts: int = 3
    deadline: float | None = None
    page_size: int = 100
    lun_cache_size: int = 512

    @property
    def base_url(self) -> str:
        port = self.port or DEFAULT_PORTS[self.scheme]
        return f"{self.scheme}://{bracketed(self.hostname)}:{port}"

    @property
    def call_deadline(self) -> float:
        """Seconds one client call may take: ``deadline``, or every try's connect and read timeouts."""
        if self.deadline is not None:
            return self.deadline
        return max(1, self.attempts) * (self.connect_timeout + self.timeout)

    def security_risks(self) -> tuple[str, ...]:
        """What these settings expose, in words an operator can act on; empty when nothing."""
        if self.scheme == "http":
            return (
                "scheme = http: the password (HTTP Basic) and CHAP secrets cross the network in clear "
                "text, and anyone on the path can pose as the array",
            )
        if not self.verify_tls:
            return (
                "verify_tls = false: the array's certificate is not checked, so anyone on the path can "
                "pose as the array and read the password and CHAP secrets",
            )
        return ()

    @property
    def trust_store(self) -> str:
        """The PEM file of the CAs the array's certificate is checked against."""
        return self.ca_bundle or SYSTEM_CA_BUNDLE

    @property
    def verify(self) -> bool | str:
        """The value requests takes for ``verify``: False, or the trust store's path (never certifi's)."""
        if not self.verify_tls:
            return False
        return self.trust_store

    @property
    def cert(self) -> tuple[str, str] | None:
        if self.client_cert and self.client_key:
            return (self.client_cert, self.client_key)
        return None
