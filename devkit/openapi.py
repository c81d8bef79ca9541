"""The API description (openapi.json), generated from the code: the request and response models are the
pydantic models the functions validate with, and the operations are checked against template.yaml's
routes by the tests, so the document cannot drift from either.

Why not Powertools' own generator: it needs enable_validation, which validates a body before any route
middleware runs - an unauthenticated caller would learn the input rules (400) before being refused (401).
The bridge validates explicitly after authentication (README, "Departures")."""

import json
import sys
from typing import Any

from martech_bridge.models.delivery import Attempt, DeliveryStatus, FailureReason
from martech_bridge.models.mail import MailRequest, RecipientResult
from martech_bridge.models.subscription import Subscription, SubscriptionChange, SubscriptionUpdate
from pydantic import BaseModel, Field


class ErrorDetail(BaseModel):
    code: str = Field(examples=["validation_error"])
    message: str
    field: str | None = None


class ErrorBody(BaseModel):
    """Every error the API answers with."""

    error: ErrorDetail


class SubscriptionOut(Subscription):
    history: list[SubscriptionChange]


class MailAccepted(BaseModel):
    dispatch_id: str
    provider: str
    status: str = Field(examples=["accepted", "partial", "unknown", "failed", "not_sent"])
    recipients: list[RecipientResult]  # `pending`: queued by the bridge within the request, sent shortly


class RelayAnswer(BaseModel):
    """Flat, for Marketo's response mappings; target fields and the route's response.fields are added."""

    model_config = {"extra": "allow"}
    status: str = Field(examples=["delivered", "queued"])
    delivery_id: str


class DeliveryOut(BaseModel):
    delivery_id: str
    route: str
    target: str
    status: DeliveryStatus
    attempts: int
    max_attempts: int
    payload: dict[str, Any]
    last_error: str | None = None
    failure: FailureReason | None = None
    replays: int = 0
    attempt_history: list[Attempt]


class LogStatus(BaseModel):
    groupName: str = Field(examples=["DELIVERED"])
    name: str


class LogLine(BaseModel):
    messageId: str
    dispatch_id: str
    to: str | None = None
    provider: str | None = None
    sentAt: str | None = None
    doneAt: str | None = None
    status: LogStatus


class LogPage(BaseModel):
    results: list[LogLine]
    cursor: str | None = None


class Report(BaseModel):
    messageId: str
    dispatch_id: str | None = None
    to: str | None = None
    generalStatus: str
    status: str
    doneAt: str | None = None


class ReportPage(BaseModel):
    results: list[Report]


class EventsQueued(BaseModel):
    status: str = Field(examples=["queued"])
    events: int


API_KEY: list[dict[str, list[str]]] = [{"ApiKey": []}]
ERRORS = {
    400: "malformed input; `field` names it",
    401: "missing or wrong credentials",
    404: "unknown route or record",
    413: "body too large",
    503: "an AWS dependency did not answer",
}

