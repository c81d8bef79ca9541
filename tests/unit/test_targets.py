"""Targets build exactly the request their API documents, and read its answers."""

import base64
import json
from typing import Any

import pytest
from martech_bridge.adapters.targets.base import TargetResponse
from martech_bridge.adapters.targets.http import HttpTargetAdapter
from martech_bridge.adapters.targets.kintone import KintoneTargetAdapter
from martech_bridge.config import parse_bridge_config
from martech_bridge.errors import ConfigurationError, InvalidRequest
from martech_bridge.models.routes import Route

PAYLOAD = {
    "email": "taro@example.com",
    "lead_id": 1234567,
    "campaign": "SPRING24",
    "name": "山田 太郎",
    "flag": True,
    "user": {"id": "u/1/admin?x=1#frag"},
}


def route(target: dict[str, Any], mapping: dict[str, Any]) -> Route:
    return parse_bridge_config(
        {"version": 1, "routes": {"r": {"auth": {"type": "none"}, "target": target, "mapping": mapping}}}
    ).routes["r"]


def secrets(refs):
    return tuple(v for ref in refs for v in ref.split(","))


def kintone(operation: str, mapping: dict[str, Any], **target: Any) -> tuple[Any, dict[str, Any]]:
    spec = {
        "type": "kintone",
        "base_url": "https://example.cybozu.com",
        "app": 7,
        "operation": operation,
        "api_tokens": ["tok-a", "tok-b,tok-c"],
        **target,
    }
    request = KintoneTargetAdapter().build(route(spec, mapping), PAYLOAD, secrets, local_mode=False)
    return request, json.loads(request.body)


def test_update_by_update_key_shapes_fields_for_kintone() -> None:
    request, body = kintone(
        "update",
        {
            "update_key": {"field": "email", "value": "email"},
            "record": {
                "name": "name",
                "lead": "lead_id",
                "flag": "flag",
                "status": {"const": "opened"},
                "missing": "nope",
                "source": {"path": "nope", "default": "Marketo"},
            },
        },
    )
    assert (request.method, request.url) == ("PUT", "https://example.cybozu.com/k/v1/record.json")
    assert request.headers["X-Cybozu-API-Token"] == "tok-a,tok-b,tok-c"
    assert body == {
        "app": 7,
        "updateKey": {"field": "email", "value": "taro@example.com"},
        "record": {
            "name": {"value": "山田 太郎"},
            "lead": {"value": "1234567"},
            "flag": {"value": "true"},
            "status": {"value": "opened"},
            "source": {"value": "Marketo"},
        },
    }
    assert request.idempotent and "X-Cybozu-API-Token" in request.secret_headers


def test_upsert_uses_the_bulk_endpoint() -> None:
    request, body = kintone("upsert", {"update_key": {"field": "email", "value": "email"}, "record": {"n": "name"}})
    assert request.url.endswith("/k/v1/records.json") and body["upsert"] is True
    assert body["records"] == [
        {"updateKey": {"field": "email", "value": "taro@example.com"}, "record": {"n": {"value": "山田 太郎"}}}
    ]


def test_add_in_a_guest_space_with_basic_auth_is_not_idempotent() -> None:
    request, body = kintone("add", {"record": {"e": "email"}}, guest_space=3, basic_auth="user:pass")
    assert (request.method, request.url) == ("POST", "https://example.cybozu.com/k/guest/3/v1/record.json")
    assert request.headers["Authorization"] == "Basic " + base64.b64encode(b"user:pass").decode()
    assert body == {"app": 7, "record": {"e": {"value": "taro@example.com"}}} and not request.idempotent


def test_update_by_id_with_revision() -> None:
    _, body = kintone("update", {"id": {"const": 15}, "revision": {"const": 4}})
    assert body == {"app": 7, "id": 15, "record": {}, "revision": 4}


def test_missing_key_value_is_a_400_naming_the_mapping() -> None:
    with pytest.raises(InvalidRequest) as caught:
        kintone("update", {"update_key": {"field": "email", "value": "contact.email"}})
    assert caught.value.details["field"] == "contact.email"


def test_http_is_refused_outside_local_mode() -> None:
    spec = {"type": "kintone", "base_url": "http://example.cybozu.com", "app": 1, "api_tokens": ["t"]}
    with pytest.raises(ConfigurationError, match="https"):
        KintoneTargetAdapter().build(route(spec, {"id": "lead_id"}), PAYLOAD, secrets, local_mode=False)


def test_kintone_errors_are_read() -> None:
    adapter = KintoneTargetAdapter()
    spec = route(
        {"type": "kintone", "base_url": "https://x.cybozu.com", "app": 1, "api_tokens": ["t"]}, {"id": "lead_id"}
    )
    body = {
        "code": "CB_VA01",
        "id": "x",
        "message": "Missing or invalid input.",
        "errors": {"record.n.value": {"messages": ["Required."]}},
    }
    outcome = adapter.interpret(spec, TargetResponse(400, {}, json.dumps(body).encode()))
    assert (outcome.verdict, outcome.target_code, outcome.target_errors) == ("rejected", "CB_VA01", body["errors"])
    throttled = adapter.interpret(spec, TargetResponse(429, {"Retry-After": "3"}, b'{"code":"GAIA_TO04"}'))
    assert (throttled.verdict, throttled.retry_after) == ("retry", 3.0)
    done = adapter.interpret(
        spec, TargetResponse(200, {}, b'{"records":[{"id":"5","revision":"2","operation":"INSERT"}]}')
    )
    assert done.result == {"target_status": 200, "record_id": "5", "revision": "2", "operation": "INSERT"}


