"""Portals as iscsiadm and sysfs write them."""

import pytest

from iscsi_agent.portal import Portal


@pytest.mark.parametrize(
    ("text", "portal"),
    [
        ("127.0.0.1:3260", Portal("127.0.0.1", 3260)),
        ("127.0.0.2", Portal("127.0.0.2", 3260)),
        ("[fe80::1]:3261", Portal("fe80::1", 3261)),
        ("fe80::1", Portal("fe80::1", 3260)),
    ],
)
def test_portals_parse_and_print_back(text, portal):
    assert Portal.parse(text) == portal
    assert Portal.parse(str(portal)) == portal


def test_ipv6_portals_print_in_brackets():
    assert str(Portal("fe80::1")) == "[fe80::1]:3260"


@pytest.mark.parametrize("text", ["", ":3260", "127.0.0.1:port"])
def test_garbage_is_refused(text):
    with pytest.raises(ValueError):
        Portal.parse(text)
