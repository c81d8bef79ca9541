"""The local HTTP API builds the same API Gateway payload-2.0 events as AWS: SAM's own generated event is
the reference shape, Powertools' APIGatewayProxyEventV2Model parses both ours and every file in events/."""

import base64
import json
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools.utilities.parser.models import APIGatewayProxyEventV2Model, EventBridgeModel, SqsModel

from devkit.gateway import build_event, decoded_path, is_text_content, match_route, translate_response
from devkit.template import REPO_ROOT, HttpRoute, Template

EVENTS = sorted((REPO_ROOT / "events").glob("*.json"))
# Parts of SAM's sample that only exist with authorizers, mutual TLS or stage variables.
OPTIONAL = {
    "cookies",
    "stageVariables",
    "authentication",
    "authorizer",
    "pathParameters",
    "queryStringParameters",
    "body",
}


@cache
def sam_reference_event() -> dict[str, Any]:
    sam = shutil.which("sam")
    if sam is None:
        pytest.skip("sam CLI not on PATH (make test puts .venv-tools/bin there)")
    out = subprocess.run(
        [sam, "local", "generate-event", "apigateway", "http-api-proxy"],
        capture_output=True,
        text=True,
        check=True,
        env={"SAM_CLI_TELEMETRY": "0", "PATH": "/usr/bin:/bin"},
    )
    return json.loads(out.stdout)


def shape(value: Any, path: str = "") -> dict[str, str]:
    """Every key path and the JSON type at it (header and parameter maps are open-ended: not descended)."""
    out: dict[str, str] = {}
    if isinstance(value, dict):
        for key, inner in value.items():
            if key in OPTIONAL:
                continue
            child = f"{path}.{key}" if path else key
            out[child] = type(inner).__name__
            if key not in ("headers",):
                out.update(shape(inner, child))
    return out


def sample(**kwargs: Any) -> dict[str, Any]:
    defaults = dict(
        method="POST",
        target="/relay/marketo?x=1&x=2&y=",
        headers=[("Content-Type", "application/json"), ("X-Token", "a"), ("x-token", "b"), ("Cookie", "a=1; b=2")],
        body=b'{"k": "v"}',
        route=HttpRoute("POST", "/relay/{route}", "RelayFunction"),
        path_parameters={"route": "marketo"},
    )
    return build_event(**(defaults | kwargs))


def test_translation_has_the_shape_sam_generates() -> None:
    assert shape(sample()) == shape(sam_reference_event())


HTTP_EVENTS = [p for p in EVENTS if "Records" not in p.read_text() and '"detail-type"' not in p.read_text()]


@pytest.mark.parametrize("path", HTTP_EVENTS, ids=lambda p: p.name)
def test_every_http_event_file_has_the_reference_shape_and_parses(path: Path) -> None:
    event = json.loads(path.read_text(encoding="utf-8"))
    assert shape(event) == shape(sam_reference_event())
    APIGatewayProxyEventV2Model.model_validate(event)


@pytest.mark.parametrize("path", [p for p in EVENTS if '"aws:sqs"' in p.read_text()], ids=lambda p: p.name)
def test_every_sqs_event_file_parses(path: Path) -> None:
    SqsModel.model_validate(json.loads(path.read_text(encoding="utf-8")))


@pytest.mark.parametrize("path", [p for p in EVENTS if '"aws:s3"' in p.read_text()], ids=lambda p: p.name)
def test_every_s3_notification_file_parses(path: Path) -> None:
    # Powertools' model of S3's documented notification (what devkit post-eml sends, too)
    from aws_lambda_powertools.utilities.parser.models import S3Model

    S3Model.model_validate(json.loads(path.read_text(encoding="utf-8")))


def test_every_event_file_with_records_is_an_sqs_or_s3_one() -> None:
    with_records = {p.name for p in EVENTS if "Records" in p.read_text()}
    known = {p.name for p in EVENTS if '"aws:sqs"' in p.read_text() or '"aws:s3"' in p.read_text()}
    assert with_records <= known


@pytest.mark.parametrize("path", [p for p in EVENTS if '"detail-type"' in p.read_text()], ids=lambda p: p.name)
def test_every_scheduled_event_file_parses(path: Path) -> None:
    event = EventBridgeModel.model_validate(json.loads(path.read_text(encoding="utf-8")))
    assert event.detail_type == "Scheduled Event"


def test_powertools_model_parses_the_translation() -> None:
    parsed = APIGatewayProxyEventV2Model.model_validate(sample())
    assert parsed.requestContext.http.method == "POST"
    assert parsed.pathParameters == {"route": "marketo"}


