"""The one JSON reader refuses what json.loads lets through but nothing downstream can use."""

import json

import pytest
from martech_bridge.errors import InvalidRequest
from martech_bridge.logic import strict_json
from martech_bridge.logic.inbound import parse_payload

REFUSED = {
    "nan": '{"a": NaN}',
    "infinity": '{"a": Infinity}',
    "minus_infinity": '{"a": -Infinity}',
    "float_overflow": '{"a": 1e400}',
    "huge_integer": '{"a": ' + "9" * 5000 + "}",
    "long_integer": '{"a": -' + "1" * 41 + "}",
    "lone_high_surrogate": '{"a": "\\ud800"}',
    "lone_low_surrogate_in_key": '{"\\udc00": 1}',
    "reversed_pair": '{"a": ["x", {"b": "\\udc00\\ud800"}]}',
    "too_deep": "[" * 70 + "]" * 70,
    "truncated": '{"a": [1, 2',
    "invalid_utf8": b'{"a": "\xff"}',
}


@pytest.mark.parametrize("text", REFUSED.values(), ids=REFUSED.keys())
def test_refuses_json_nothing_downstream_can_use(text: str | bytes) -> None:
    with pytest.raises(strict_json.JsonRefused):
        strict_json.loads(text)


def test_python_json_accepts_what_the_strict_reader_refuses() -> None:
    # The reason this module exists: each of these parses with json.loads (or fails with a ValueError that
    # is not a JSONDecodeError, which callers did not catch).
    assert json.loads('{"a": NaN}')["a"] != json.loads('{"a": NaN}')["a"]
    assert json.loads('{"a": "\\ud800"}')["a"] == "\ud800"
    with pytest.raises(ValueError) as caught:
        json.loads("9" * 5000)
    assert not isinstance(caught.value, json.JSONDecodeError)


def test_keeps_ordinary_json_exact() -> None:
    text = '{"id": 18446744073709551615, "price": -12.5, "name": "山田 \\ud83d\\ude00", "tags": [true, null]}'
    assert strict_json.loads(text) == {
        "id": 18446744073709551615,
        "price": -12.5,
        "name": "山田 😀",
        "tags": [True, None],
    }


def test_depth_check_can_be_skipped_by_a_caller_that_never_recurses() -> None:
    deep = "[" * 70 + "]" * 70
    assert strict_json.loads(deep, max_depth=None) == json.loads(deep)


def test_object_reader_names_what_came_instead() -> None:
    with pytest.raises(strict_json.JsonRefused, match="an array"):
        strict_json.loads_object("[1]")


@pytest.mark.parametrize("text", [REFUSED["nan"], REFUSED["huge_integer"], REFUSED["lone_high_surrogate"]])
def test_relay_payload_with_unusable_json_is_a_400(text: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_payload(text.encode(), "application/json", "")
    assert caught.value.code == "invalid_json"


@pytest.mark.parametrize(
    ("text", "suspect"),
    [
        ('[{"a": "plain"}]', False),
        ('[{"a": "ça va, 日本"}]', False),
        ('[{"a": "\\u00e9 \\u003c"}]', False),  # escapes outside the surrogate range
        (REFUSED["lone_high_surrogate"], True),
        (REFUSED["lone_low_surrogate_in_key"], True),
        ('[{"a": "\\ud83d\\ude00"}]', True),  # a valid pair still gets the per-value check
        ('[{"a": "\ud800"}]', True),  # the character itself, not an escape
    ],
)
def test_a_text_without_surrogate_escapes_or_characters_cannot_yield_one(text: str, suspect: bool) -> None:
    assert strict_json.may_hold_lone_surrogate(text) is suspect
