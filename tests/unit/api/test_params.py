"""Request bodies, query flags and volume names: strict, and every refusal names the field."""

import pytest

from iscsi_agent.api.errors import BadRequest
from iscsi_agent.api.params import MAX_VOLUME_LENGTH, json_object, query_flags, volume_name

VOLUME = {"volume": str}


def refusal(call, *args) -> BadRequest:
    with pytest.raises(BadRequest) as caught:
        call(*args)
    assert caught.value.code == "bad_request"
    return caught.value


def test_a_body_with_exactly_the_fields_of_their_types_is_read():
    assert json_object(b'{"volume": "/vol/vol1/lun0"}', VOLUME) == {"volume": "/vol/vol1/lun0"}
    assert json_object(b'{"dry_run": false}', {"dry_run": bool}) == {"dry_run": False}


@pytest.mark.parametrize(
    ("body", "message", "field"),
    [
        (b"", "body: empty; send a JSON object with 'volume'", "body"),
        (b"volume=x", "body: not JSON (Expecting value: line 1 column 1 (char 0))", "body"),
        (b'{"volume": "x"', "body: not JSON", "body"),
        (b"\xff\xfe{}", "body: not UTF-8 text", "body"),
        (b'["/vol/vol1/lun0"]', "body: must be a JSON object, not a list", "body"),
        (b'"x"', "body: must be a JSON object, not a string", "body"),
        (b"{}", "body: missing key 'volume'", "volume"),
        (b'{"volume": "x", "force": true}', "body: unknown key 'force'; expected 'volume'", "force"),
        (b'{"volume": 7}', "volume: must be a string, not a number", "volume"),
        (b'{"volume": null}', "volume: must be a string, not null", "volume"),
        (b'{"volume": ["x"]}', "volume: must be a string, not a list", "volume"),
        (b'{"volume": "a", "volume": "b"}', "body: key 'volume' appears more than once", "volume"),
        (b'{"volume": NaN}', "body: NaN is not a JSON value", "body"),
    ],
)
def test_a_wrong_body_is_refused_naming_what_is_wrong(body, message, field):
    error = refusal(json_object, body, VOLUME)
    assert error.message.startswith(message)
    assert error.details["field"] == field


def test_a_number_is_not_a_boolean_nor_a_boolean_a_number():
    assert refusal(json_object, b'{"dry_run": 1}', {"dry_run": bool}).message == (
        "dry_run: must be a boolean, not a number"
    )
    assert refusal(json_object, b'{"dry_run": "true"}', {"dry_run": bool}).message == (
        "dry_run: must be a boolean, not a string"
    )


def test_a_body_nested_beyond_the_parser_is_a_bad_request_not_a_crash():
    assert refusal(json_object, b"[" * 60000 + b"]" * 60000, VOLUME).message == "body: nested too deeply"


def test_an_unknown_key_is_quoted_shortened():
    error = refusal(json_object, b'{"volume": "x", "' + b"k" * 5000 + b'": 1}', VOLUME)
    assert len(error.message) < 200 and len(error.details["field"]) == 100


def test_query_flags_are_true_or_false_and_only_the_allowed_ones():
    assert query_flags("", ("force",)) == {}
    assert query_flags("force=true", ("force",)) == {"force": True}
    assert query_flags("force=false", ("force",)) == {"force": False}


@pytest.mark.parametrize(
    ("query", "message", "parameter"),
    [
        ("force=maybe", "force: must be true or false, not 'maybe'", "force"),
        ("force=", "force: must be true or false, not ''", "force"),
        ("force=true&force=false", "force: given more than once", "force"),
        ("dry_run=true", "query: unknown parameter 'dry_run'; this path takes only force", "dry_run"),
    ],
)
def test_a_wrong_query_is_refused_naming_the_parameter(query, message, parameter):
    error = refusal(query_flags, query, ("force",))
    assert error.message == message and error.details["parameter"] == parameter


def test_a_path_without_parameters_refuses_any():
    assert (
        refusal(query_flags, "x=1", ()).message
        == "query: unknown parameter 'x'; this path takes no parameters"
    )


def test_an_unreadable_or_endless_query_is_refused():
    assert refusal(query_flags, "force", ("force",)).message.startswith("query: cannot be read")
    assert refusal(query_flags, "&".join(["force=true"] * 100), ("force",)).message.startswith(
        "query: cannot be read"
    )


def test_a_volume_is_any_printable_name_of_sensible_length():
    for name in (
        "/vol/vol1/lun0",
        "lun0",
        "3d5ac3a4-7b1e-4a5c-9d2f-0123456789ab",
        "vol é 1",
        "x" * MAX_VOLUME_LENGTH,
    ):
        assert volume_name(name) == name


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "volume: must not be empty"),
        (
            "x" * (MAX_VOLUME_LENGTH + 1),
            f"volume: {MAX_VOLUME_LENGTH + 1} characters, over {MAX_VOLUME_LENGTH}",
        ),
        ("/vol/vol1/lun0\n", "volume: contains control characters"),
        ("lun\x000", "volume: contains control characters"),
    ],
)
def test_an_empty_absurd_or_unprintable_volume_is_refused(name, message):
    error = refusal(volume_name, name)
    assert error.message == message and error.details == {"field": "volume"}
