"""The operator API in-process: authentication first, then input, then logic; every answer is JSON."""

import json
from typing import Any

import pytest
from martech_bridge import config
from martech_bridge.entrypoints import query

from devkit.gateway import build_event
from devkit.runtime import LambdaContext
from devkit.template import HttpRoute
from tests.unit.fakes import FakeSubscriptionStore

KEYS = "key-one,key-two"


@pytest.fixture()
def store(monkeypatch: pytest.MonkeyPatch) -> FakeSubscriptionStore:
    monkeypatch.setenv("API_KEYS", KEYS)
    monkeypatch.setenv("ALLOW_PLAINTEXT_SECRETS", "true")
    monkeypatch.setenv("MAX_REQUEST_BYTES", "4096")
    config.reset()
    fake = FakeSubscriptionStore()
    monkeypatch.setattr(query, "subscription_store", lambda: fake)
    yield fake
    config.reset()


def call(
    method: str,
    path: str,
    *,
    key: str | None = "key-one",
    body: bytes = b"",
    content_type: str = "application/json",
    route_path: str = "/subscriptions/{email}",
) -> tuple[int, Any]:
    headers = [("content-type", content_type)] if content_type else []
    if key is not None:
        headers.append(("x-api-key", key))
    event = build_event(
        method=method,
        target=path,
        headers=headers,
        body=body,
        route=HttpRoute(method, route_path, "QueryFunction"),
        path_parameters={},
    )
    result = query.handle(event, LambdaContext("QueryFunction", 512, 15, "req-1"))
    assert result["headers"]["Content-Type"] == "application/json"
    return result["statusCode"], json.loads(result["body"])


def test_put_then_get_round_trip(store: FakeSubscriptionStore) -> None:
    status, body = call(
        "PUT", "/subscriptions/Taro%40Example.com", body=b'{"subscribed": false, "suppression": "spam_report"}'
    )
    assert status == 200 and body["email"] == "taro@example.com" and body["suppression"] == "spam_report"
    status, body = call("GET", "/subscriptions/taro@example.com", key="key-two")
    assert status == 200 and body["subscribed"] is False and len(body["history"]) == 1


def test_unknown_recipient_is_404(store: FakeSubscriptionStore) -> None:
    status, body = call("GET", "/subscriptions/nobody@example.com")
    assert status == 404 and body["error"]["code"] == "subscription_not_found"


@pytest.mark.parametrize(
    ("key", "message"),
    [
        (None, "Missing API key"),
        ("", "Missing API key"),
        ("key-three", "Invalid API key"),
        ("key-one ", "Invalid API key"),
    ],
)
def test_missing_or_wrong_key_is_401_before_anything_else(
    store: FakeSubscriptionStore, key: str | None, message: str
) -> None:
    status, body = call("PUT", "/subscriptions/not-an-address", key=key, body=b"{broken")
    assert status == 401 and body["error"]["code"] == "unauthorized" and message in body["error"]["message"]
    assert store.state == {}


