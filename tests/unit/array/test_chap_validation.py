"""CHAP credentials the array would refuse are refused by the client before it sends anything.

The array says so only after a ZAPI auth-type change has deleted the old entry; refused up front,
nothing changes on the array.
"""

import pytest

from iscsi_agent.array.errors import ArrayInvalidRequest
from iscsi_agent.array.model import ChapAuth, ChapCredentials
from iscsi_agent.array.ontap import OntapClient
from tests.unit.array.fakes import FakeOps

IQN = "iqn.1994-05.com.redhat:host1"


@pytest.mark.parametrize(
    ("credentials", "problem"),
    [
        (ChapCredentials(IQN, ChapAuth.CHAP, "in", "same-secret1", "out", "same-secret1"), "are the same"),
        (ChapCredentials(IQN, ChapAuth.CHAP, "in", None), "inbound user and secret"),
        (ChapCredentials(IQN, ChapAuth.CHAP, "in", "in-secret123", "out", None), "outbound secret"),
    ],
)
def test_credentials_the_array_would_refuse_are_refused_before_any_call(credentials, problem):
    ops = FakeOps([])
    with pytest.raises(ArrayInvalidRequest) as caught:
        OntapClient(ops).set_chap_credentials(credentials)
    assert caught.value.code == "array_invalid_request" and problem in str(caught.value)
    assert "secret1" not in str(caught.value)
    assert ops.calls == []


@pytest.mark.parametrize(
    "credentials",
    [
        ChapCredentials(IQN, ChapAuth.CHAP, "in", "in-secret123"),
        ChapCredentials(IQN, ChapAuth.CHAP, "in", "in-secret123", "out", "out-secret12"),
        ChapCredentials(IQN, ChapAuth.NONE),
        ChapCredentials(IQN, ChapAuth.DENY),
    ],
)
def test_credentials_the_array_takes_are_passed_on(credentials):
    ops = FakeOps([])
    OntapClient(ops).set_chap_credentials(credentials)
    assert ops.calls == ["set_chap_credentials"]
