"""The initiator name: read from open-iscsi's file, checked against RFC 3720/3721, errors name file and line."""

import pytest

from iscsi_agent.host.errors import InitiatorNameError
from iscsi_agent.host.initiator import iscsi_name_problem, parse_initiator_name, read_initiator_name

DEBIAN_FILE = """\
## DO NOT EDIT OR REMOVE THIS FILE!
## If you remove this file, the iSCSI daemon will not start.
InitiatorName=iqn.1993-08.org.debian:01:55d7b2b7e2e
"""


@pytest.mark.parametrize(
    "name",
    [
        "iqn.1993-08.org.debian:01:55d7b2b7e2e",
        "iqn.1994-05.com.redhat:abc",
        "iqn.1992-08.com.netapp:sn.4b1d6e0f2a9c11efb3c1005056a7d2e4:vs.3",
        "iqn.2001-04.com.example",
        "eui.02004567A425678D",
        "naa.52004567BA64678D",
        "naa.600a098038314461522451712f316969",
    ],
)
def test_valid_names_pass(name):
    assert iscsi_name_problem(name) is None


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("", "empty"),
        ("iqn.1993-8.org.debian:01", "iqn.YYYY-MM"),
        ("iqn.1993-13.org.debian:01", "month 13"),
        ("iqn.1993-08:01:abc", "iqn.YYYY-MM"),
        ("iqn.1993-08.-org.debian", "iqn.YYYY-MM"),
        ("iqn.1993-08.org.debian:01:ABC", "lower case"),
        ("iqn.1993-08.org.debian:01 abc", "outside a-z"),
        ("iqn.1993-08.org.debian:01_abc", "'_'"),
        ("eui.02004567A425678", "16 hex"),
        ("eui.02004567A425678G", "16 hex"),
        ("naa.52004567BA64678D00", "16 or 32"),
        ("host.example.com", "does not start"),
        ("iqn.1993-08.org.debian:" + "a" * 210, "223 bytes"),
    ],
)
def test_invalid_names_say_why(name, why):
    problem = iscsi_name_problem(name)
    assert problem is not None and why in problem


def test_name_is_read_from_the_debian_file():
    assert (
        parse_initiator_name(DEBIAN_FILE, "/etc/iscsi/initiatorname.iscsi")
        == "iqn.1993-08.org.debian:01:55d7b2b7e2e"
    )


def test_spaces_around_key_and_value_are_tolerated():
    assert (
        parse_initiator_name("  InitiatorName = iqn.1994-05.com.redhat:abc  \n", "f")
        == "iqn.1994-05.com.redhat:abc"
    )


def test_a_bad_name_is_reported_with_file_and_line():
    text = DEBIAN_FILE.replace("iqn.1993-08.org.debian:01:55d7b2b7e2e", "iqn.93-08.org.debian")
    with pytest.raises(InitiatorNameError) as caught:
        parse_initiator_name(text, "/etc/iscsi/initiatorname.iscsi")
    assert str(caught.value).startswith("/etc/iscsi/initiatorname.iscsi line 3: 'iqn.93-08.org.debian'")
    assert caught.value.details["line"] == 3
    assert caught.value.code == "initiator_name_invalid"


def test_a_file_without_the_key_is_an_error_naming_the_file():
    with pytest.raises(
        InitiatorNameError, match=r"^/etc/iscsi/initiatorname.iscsi has no InitiatorName= line"
    ):
        parse_initiator_name("## only comments\nGenerateName=yes\n", "/etc/iscsi/initiatorname.iscsi")


def test_a_commented_name_does_not_count():
    with pytest.raises(InitiatorNameError, match="no InitiatorName"):
        parse_initiator_name("#InitiatorName=iqn.1994-05.com.redhat:abc\n", "f")


def test_two_names_are_ambiguous():
    text = DEBIAN_FILE + "InitiatorName=iqn.1994-05.com.redhat:abc\n"
    with pytest.raises(InitiatorNameError, match=r"line 4: a second InitiatorName \(the first is on line 3"):
        parse_initiator_name(text, "f")


def test_the_file_is_read_under_the_host_root(tree, paths):
    (tree.root / "etc/iscsi").mkdir(parents=True)
    (tree.root / "etc/iscsi/initiatorname.iscsi").write_text(DEBIAN_FILE)
    assert read_initiator_name(paths) == "iqn.1993-08.org.debian:01:55d7b2b7e2e"


def test_a_missing_file_is_an_error_naming_it(paths):
    with pytest.raises(InitiatorNameError, match=r"^/etc/iscsi/other.iscsi does not exist"):
        read_initiator_name(paths, "/etc/iscsi/other.iscsi")