def test_no_configured_keys_refuses_everyone(store: FakeSubscriptionStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_KEYS", "")
    config.reset()
    status, body = call("GET", "/subscriptions/a@b.co", key="anything")
    assert status == 401 and "no API keys configured" in body["error"]["message"]


@pytest.mark.parametrize(
    ("body", "content_type", "code", "field"),
    [
        (b"", "application/json", "empty_body", None),
        (b'{"subscribed": fal', "application/json", "invalid_json", None),  # truncated
        (b"[true]", "application/json", "invalid_json", None),
        (b'"false"', "application/json", "invalid_json", None),
        (b'{"subscribed": "no"}', "application/json", "validation_error", "subscribed"),
        (b'{"subscribed": false, "extra": 1}', "application/json", "validation_error", "extra"),
        (b'{"subscribed": false, "suppression": "x"}', "application/json", "validation_error", "suppression"),
        (b"\xff\xfe{}", "application/octet-stream", "invalid_encoding", None),
        (b"[" * 100_000 + b"]" * 100_000, "application/json", "payload_too_large", None),
        (b"[" * 2000 + b"]" * 2000, "application/json", "invalid_json", None),  # past the recursion limit
    ],
)
def test_bad_bodies_are_400_naming_the_problem_and_change_nothing(
    store: FakeSubscriptionStore, body: bytes, content_type: str, code: str, field: str | None
) -> None:
    status, answer = call("PUT", "/subscriptions/taro@example.com", body=body, content_type=content_type)
    assert answer["error"]["code"] == code
    assert status == (413 if code == "payload_too_large" else 400)
    assert answer["error"].get("field") == field
    assert store.state == {}


def test_invalid_base64_flag_is_400(store: FakeSubscriptionStore) -> None:
    event = build_event(
        method="PUT",
        target="/subscriptions/a@b.co",
        headers=[("x-api-key", "key-one")],
        body=b"x",
        route=HttpRoute("PUT", "/subscriptions/{email}", "Q"),
        path_parameters={},
    )
    event["body"], event["isBase64Encoded"] = "***not base64***", True
    result = query.handle(event, LambdaContext("QueryFunction", 512, 15, "r"))
    assert result["statusCode"] == 400 and "base64" in json.loads(result["body"])["error"]["message"]


def test_base64_encoded_body_is_decoded(store: FakeSubscriptionStore) -> None:
    body = json.dumps({"subscribed": False, "reason": "配信停止"}, ensure_ascii=False).encode()
    # No Content-Type: the gateway base64-encodes the body, as API Gateway does.
    status, answer = call("PUT", "/subscriptions/a@b.co", body=body, content_type="")
    assert status == 200 and answer["reason"] == "配信停止"


def test_a_control_character_in_the_path_is_refused_with_a_json_error(store: FakeSubscriptionStore) -> None:
    status, body = call("GET", "/subscriptions/%00@b.co")
    assert status in (400, 404) and body["error"]["code"]


def test_any_accepted_address_is_reachable_by_query(store: FakeSubscriptionStore) -> None:
    # `/`, `?` and `#` are valid in a local part, but API Gateway's decoded path cannot carry them.
    for address in ("a/b@example.com", "a?b@example.com", "a#b@example.com"):
        encoded = address.replace("/", "%2F").replace("?", "%3F").replace("#", "%23").replace("@", "%40")
        status, answer = call(
            "PUT", f"/subscriptions?email={encoded}", body=b'{"subscribed": false}', route_path="/subscriptions"
        )
        assert status == 200 and answer["email"] == address, answer
        status, answer = call("GET", f"/subscriptions?email={encoded}", route_path="/subscriptions")
        assert status == 200 and answer["subscribed"] is False
    status, answer = call("GET", "/subscriptions", route_path="/subscriptions")
    assert status == 400 and answer["error"]["field"] == "email"


def test_health_answers_without_credentials() -> None:
    status, answer = call("GET", "/health", key=None, route_path="/health")
    assert status == 200 and answer["status"] == "ok"


@pytest.mark.parametrize("address", ["not-an-address", "a@b", "a%20b@c.co"])
def test_malformed_address_in_path_is_400(store: FakeSubscriptionStore, address: str) -> None:
    status, body = call("GET", f"/subscriptions/{address}")
    assert status == 400 and body["error"]["code"] == "invalid_email" and body["error"]["field"] == "email"


def test_stale_write_is_a_409_conflict(store: FakeSubscriptionStore, monkeypatch: pytest.MonkeyPatch) -> None:
    call("PUT", "/subscriptions/a@b.co", body=b'{"subscribed": false}')
    real_get = store.get
    monkeypatch.setattr(store, "get", lambda email: (None, []))  # a reader that missed the first write
    status, body = call("PUT", "/subscriptions/a@b.co", body=b'{"subscribed": true}')
    assert status == 409 and body["error"]["code"] == "concurrent_update"
    monkeypatch.setattr(store, "get", real_get)
    assert store.state["a@b.co"].subscribed is False


def test_unknown_route_is_json_404(store: FakeSubscriptionStore) -> None:
    status, body = call("GET", "/nothing/here", route_path="$default")
    assert status == 404 and body["error"]["code"] == "not_found"


def test_another_method_on_a_known_path_is_405_naming_the_methods_it_takes(store: FakeSubscriptionStore) -> None:
    status, body = call("DELETE", "/subscriptions/a@b.co", route_path="$default")
    assert status == 405 and body["error"]["code"] == "method_not_allowed"
    assert body["error"]["allow"] == "GET, PUT"


def test_ids_this_api_cannot_have_issued_are_not_looked_up(
    store: FakeSubscriptionStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A key past DynamoDB's size limit would be a 503; an id that cannot exist is a 404 without a look-up."""

    class NoLookUp:
        store = None

        def get(self, _: str) -> None:
            raise AssertionError("looked up")

    NoLookUp.store = NoLookUp()  # type: ignore[assignment]
    monkeypatch.setattr(query, "delivery_engine", NoLookUp)
    monkeypatch.setattr(query, "message_store", NoLookUp)
    for method, path, route in (
        ("GET", "/deliveries/" + "x" * 3000, "/deliveries/{delivery_id}"),
        ("POST", "/deliveries/dl_..%2F/retry", "/deliveries/{delivery_id}/retry"),
        ("GET", "/messages/d_1", "/messages/{dispatch_id}"),
    ):
        status, body = call(method, path, route_path=route)
        assert status == 404 and body["error"]["code"].endswith("not_found"), body


def test_a_bug_is_a_json_500_without_internals(store: FakeSubscriptionStore, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(email: str) -> Any:
        raise KeyError("internal detail")

    monkeypatch.setattr(store, "get", broken)
    status, body = call("GET", "/subscriptions/a@b.co")
    assert status == 500 and body["error"]["code"] == "internal_error"
    assert "internal detail" not in json.dumps(body)


def aws_documented_event() -> dict[str, Any]:
    """The payload format 2.0 example of AWS's "Create AWS Lambda proxy integrations for HTTP APIs" page
    (docs.aws.amazon.com/apigateway/latest/developerguide/http-api-develop-integrations-lambda.html), as
    published: a JWT authorizer, cookies, comma-joined repeats, stage variables."""
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": "/my/path",
        "rawQueryString": "parameter1=value1&parameter1=value2&parameter2=value",
        "cookies": ["cookie1", "cookie2"],
        "headers": {"header1": "value1", "header2": "value1,value2"},
        "queryStringParameters": {"parameter1": "value1,value2", "parameter2": "value"},
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "api-id",
            "authentication": {
                "clientCert": {
                    "clientCertPem": "CERT_CONTENT",
                    "subjectDN": "www.example.com",
                    "issuerDN": "Example issuer",
                    "serialNumber": "a1:a1:a1:a1:a1:a1:a1:a1:a1:a1:a1:a1:a1:a1:a1:a1",
                    "validity": {"notBefore": "May 28 12:30:02 2019 GMT", "notAfter": "Aug  5 09:36:04 2021 GMT"},
                }
            },
            "authorizer": {"jwt": {"claims": {"claim1": "value1", "claim2": "value2"}, "scopes": ["scope1", "scope2"]}},
            "domainName": "id.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "id",
            "http": {
                "method": "POST",
                "path": "/my/path",
                "protocol": "HTTP/1.1",
                "sourceIp": "192.0.2.1",
                "userAgent": "agent",
            },
            "requestId": "id",
            "routeKey": "$default",
            "stage": "$default",
            "time": "12/Mar/2020:19:03:58 +0000",
            "timeEpoch": 1583348638390,
        },
        "body": "Hello from Lambda",
        "pathParameters": {"parameter1": "value1"},
        "isBase64Encoded": False,
        "stageVariables": {"stageVariable1": "value1", "stageVariable2": "value2"},
    }


def test_aws_documented_event_shape_reaches_health_and_subscriptions(store: FakeSubscriptionStore) -> None:
    context = LambdaContext("QueryFunction", 512, 15, "req-aws")
    event = aws_documented_event()
    # As is (POST /my/path on $default): the contract's JSON 404, not a crash on the unfamiliar parts.
    answer = query.handle(event, context)
    assert answer["statusCode"] == 404 and json.loads(answer["body"])["error"]["code"]
    health = aws_documented_event()
    health["rawPath"] = health["requestContext"]["http"]["path"] = "/health"
    health["requestContext"]["http"]["method"] = "GET"
    health["routeKey"] = health["requestContext"]["routeKey"] = "GET /health"
    answer = query.handle(health, context)
    assert answer["statusCode"] == 200 and json.loads(answer["body"])["status"] == "ok"
    subs = aws_documented_event()
    subs["rawPath"] = subs["requestContext"]["http"]["path"] = "/subscriptions"
    subs["requestContext"]["http"]["method"] = "GET"
    subs["routeKey"] = subs["requestContext"]["routeKey"] = "GET /subscriptions"
    subs["rawQueryString"] = "email=a%2Fb%40example.com"
    subs["queryStringParameters"] = {"email": "a/b@example.com"}  # AWS decodes the values it hands over
    subs["headers"]["x-api-key"] = "key-one"
    subs.pop("body")
    answer = query.handle(subs, context)
    assert answer["statusCode"] == 404 and json.loads(answer["body"])["error"]["code"] == "subscription_not_found"


def test_a_404_or_405_does_not_echo_an_address_in_the_path(store: FakeSubscriptionStore) -> None:
    """Error bodies never hold an e-mail address: a path the router cannot match (a soft hyphen in the
    address) or a method the path does not take is answered without the path's address."""
    status, body = call("GET", "/subscriptions/secret.person%40ex%C2%ADample.com", route_path="$default")
    assert status == 404 and body["error"]["code"] == "not_found"
    assert "secret.person" not in json.dumps(body, ensure_ascii=False)
    assert body["error"]["message"] == "No route for GET /subscriptions/{redacted}"
    status, body = call("DELETE", "/subscriptions/secret.person%40example.com", route_path="$default")
    assert status == 405 and body["error"]["allow"] == "GET, PUT"
    assert "secret.person" not in json.dumps(body, ensure_ascii=False)
    assert body["error"]["message"] == "/subscriptions/{email} accepts GET, PUT, not DELETE"
    status, body = call("GET", "/nothing/here", route_path="$default")  # a path without an address is shown
    assert body["error"]["message"] == "No route for GET /nothing/here"
