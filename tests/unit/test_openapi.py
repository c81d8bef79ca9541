"""openapi.json is generated from the code and must match it: the committed file, the template's routes,
the models the functions really parse, and the OpenAPI 3.1 specification."""

import json
import re

from openapi_spec_validator import validate

from devkit.openapi import OPERATIONS, render
from devkit.template import REPO_ROOT, Template

COMMITTED = REPO_ROOT / "openapi.json"


def test_the_committed_document_is_what_the_code_generates() -> None:
    assert COMMITTED.read_text(encoding="utf-8") == render(), "run: .venv/bin/python -m devkit.openapi > openapi.json"


def test_every_route_of_the_template_is_described_and_nothing_else() -> None:
    routes = {(r.method, r.path) for r in Template().http_routes() if r.path != "$default"}
    assert set(OPERATIONS) == routes


def test_the_catch_all_knows_every_path_and_method_the_template_routes() -> None:
    """So that another method on a known path gets 405 with Allow, not 404."""
    from martech_bridge.api import API_PATHS

    routes: dict[str, set[str]] = {}
    for r in Template().http_routes():
        if r.path != "$default":
            routes.setdefault(r.path, set()).add(r.method)
    assert {path: set(methods) for path, methods in API_PATHS.items()} == routes


def test_the_document_is_valid_openapi() -> None:
    validate(json.loads(COMMITTED.read_text(encoding="utf-8")))


def test_each_event_provider_is_its_own_operation_with_its_own_credentials() -> None:
    paths = json.loads(COMMITTED.read_text(encoding="utf-8"))["paths"]
    assert "/events/{provider}" not in paths
    security = {p: paths[f"/events/{p}"]["post"]["security"] for p in ("sendgrid", "braze", "infobip")}
    assert security["sendgrid"] == [{"SendGridSignature": [], "SendGridTimestamp": []}]
    assert {"BrazeToken": []} in security["braze"] and {"InfobipToken": []} in security["infobip"]
    assert paths["/events/sendgrid"]["post"]["requestBody"]["content"]["application/json"]["schema"]["type"] == "array"


def test_every_format_and_limit_the_entrypoints_check_is_stated() -> None:
    paths = json.loads(COMMITTED.read_text(encoding="utf-8"))["paths"]
    query = {p["name"]: p["schema"] for p in paths["/messages"]["get"]["parameters"]}
    assert query["limit"]["minimum"] == 1 and query["limit"]["maximum"] == 1000 and query["limit"]["type"] == "integer"
    assert query["sentSince"]["anyOf"][0]["format"] == query["sentUntil"]["anyOf"][0]["format"] == "date-time"
    assert query["to"]["anyOf"][0]["format"] == "email"
    assert set(query["generalStatus"]["enum"]) == {"PENDING", "DELIVERED", "UNDELIVERABLE", "EXPIRED", "REJECTED"}
    email = paths["/subscriptions/{email}"]["get"]["parameters"][0]["schema"]
    assert email["format"] == "email" and email["maxLength"] == 254
    route = paths["/relay/{route}"]["post"]["parameters"][0]["schema"]
    assert route["pattern"] == "^[a-z0-9][a-z0-9_-]{0,63}$"
    relay = paths["/relay/{route}"]["post"]
    assert set(relay["requestBody"]["content"]) == {
        "application/json",
        "application/x-www-form-urlencoded",
        "text/plain",
    }
    assert {"WebhookToken": []} in relay["security"] and "Allow" in relay["responses"]["405"]["headers"]
    assert all(
        op["security"] == [{"ApiKey": []}]
        for path, ops in paths.items()
        for op in ops.values()
        if not path.startswith(("/relay/", "/events/")) and path not in ("/health", "/console")
    )
    assert "security" not in paths["/health"]["get"]  # liveness: no credentials
    assert "security" not in paths["/console"]["get"]  # the page holds no data; it asks for the key
    by_query = {p["name"]: p for p in paths["/subscriptions"]["get"]["parameters"]}["email"]
    for odd in ("a/b@example.com", "a?b@example.com", "a#b@example.com"):
        assert by_query["required"] and re.fullmatch(by_query["schema"]["pattern"], odd)  # any accepted address
        assert not re.fullmatch(email["pattern"], odd)  # a decoded path segment cannot carry them
    assert re.fullmatch(email["pattern"], "taro.yamada+news@example.com")


def test_request_bodies_are_the_models_the_functions_parse() -> None:
    parsed = set()
    for path in (REPO_ROOT / "layers/common/martech_bridge/entrypoints").glob("*.py"):
        parsed |= set(re.findall(r"parse_body\(app, (\w+)\)", path.read_text()))
    described = {op["body"].__name__ for op in OPERATIONS.values() if hasattr(op.get("body"), "model_json_schema")}
    assert described == parsed


def test_answers_match_their_documented_schema() -> None:
    """A real answer of the API, checked against the document's own schema."""
    from datetime import UTC, datetime

    from jsonschema import Draft202012Validator
    from martech_bridge.models.subscription import Subscription, SubscriptionChange, SubscriptionView

    doc = json.loads(COMMITTED.read_text(encoding="utf-8"))
    now = datetime.now(UTC)
    view = SubscriptionView(
        subscription=Subscription(email="a@b.co", subscribed=False, suppression="unsubscribe", changed_at=now),
        history=[SubscriptionChange(subscribed=False, source="api", changed_at=now)],
    ).to_json()
    schema = {"$ref": "#/components/schemas/SubscriptionOut", "components": doc["components"]}
    Draft202012Validator(schema).validate(view)
