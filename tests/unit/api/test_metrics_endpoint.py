"""/metrics on loopback TCP, with the API's bounded, timed-out connection handling.

Any local user can connect to 127.0.0.1; the flood below comes from uid 65534 (``tests.other_uid``)
while this process plays the agent with the agent's descriptor limit (1,024).
"""

import contextlib
import resource
import socket
import subprocess
import threading
from urllib.error import HTTPError
from urllib.request import urlopen

import pytest

from iscsi_agent.metrics import Metrics
from tests.other_uid import held_by_nobody
from tests.unit.api.fakes import eventually, parse_response, read_all, request

AGENT_FILES = 1024  # the default LimitNOFILE soft limit the flood exhausted


@pytest.fixture
def agent_fd_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (AGENT_FILES, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def metrics_port():
    port = free_port()
    server = Metrics().serve(("127.0.0.1", port))
    yield port
    assert server.stop(grace=5)


def scrape(port, path="/metrics"):
    try:
        with urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as answer:
            return answer.status, answer.headers["Content-Type"], answer.read().decode()
    except HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read().decode()


def test_metrics_are_served_in_the_prometheus_text_format(metrics_port):
    status, content_type, text = scrape(metrics_port)
    assert status == 200 and content_type.startswith("text/plain; version=0.0.4")
    assert "iscsi_agent_build_info{" in text


def test_anything_but_get_metrics_is_refused(metrics_port):
    assert scrape(metrics_port, "/")[0] == 404
    with socket.create_connection(("127.0.0.1", metrics_port), timeout=5) as client:
        client.sendall(b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
        assert parse_response(read_all(client)).status == 405


@pytest.mark.allow_subprocess  # forks the other user, and starts a program as the agent would
def test_idle_metrics_connections_from_another_user_leave_the_api_answering_and_programs_starting(
    agent, metrics_port, agent_fd_limit
):
    threads = threading.active_count()
    with held_by_nobody(1100, ("127.0.0.1", metrics_port)) as connected:
        with contextlib.suppress(OSError):  # queued behind the flood: the server has taken all of it since
            scrape(metrics_port)
        assert request(agent, "GET", "/v1/health").status == 200
        assert subprocess.run(["true"], capture_output=True, timeout=10, check=False).returncode == 0
        assert threading.active_count() - threads < 32  # a bounded set of threads, not one per connection
        assert connected > AGENT_FILES  # the server took more connections than it has descriptors

    def scraped():
        with contextlib.suppress(OSError):
            return scrape(metrics_port)[0] == 200
        return False

    eventually(scraped, timeout=10)  # the flood gone, /metrics serves again