def test_headers_are_lower_cased_and_repeats_joined() -> None:
    event = sample()
    assert event["headers"]["x-token"] == "a,b" and "X-Token" not in event["headers"]
    assert event["cookies"] == ["a=1", "b=2"] and "cookie" not in event["headers"]


def test_query_string_is_raw_and_parsed() -> None:
    event = sample()
    assert event["rawQueryString"] == "x=1&x=2&y="
    assert event["queryStringParameters"] == {"x": "1,2", "y": ""}


@pytest.mark.parametrize(
    ("content_type", "encoded"),
    [
        ("application/json", False),
        ("text/plain;charset=UTF-8", False),
        # Structured-suffix types are not in HTTP APIs' text list: they arrive base64-encoded.
        ("application/vnd.api+json", True),
        ("application/soap+xml", True),
        ("application/xml", False),
        ("application/x-www-form-urlencoded", True),
        (None, True),
        ("application/octet-stream", True),
    ],
)
def test_bodies_are_base64_encoded_unless_text(content_type: str | None, encoded: bool) -> None:
    body = "名前=太郎&x=1".encode()
    headers = [("Content-Type", content_type)] if content_type else []
    event = sample(headers=headers, body=body)
    assert event["isBase64Encoded"] is encoded
    assert (base64.b64decode(event["body"]) if encoded else event["body"].encode()) == body
    assert is_text_content(content_type) is (not encoded)


def test_text_body_that_is_not_utf8_is_base64() -> None:
    event = sample(body=b"\xff\xfe")
    assert event["isBase64Encoded"] and base64.b64decode(event["body"]) == b"\xff\xfe"


def test_no_body_no_body_key() -> None:
    assert "body" not in sample(method="GET", body=b"")


def test_request_context_carries_id_and_time() -> None:
    a, b = sample(), sample()
    assert a["requestContext"]["requestId"] != b["requestContext"]["requestId"]
    assert a["requestContext"]["timeEpoch"] > 1_700_000_000_000


def test_routes_match_most_specific_first_and_fall_back_to_default() -> None:
    routes = Template().http_routes()
    route, params = match_route(routes, "POST", decoded_path("/deliveries/d-1/retry"))
    assert route.route_key == "POST /deliveries/{delivery_id}/retry" and params == {"delivery_id": "d-1"}
    route, params = match_route(routes, "GET", decoded_path("/subscriptions/taro%40example.com"))
    assert route.route_key == "GET /subscriptions/{email}" and params == {"email": "taro@example.com"}
    route, _ = match_route(routes, "DELETE", "/subscriptions/x")
    assert route.route_key == "$default"


def test_response_translation_follows_payload_v2_rules() -> None:
    assert translate_response({"statusCode": 201, "headers": {"A": "1"}, "body": "x", "cookies": ["c=1"]}) == (
        201,
        [("A", "1"), ("Set-Cookie", "c=1")],
        b"x",
    )
    assert (
        translate_response({"statusCode": 200, "body": base64.b64encode(b"\x00").decode(), "isBase64Encoded": True})[2]
        == b"\x00"
    )
    assert translate_response({"ok": True}) == (200, [("Content-Type", "application/json")], b'{"ok": true}')


@pytest.mark.parametrize(
    ("target", "path"),
    [
        ("/subscriptions/taro%40example.com", "/subscriptions/taro@example.com"),
        ("/subscriptions/a%2Fb@example.com", "/subscriptions/a/b@example.com"),
        ("/subscriptions/a%3Fb@example.com?x=1", "/subscriptions/a"),
        ("/subscriptions/a%23b@example.com", "/subscriptions/a"),
        ("/relay/r%20x", "/relay/r x"),
    ],
)
def test_paths_are_decoded_as_http_apis_decode_them(target: str, path: str) -> None:
    event = build_event(
        method="GET",
        target=target,
        headers=[],
        body=b"",
        route=HttpRoute("GET", "$default", "QueryFunction"),
        path_parameters={},
    )
    assert event["rawPath"] == event["requestContext"]["http"]["path"] == path


def test_an_address_with_a_slash_cannot_use_the_path_form_on_aws() -> None:
    routes = Template().http_routes()
    route, _ = match_route(routes, "GET", decoded_path("/subscriptions/a%2Fb@example.com"))
    assert route.route_key == "$default"  # as on AWS: the query form carries it instead
    route, _ = match_route(routes, "GET", decoded_path("/subscriptions?email=a%2Fb%40example.com"))
    assert route.route_key == "GET /subscriptions"