def http(mapping: dict[str, Any], **target: Any) -> Any:
    spec = {
        "type": "http",
        "method": "PATCH",
        "url": "https://api.example.com/v1/users/{uid}?v=2",
        "secret_headers": {"Authorization": "api-token"},
        "secret_header_format": {"Authorization": "Bearer {}"},
        **target,
    }
    mapping = {"url_params": {"uid": "user.id"}, **mapping}
    return HttpTargetAdapter().build(route(spec, mapping), PAYLOAD, secrets, local_mode=False)


def test_url_values_are_encoded_and_cannot_leave_their_segment() -> None:
    request = http({"query": {"campaign": "campaign"}})
    assert request.url == "https://api.example.com/v1/users/u%2F1%2Fadmin%3Fx%3D1%23frag?v=2&campaign=SPRING24"
    assert request.headers["Authorization"] == "Bearer api-token" and "Authorization" in request.secret_headers


@pytest.mark.parametrize("value", ["..", ".", "u/../../admin", "..\\x", "a/./b", "%2e%2e/..", "../"])
def test_a_value_holding_a_dot_segment_is_refused_naming_its_field(value: str) -> None:
    # Encoded, "/" and "\\" stay in their segment for most servers, but some decode them before
    # normalising the path, and "." / ".." pass percent-encoding unchanged.
    with pytest.raises(InvalidRequest) as caught:
        HttpTargetAdapter().build(
            route({"type": "http", "method": "PUT", "url": "https://api.example.com/v1/users/{uid}"}, {"url_params": {"uid": "id"}}),
            {"id": value},
            secrets,
            local_mode=False,
        )
    assert (caught.value.code, caught.value.details["field"]) == ("invalid_path_value", "id")


@pytest.mark.parametrize("value", ["...", "a..b", ".hidden", "%2e%2e", "．．"])
def test_values_that_only_look_like_dots_stay_in_their_segment(value: str) -> None:
    request = HttpTargetAdapter().build(
        route({"type": "http", "method": "PUT", "url": "https://api.example.com/v1/users/{uid}"}, {"url_params": {"uid": "id"}}),
        {"id": value},
        secrets,
        local_mode=False,
    )
    assert request.url.startswith("https://api.example.com/v1/users/") and request.url.count("/") == 5


def test_mapped_headers_cannot_frame_or_route_the_request() -> None:
    spec = {"type": "http", "method": "POST", "url": "https://api.example.com/x"}
    for name in ("Host", "Transfer-Encoding", "content-length", "Connection"):
        with pytest.raises(ConfigurationError, match="set by the bridge"):
            route(spec, {"headers": {name: "v"}})


def test_json_and_form_bodies() -> None:
    request = http({"body": {"name": "name", "lead": "lead_id"}})
    assert json.loads(request.body) == {"name": "山田 太郎", "lead": 1234567}
    form = http({"body": {"name": "name"}}, body_format="form")
    assert form.body == b"name=%E5%B1%B1%E7%94%B0+%E5%A4%AA%E9%83%8E"
    assert form.headers["Content-Type"] == "application/x-www-form-urlencoded"
    whole = http({"body_value": {"path": "@"}})
    assert json.loads(http({"body": {"path": "email"}}).body) == {"path": "taro@example.com"}  # a field named path
    assert json.loads(whole.body) == PAYLOAD


@pytest.mark.parametrize("value", ["a\r\nX-Injected: 1", "a\nb", "名前"])
def test_header_injection_is_refused(value: str) -> None:
    spec = {"type": "http", "method": "POST", "url": "https://api.example.com/x"}
    r = route(spec, {"headers": {"X-Name": "v"}})
    with pytest.raises(InvalidRequest) as caught:
        HttpTargetAdapter().build(r, {"v": value}, secrets, local_mode=False)
    assert caught.value.code == "invalid_header"


def test_http_error_messages_are_read_from_common_shapes() -> None:
    adapter = HttpTargetAdapter()
    r = route({"type": "http", "method": "POST", "url": "https://api.example.com/x"}, {})
    for body, message in [
        ({"error": {"code": "E1", "message": "bad"}}, "bad"),
        ({"message": "nope"}, "nope"),
        ({"errors": [{"message": "first"}]}, "first"),
    ]:
        assert adapter.interpret(r, TargetResponse(422, {}, json.dumps(body).encode())).target_message == message
    redirect = adapter.interpret(r, TargetResponse(302, {"Location": "https://evil.example/"}, b""))
    assert redirect.verdict == "rejected" and "not followed" in redirect.target_message


@pytest.mark.parametrize(("method", "idempotent"), [("GET", True), ("PUT", True), ("DELETE", True), ("PATCH", False), ("POST", False)])
def test_only_methods_http_calls_idempotent_are_resent_after_an_ambiguous_timeout(method: str, idempotent: bool) -> None:
    spec = {"type": "http", "method": method, "url": "https://api.example.com/x"}
    assert route(spec, {}).target.is_idempotent is idempotent
    assert route({**spec, "idempotent": True}, {}).target.is_idempotent is True  # a PATCH that only sets values
