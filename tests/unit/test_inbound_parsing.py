"""Inbound bodies are read for what they are, whatever Content-Type says (Marketo, KARTE Craft)."""

import json

import pytest
from martech_bridge.errors import InvalidRequest
from martech_bridge.logic.inbound import parse_payload

JA = {"email": "taro@example.com", "name": "山田 太郎", "note": '"quoted" & <tags>\nline'}


@pytest.mark.parametrize(
    "content_type", [None, "application/json", "text/plain;charset=UTF-8", "application/octet-stream"]
)
def test_json_is_json_whatever_the_content_type(content_type: str | None) -> None:
    assert parse_payload(json.dumps(JA, ensure_ascii=False).encode(), content_type, "") == JA


def test_form_encoded_marketo_body() -> None:
    body = "email=taro%40example.com&name=%E5%B1%B1%E7%94%B0+%E5%A4%AA%E9%83%8E&tag=a&tag=b&empty="
    assert parse_payload(body.encode(), "application/x-www-form-urlencoded", "") == {
        "email": "taro@example.com",
        "name": "山田 太郎",
        "tag": ["a", "b"],
        "empty": "",
    }
    assert parse_payload(body.encode(), None, "")["name"] == "山田 太郎"  # no Content-Type either


def test_json_labelled_as_a_form_is_still_json() -> None:
    # What `curl -d '{...}'` sends, and some Marketo webhooks without a custom Content-Type header.
    body = json.dumps(JA, ensure_ascii=False).encode()
    assert parse_payload(body, "application/x-www-form-urlencoded", "") == JA
    assert parse_payload(b"{a=1", "application/x-www-form-urlencoded", "") == {"{a": "1"}


def test_get_and_empty_bodies_read_the_query_string() -> None:
    assert parse_payload(b"", None, "email=taro%40example.com&id=1") == {"email": "taro@example.com", "id": "1"}
    assert parse_payload(b"  ", "application/json", "") == {}


def test_utf8_bom_is_tolerated() -> None:
    assert parse_payload(b"\xef\xbb\xbf" + b'{"a": 1}', None, "") == {"a": 1}


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b'{"a": ', "invalid_json"),
        (b"[1, 2]", "invalid_json"),
        (b'"text"', "invalid_json"),
        (b"\xff\xfe", "invalid_encoding"),
        (b"just words", "unsupported_body"),
        (b"[" * 5000 + b"]" * 5000, "invalid_json"),
        (b'{"a":' * 70 + b"1" + b"}" * 70, "invalid_json"),
        (b"name=%E5%B1", "invalid_encoding"),
    ],
)
def test_malformed_bodies_are_400_with_a_code(body: bytes, code: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_payload(body, None, "")
    assert caught.value.code == code
