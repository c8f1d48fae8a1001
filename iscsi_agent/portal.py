"""An iSCSI portal (address and TCP port) as iscsiadm and sysfs write it: "127.0.0.1:3260", "[fe80::1]:3260".

The one definition of the portal, the iSCSI port and IPv6 bracketing, shared by the host layer and the
array client.
"""

from __future__ import annotations

from dataclasses import dataclass

ISCSI_PORT = 3260  # IANA's iSCSI port; ONTAP does not let a LIF's iSCSI port change


def bracketed(host: str) -> str:
    """A host as it goes before ":port" in a URL or portal: IPv6 addresses in brackets."""
    return f"[{host}]" if ":" in host else host


@dataclass(frozen=True, order=True)
class Portal:
    address: str
    port: int = ISCSI_PORT

    @classmethod
    def parse(cls, text: str) -> Portal:
        """Read "addr[:port]" or "[v6addr][:port]"; the port defaults to 3260."""
        text = text.strip()
        if text.startswith("["):
            address, _, rest = text[1:].partition("]")
            port = rest.removeprefix(":")
        elif text.count(":") == 1:
            address, _, port = text.partition(":")
        else:
            address, port = text, ""
        if not address or (port and not port.isdigit()):
            raise ValueError(f"not an iSCSI portal: {text!r}")
        return cls(address, int(port) if port else ISCSI_PORT)

    def __str__(self) -> str:
        return f"{bracketed(self.address)}:{self.port}"
