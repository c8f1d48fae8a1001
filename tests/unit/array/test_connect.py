"""connect() picks REST from ONTAP 9.11.1 on, ZAPI below it or when the cluster has no REST API."""

import pytest

from iscsi_agent.array.connect import choose_api, connect, detect_api
from iscsi_agent.array.errors import ArrayAuthFailed, ArrayUnreachable
from iscsi_agent.array.model import Version
from iscsi_agent.array.settings import ApiChoice, ArraySettings
from iscsi_agent.array.transport import HttpReply
from tests.unit.array.fakes import ScriptedTransport, json_reply


def cluster(generation, major, minor):
    return json_reply(
        {"version": {"full": "NetApp Release", "generation": generation, "major": major, "minor": minor}}
    )


@pytest.mark.parametrize(
    ("release", "api"),
    [
        ((9, 11, 1), ApiChoice.REST),
        ((9, 14, 0), ApiChoice.REST),
        ((10, 0, 0), ApiChoice.REST),
        ((9, 11, 0), ApiChoice.ZAPI),
        ((9, 10, 1), ApiChoice.ZAPI),
        ((9, 6, 0), ApiChoice.ZAPI),
    ],
)
def test_the_release_decides_the_api(release, api):
    assert choose_api(Version(*release)) is api


def test_detection_is_one_version_request():
    transport = ScriptedTransport(cluster(9, 13, 1))
    assert detect_api(transport) is ApiChoice.REST
    (sent,) = transport.requests
    assert (sent.method, sent.path, sent.params) == ("GET", "/api/cluster", {"fields": "version"})


@pytest.mark.parametrize(
    "reply",
    [
        HttpReply(404, "Not Found", {}, b"<html>Not Found</html>"),
        json_reply({"error": {"code": "3", "message": "no"}}, 400),
        HttpReply(200, "OK", {}, b"<html>old web ui</html>"),
    ],
)
def test_a_cluster_without_a_usable_rest_api_gets_zapi(reply):
    assert detect_api(ScriptedTransport(reply)) is ApiChoice.ZAPI


@pytest.mark.parametrize("failure", [ArrayAuthFailed("HTTP 401"), ArrayUnreachable("refused")])
def test_auth_and_connection_failures_are_not_hidden_by_a_fallback(failure):
    with pytest.raises(type(failure)):
        detect_api(ScriptedTransport(failure))


def test_connect_builds_the_chosen_client():
    settings = ArraySettings("array.test", "admin", "pw", vserver="svm1")
    assert connect(settings, transport=ScriptedTransport(cluster(9, 12, 1))).api == "rest"
    assert connect(settings, transport=ScriptedTransport(cluster(9, 8, 0))).api == "zapi"
    forced = ArraySettings("array.test", api=ApiChoice.ZAPI)
    transport = ScriptedTransport()
    assert connect(forced, transport=transport).api == "zapi" and transport.requests == []