# (method, path) -> the operation. test_openapi checks these against template.yaml's routes.
OPERATIONS: dict[tuple[str, str], dict[str, Any]] = {
    **{
        (method, "/relay/{route}"): {
            "summary": f"Relay a Marketo / KARTE webhook sent as {method} to its route's target",
            **({"body": "any"} if method != "GET" else {}),
            "ok": {200: RelayAnswer, 202: RelayAnswer},
            "errors": {
                405: "method not taken by the route (the Allow header lists those it takes)",
                409: "same idempotency key in progress (Retry-After: when its attempt's lease ends)",
                422: "same idempotency key, different body; or the route's mapping cannot use this payload",
                502: "the target refused the call (its code and message)",
            },
        }
        for method in ("GET", "POST", "PUT", "PATCH", "DELETE")
    },
    ("POST", "/mail/send"): {
        "summary": "Send one message through SendGrid, Braze or Infobip",
        "auth": True,
        "body": MailRequest,
        "ok": {202: MailAccepted},
        "errors": {
            409: "same idempotency key in progress (a first attempt that died is taken over once its lease ends)",
            413: "attachments or metadata too large to send and record; `field` names it",
            422: "same key, different body",
            502: "the provider refused or stayed unavailable",
        },
    },
    ("POST", "/events/{provider}"): {
        "summary": "ESP event webhook: verify, enqueue, answer fast",
        "body": "any",
        "ok": {200: EventsQueued},
    },
    ("GET", "/messages/{dispatch_id}"): {
        "summary": "A message, its recipients and their events",
        "auth": True,
        "ok": {200: "object"},
    },
    ("GET", "/messages"): {
        "summary": "Message logs, filtered like Infobip's",
        "auth": True,
        "ok": {200: LogPage},
        "query": ["messageId", "to", "sentSince", "sentUntil", "generalStatus", "limit", "cursor"],
    },
    ("GET", "/reports"): {
        "summary": "Final delivery reports, each returned once",
        "auth": True,
        "ok": {200: ReportPage},
        "query": ["limit"],
    },
    ("GET", "/deliveries/{delivery_id}"): {
        "summary": "A relay or sink delivery with every attempt",
        "auth": True,
        "ok": {200: DeliveryOut},
    },
    ("POST", "/deliveries/{delivery_id}/retry"): {
        "summary": "Replay a failed or rejected delivery",
        "auth": True,
        "ok": {202: "object"},
        "errors": {409: "not failed or rejected"},
    },
    ("GET", "/subscriptions/{email}"): {
        "summary": "A recipient's subscription and its history",
        "auth": True,
        "ok": {200: SubscriptionOut},
    },
    ("GET", "/subscriptions"): {
        "summary": "A recipient's subscription and its history, for any address (?email=)",
        "auth": True,
        "ok": {200: SubscriptionOut},
        "query": ["email"],
    },
    ("PUT", "/subscriptions"): {
        "summary": "Set a subscription for any address (?email=)",
        "auth": True,
        "body": SubscriptionUpdate,
        "ok": {200: SubscriptionOut},
        "query": ["email"],
        "errors": {409: "changed concurrently"},
    },
    ("GET", "/health"): {
        "summary": "Liveness: no credentials, no secrets",
        "ok": {200: "object"},
    },
    ("PUT", "/subscriptions/{email}"): {
        "summary": "Set a subscription (re-subscribing is explicit)",
        "auth": True,
        "body": SubscriptionUpdate,
        "ok": {200: SubscriptionOut},
        "errors": {409: "changed concurrently"},
    },
}


def _ref(model: Any, components: dict[str, Any]) -> dict[str, Any]:
    if model == "any" or model == "object":
        return {"type": "object", "additionalProperties": True}
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}", mode="serialization")
    for name, definition in schema.pop("$defs", {}).items():
        components[name] = definition
    components[model.__name__] = schema
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def document() -> dict[str, Any]:
    components: dict[str, Any] = {}
    error = {"application/json": {"schema": _ref(ErrorBody, components)}}
    paths: dict[str, dict[str, Any]] = {}
    for (method, path), op in sorted(OPERATIONS.items()):
        operation: dict[str, Any] = {
            "summary": op["summary"],
            "operationId": f"{method.lower()}_{path.strip('/').replace('/', '_').replace('{', '').replace('}', '')}",
        }
        parameters = [
            {"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
            for p in (part[1:-1] for part in path.split("/") if part.startswith("{"))
        ]
        parameters += [
            {"name": q, "in": "query", "required": False, "schema": {"type": "string"}} for q in op.get("query", [])
        ]
        if parameters:
            operation["parameters"] = parameters
        if "body" in op:
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": _ref(op["body"], components)}},
            }
        responses: dict[str, Any] = {
            str(code): {
                "description": "OK" if code == 200 else "Accepted",
                "content": {"application/json": {"schema": _ref(model, components)}},
            }
            for code, model in op["ok"].items()
        }
        for code, text in {**ERRORS, **op.get("errors", {})}.items():
            responses[str(code)] = {"description": text, "content": error}
        operation["responses"] = dict(sorted(responses.items()))
        if op.get("auth"):
            operation["security"] = API_KEY
        paths.setdefault(path, {})[method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Martech Bridge",
            "version": "1",
            "description": "Relays Marketo / KARTE webhooks, sends mail through SendGrid, Braze and Infobip, "
            'and ingests their events. Every error is {"error": {"code", "message", ...}}.',
        },
        "paths": paths,
        "components": {
            "schemas": dict(sorted(components.items())),
            "securitySchemes": {"ApiKey": {"type": "apiKey", "in": "header", "name": "X-Api-Key"}},
        },
    }


def render() -> str:
    return json.dumps(document(), indent=2, ensure_ascii=False, sort_keys=False) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
