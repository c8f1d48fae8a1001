"""A redirect from the array is never followed: nothing, least of all a secret, goes to its target.

ONTAP answers its APIs directly; a 3xx comes from something in between (a proxy, a load balancer
or an attacker on the path), and following it would resend the request body (a 307/308 keeps it:
CHAP secrets, for one) to a host the configuration never named.
"""

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from iscsi_agent.array.errors import ArrayRedirected
from iscsi_agent.array.model import ChapAuth, ChapCredentials
from tests.contract.conftest import Wire

INITIATOR = "iqn.1994-05.com.redhat:redirected-host"
SECRET = "redirectsecret1"
CREDENTIALS = ChapCredentials(INITIATOR, ChapAuth.CHAP, "hostuser", SECRET)
# the request that carries the secret, as the simulator names it
CHAP_CREATE = {"zapi": "iscsi-initiator-add-auth", "rest": "POST /api/protocols/san/iscsi/credentials"}


class Elsewhere(ThreadingHTTPServer):
    """Another loopback listener that records whatever reaches it."""

    daemon_threads = True

    def __init__(self) -> None:
        self.received: list[tuple[str, str, bytes]] = []
        super().__init__(("127.0.0.1", 0), _Recorder)


class _Recorder(BaseHTTPRequestHandler):
    server: Elsewhere

    def _record(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.received.append((self.command, self.path, body))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_POST = do_PATCH = do_DELETE = _record

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        pass


@pytest.fixture
def elsewhere() -> Iterator[Elsewhere]:
    server = Elsewhere()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirected_chap_change_is_an_error_naming_the_location_and_nothing_is_resent(
    client, ontap_sim, wire: Wire, elsewhere, status
):
    location = f"http://127.0.0.1:{elsewhere.server_address[1]}/collect"
    ontap_sim.faults.inject(CHAP_CREATE[wire.api.value], "http_status", status=status, location=location)
    with pytest.raises(ArrayRedirected) as caught:
        client.set_chap_credentials(CREDENTIALS)
    assert elsewhere.received == []
    assert caught.value.code == "array_redirected"
    assert caught.value.details["location"] == location and caught.value.details["http_status"] == status
    assert location in str(caught.value) and SECRET not in str(caught.value)
    assert ontap_sim.counts[wire.key(CHAP_CREATE[wire.api.value])] == 1  # sent once, not resent


def test_a_redirected_read_is_not_retried_or_followed(client, ontap_sim, wire: Wire, elsewhere):
    location = f"http://127.0.0.1:{elsewhere.server_address[1]}/collect"
    ontap_sim.faults.inject("*", "http_status", times=None, status=308, location=location)
    with pytest.raises(ArrayRedirected):
        client.lun_by_path("/vol/vol1/lun0")
    assert elsewhere.received == []
    assert ontap_sim.total(wire.api.value) == 1
