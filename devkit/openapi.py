"""The API description (openapi.json), generated from the code: the request and response models are the
pydantic models of devkit/api_models.py (held to the functions' own checks by a test), and the operations
are checked against template.yaml's routes by the tests, so the document cannot drift from either.

Why not Powertools' own generator: it needs enable_validation, which validates a body before any route
middleware runs - an unauthenticated caller would learn the input rules (400) before being refused (401).
The bridge validates explicitly after authentication (docs/design.md, "Departures")."""

import json
import sys
from datetime import datetime
from typing import Any

from martech_bridge.adapters.message_store import STATUSES_OF_GROUP
from martech_bridge.models.delivery import DELIVERY_ID_PATTERN, DeliveryStatus, FailureReason
from martech_bridge.models.email import EMAIL_JSON_SCHEMA
from martech_bridge.models.mail import DISPATCH_ID_PATTERN
from martech_bridge.models.routes import ROUTE_NAME_PATTERN
from pydantic import BaseModel, Field

from devkit.api_models import MailRequest, RecipientResult, Subscription, SubscriptionChange, SubscriptionUpdate


class ErrorDetail(BaseModel):
    code: str = Field(examples=["validation_error"])
    message: str
    field: str | None = None


class ErrorBody(BaseModel):
    """Every error the API answers with."""

    error: ErrorDetail


class SubscriptionOut(Subscription):
    history: list[SubscriptionChange]
    # After a re-subscription: each configured provider's release ("removed", "not_listed", "cleared", "pending",
    # "failed").
    released: dict[str, str] | None = None


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


# models/delivery.py's Attempt as the API answers it: that one is a msgspec Struct, which pydantic cannot
# describe (tests/unit/test_delivery_record.py keeps the two equal field for field).
class Attempt(BaseModel):
    number: int = Field(ge=1)
    started_at: datetime
    latency_ms: int = Field(ge=0)
    status: int | None = None
    verdict: str
    error: str | None = None
    target_code: str | None = None
    target_message: str | None = None
    ambiguous: bool = False


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


class DeliveryLine(BaseModel):
    """One delivery in a listing (its attempts: GET /deliveries/{delivery_id})."""

    delivery_id: str
    route: str
    target: str
    status: DeliveryStatus
    failure: FailureReason | None = None
    attempts: int = 0
    max_attempts: int
    created_at: str
    updated_at: str
    last_error: str | None = None
    replays: int = 0


class DeliveryPage(BaseModel):
    results: list[DeliveryLine]
    cursor: str | None = None


class StatsRates(BaseModel):
    """Delivery and bounce rates over sent, engagement over delivered; null where the denominator is 0."""

    delivery_rate: float | None
    bounce_rate: float | None
    open_rate: float | None
    click_rate: float | None
    complaint_rate: float | None
    unsubscribe_rate: float | None


class StatsCounts(BaseModel):
    sent: int
    delivered: int
    bounced_hard: int
    bounced_soft: int
    opened: int
    clicked: int
    complained: int
    unsubscribed: int


class StatsTotals(StatsCounts):
    rates: StatsRates


class StatsDay(StatsTotals):
    day: str = Field(examples=["2026-11-30"])
    providers: dict[str, StatsCounts] = Field(description="the day's counts of each provider that had any")


class RelayDay(BaseModel):
    """Deliveries created on a day for one route (or sink, `sink:<name>`), by their state now."""

    model_config = {"extra": "allow"}
    day: str
    route: str
    total: int


class Stats(BaseModel):
    from_: str = Field(alias="from")
    to: str
    provider: str | None
    days: list[StatsDay]
    totals: StatsTotals
    relay: list[RelayDay]


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


class RetryQueued(BaseModel):
    status: str = Field(examples=["queued"])
    delivery_id: str
    replays: int


class EventsQueued(BaseModel):
    status: str = Field(examples=["queued"])
    events: int


class EventOut(BaseModel):
    """One normalised event as stored (django-anymail's fields and more)."""

    model_config = {"extra": "allow"}
    provider: str
    event_id: str
    event_type: str = Field(examples=["bounced"])
    timestamp: str = Field(description="UTC, ISO 8601")
    recipient: str | None = None
    matched_by: str | None = Field(default=None, examples=["id", "provider_id", "address"])


class ReplyOut(BaseModel):
    """A reply received by the inbound mail path, tied to the message it answers or not."""

    model_config = {"extra": "allow"}
    reply_id: str
    received_at: str = Field(description="UTC, ISO 8601")
    matched: bool
    matched_by: str | None = Field(default=None, examples=["reply_address", "in_reply_to"])
    dispatch_id: str | None = None
    message_id: str | None = None
    claimed_by: str | None = Field(
        default=None,
        description="unverified: how the reply named a message whose recipients do not include its sender",
        examples=["reply_address", "in_reply_to"],
    )
    claimed_dispatch_id: str | None = Field(default=None, description="unverified: the message the reply named")
    unmatched_reason: str | None = Field(default=None, description="unverified: why the reply is not linked")
    subject: str | None = None
    text: str | None = Field(default=None, description="the reply without the history it quotes")
    attachments: list[dict[str, Any]] | None = Field(default=None, description="name, content type and size")


class ReplyPage(BaseModel):
    results: list[ReplyOut]
    cursor: str | None = None


class EventPage(BaseModel):
    results: list[EventOut]
    cursor: str | None = None


API_KEY: list[dict[str, list[str]]] = [{"ApiKey": []}]
# A relay route names its own scheme in the routes file (`auth.type`): one of these applies to each route.
RELAY_AUTH: list[dict[str, list[str]]] = [
    {"WebhookToken": []},
    {"WebhookTokenQuery": []},
    {"KarteSignature": [], "KarteTimestamp": []},
    {"HmacSignature": []},
]
EVENT_AUTH: dict[str, list[dict[str, list[str]]]] = {
    "sendgrid": [{"SendGridSignature": [], "SendGridTimestamp": []}],
    "braze": [{"BrazeToken": []}, {"BrazeTokenQuery": []}],
    "infobip": [{"InfobipToken": []}, {"InfobipTokenHeader": []}],
}
SECURITY_SCHEMES: dict[str, dict[str, str]] = {
    "ApiKey": {"type": "apiKey", "in": "header", "name": "X-Api-Key"},
    "WebhookToken": {
        "type": "apiKey",
        "in": "header",
        "name": "X-Webhook-Token",
        "description": "A relay route with `auth.type: shared_secret`: the secret in the route's `header` "
        "(X-Webhook-Token unless the route names another, e.g. X-Craft-Token).",
    },
    "WebhookTokenQuery": {
        "type": "apiKey",
        "in": "query",
        "name": "token",
        "description": "A shared_secret route that opts in with `query_param` (named `token` here): the secret in "
        "the query string. It authenticates only; it is never stored, hashed, mapped or forwarded.",
    },
    "KarteSignature": {
        "type": "apiKey",
        "in": "header",
        "name": "X-Karte-Signature",
        "description": "A route with `auth.type: karte_hmac` (KARTE Hook v2): HMAC-SHA256, hex or base64, of "
        '"{X-Karte-Request-Timestamp}:{raw body}" with the app\'s client secret.',
    },
    "KarteTimestamp": {
        "type": "apiKey",
        "in": "header",
        "name": "X-Karte-Request-Timestamp",
        "description": "Unix seconds (or milliseconds); refused outside the route's max_skew_seconds (300 s).",
    },
    "HmacSignature": {
        "type": "apiKey",
        "in": "header",
        "name": "X-Signature",
        "description": "A route with `auth.type: hmac_sha256`: HMAC-SHA256 of the raw body (or of "
        '"{timestamp}.{body}" with `timestamp_header`), hex or base64, after the route\'s `prefix`, in the '
        "route's `header`.",
    },
    "SendGridSignature": {
        "type": "apiKey",
        "in": "header",
        "name": "X-Twilio-Email-Event-Webhook-Signature",
        "description": "SendGrid's Signed Event Webhook: base64 ECDSA P-256/SHA-256 signature of the timestamp "
        "header followed by the exact body bytes.",
    },
    "SendGridTimestamp": {
        "type": "apiKey",
        "in": "header",
        "name": "X-Twilio-Email-Event-Webhook-Timestamp",
        "description": "Unix seconds; refused outside SENDGRID_WEBHOOK_MAX_AGE_SECONDS.",
    },
    "BrazeToken": {"type": "apiKey", "in": "header", "name": "X-Webhook-Token"},
    "BrazeTokenQuery": {"type": "apiKey", "in": "query", "name": "token"},
    "InfobipToken": {
        "type": "apiKey",
        "in": "query",
        "name": "token",
        "description": "The token the bridge puts into notifyUrl / trackingUrl (per dispatch), or the shared secret.",
    },
    "InfobipTokenHeader": {"type": "apiKey", "in": "header", "name": "X-Webhook-Token"},
}
ERRORS = {
    400: "malformed input; `field` names it",
    401: "missing or wrong credentials",
    404: "unknown route or record",
    413: "body too large",
    503: "an AWS dependency did not answer",
}
RETRY_AFTER = {"Retry-After": {"description": "seconds to wait before repeating", "schema": {"type": "string"}}}
ALLOW = {
    "Allow": {
        "description": "the methods the route takes",
        "required": True,
        "schema": {"type": "string", "pattern": r"^(GET|POST|PUT|PATCH|DELETE)(, (GET|POST|PUT|PATCH|DELETE))*$"},
    }
}
# Path and query parameters, stated as the entrypoints check them.
EMAIL = EMAIL_JSON_SCHEMA
# In a path segment an address cannot hold `/`, `?` or `#`: API Gateway decodes the path before it routes,
# so those split or cut it. Such addresses use /subscriptions?email= (EMAIL).
EMAIL_IN_PATH = {**EMAIL, "pattern": str(EMAIL["pattern"]).replace("!#$", "!$").replace("+/=?^", "+=^")}
assert EMAIL_IN_PATH["pattern"] != EMAIL["pattern"], "models/email.py's atom changed: update EMAIL_IN_PATH"
PATH_PARAMETERS: dict[str, dict[str, Any]] = {
    # models/routes.py RouteName
    "route": {"type": "string", "pattern": ROUTE_NAME_PATTERN, "maxLength": 64},
    "email": EMAIL_IN_PATH,
    # sending: "d_" + 24 hex digits (derived from the idempotency key, or time + random)
    "dispatch_id": {"type": "string", "pattern": DISPATCH_ID_PATTERN, "maxLength": 26},
    # deliveries.new_delivery_id: "dl_" + 26 (keyed) or 27 (time + random) hex digits
    "delivery_id": {"type": "string", "pattern": DELIVERY_ID_PATTERN, "maxLength": 30},
}
LIMIT = {"type": "integer", "minimum": 1, "maximum": 1000}
ABSENT = {"const": ""}  # GET /messages, /deliveries and /stats read an empty filter as no filter
MESSAGE_IDS = {
    "schema": {"type": "string", "maxLength": 2000, "pattern": r"^[^,]{0,200}(,[^,]{0,200}){0,99}$"},
    "description": "one or several message ids, repeated or comma-separated (at most 100, each <= 200 characters)",
}
BULK_ID = {"schema": {"type": "string", "maxLength": 200}}
CURSOR = {"schema": {"type": "string"}, "description": "opaque: the `cursor` of the previous page, same filters only"}
STATES = "|".join([*(s.value for s in DeliveryStatus), "outcome_unknown"])
DAY = {"type": "string", "pattern": r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"}
SENT_AT = "ISO 8601 between 2000 and 2100; sentSince and sentUntil at most 31 days apart"
QUERY_PARAMETERS: dict[str, dict[str, Any]] = {
    "messageId": MESSAGE_IDS,
    "bulkId": BULK_ID,
    "to": {"schema": {"anyOf": [EMAIL, ABSENT]}},
    "from": {"schema": {"anyOf": [EMAIL, ABSENT]}},
    "campaignReferenceId": {"schema": {"type": "string", "maxLength": 255}},
    "sentSince": {
        "schema": {"anyOf": [{"type": "string", "format": "date-time"}, ABSENT]},
        "description": f"{SENT_AT}; default: two days before sentUntil. Must not be after sentUntil.",
    },
    "sentUntil": {
        "schema": {"anyOf": [{"type": "string", "format": "date-time"}, ABSENT]},
        "description": f"{SENT_AT}; default: now",
    },
    "generalStatus": {
        "schema": {"type": "string", "enum": list(STATUSES_OF_GROUP)},
        "description": "Infobip's status group (case-insensitive)",
    },
    "cursor": CURSOR,
}
RELAY_QUERY = {
    "name": "fields",
    "in": "query",
    "required": False,
    "style": "form",
    "explode": True,
    "description": "Read as the payload when the body is empty (a GET, a DELETE): any fields, repeated ones as lists.",
    "schema": {"type": "object", "additionalProperties": {"type": "string"}},
}
# Marketo and KARTE do not reliably set Content-Type: the relay reads the body for what it is (logic/inbound.py).
RELAY_BODY: dict[str, Any] = {
    "required": False,
    "description": "At most the route's max_body_bytes (256 KiB by default). A JSON object; or form fields; "
    'or text that is either (text starting with `{`, `[` or `"` is read as JSON, else as form fields).',
    "content": {
        "application/json": {"schema": {"type": "object", "additionalProperties": True}},
        "application/x-www-form-urlencoded": {"schema": {"type": "object", "additionalProperties": {"type": "string"}}},
        "text/plain": {
            "schema": {
                "type": "string",
                "maxLength": 262_144,
                # form text: percent-escapes must decode to UTF-8, so this states the plain form
                "pattern": r"^(?!\s*[\[{\"])[^%]*=[^%]*$",
            }
        },
    },
}
IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "Repeats with the same key are answered from the first request's record (24 h); an empty "
    "key is no key.",
    "schema": {"type": "string", "maxLength": 256},
}
EVENT_BODIES: dict[str, dict[str, Any]] = {
    # events are objects; an item that is not one is recorded as rejected by the event worker, not refused here
    "sendgrid": {"type": "array"},
    "braze": {"type": "object", "additionalProperties": True},
    "infobip": {"type": "object", "additionalProperties": True},
}

# (method, path) -> the operation. test_openapi checks these against template.yaml's routes.
OPERATIONS: dict[tuple[str, str], dict[str, Any]] = {
    **{
        (method, "/relay/{route}"): {
            "summary": f"Relay a Marketo / KARTE webhook sent as {method} to its route's target",
            **({"body": RELAY_BODY} if method != "GET" else {}),
            "security": RELAY_AUTH,
            "query_object": RELAY_QUERY,
            "headers": [IDEMPOTENCY_KEY],
            "ok": {200: RelayAnswer, 202: RelayAnswer},
            "errors": {
                405: ("method not taken by the route (the Allow header lists those it takes)", ALLOW),
                409: ("same idempotency key in progress (Retry-After: when its attempt's lease ends)", RETRY_AFTER),
                422: "same idempotency key, different body; or the route's mapping cannot use this payload",
                502: "the target refused the call or gave an unreadable answer (its code and message)",
            },
        }
        for method in ("GET", "POST", "PUT", "PATCH", "DELETE")
    },
    ("POST", "/mail/send"): {
        "summary": "Send one message through SendGrid, Braze or Infobip",
        "security": API_KEY,
        "body": MailRequest,
        "headers": [IDEMPOTENCY_KEY],
        "ok": {202: MailAccepted},
        "errors": {
            409: (
                "same idempotency key in progress (a first attempt that died is taken over once its lease ends)",
                RETRY_AFTER,
            ),
            413: "attachments or metadata too large to send and record; `field` names it",
            422: "same key, different body",
            500: "the provider is not configured (configuration_error)",
            502: "the provider refused or stayed unavailable",
        },
    },
    ("POST", "/events/{provider}"): {
        "summary": "{provider} event webhook: verify, enqueue, answer fast",
        # One operation per provider: each signs and shapes its posts its own way.
        "per_provider": ("sendgrid", "braze", "infobip"),
        "ok": {200: EventsQueued},
    },
    ("GET", "/messages/{dispatch_id}"): {
        "summary": "A message, its recipients and their events",
        "security": API_KEY,
        "ok": {200: "object"},
    },
    ("GET", "/messages"): {
        "summary": "Message logs, filtered like Infobip's",
        "security": API_KEY,
        "ok": {200: LogPage},
        "query": {
            **QUERY_PARAMETERS,
            "limit": {"schema": {**LIMIT, "default": 50}, "description": "lines per page"},
        },
    },
    ("GET", "/reports"): {
        "summary": "Final delivery reports, each returned once",
        "security": API_KEY,
        "ok": {200: ReportPage},
        "query": {
            "messageId": MESSAGE_IDS,
            "bulkId": BULK_ID,
            "limit": {"schema": {**LIMIT, "default": 100}},
        },
    },
    ("GET", "/events"): {
        "summary": "Normalised events by address or provider message id, matched to a message or not",
        "security": API_KEY,
        "ok": {200: EventPage},
        "query": {
            "to": {"schema": {"type": "string", "maxLength": 320}, "description": "one of to / provider_message_id"},
            "provider_message_id": {"schema": {"type": "string", "maxLength": 512}},
            "limit": {"schema": {**LIMIT, "default": 50}},
            "cursor": CURSOR,
        },
    },
    ("GET", "/deliveries"): {
        "summary": "Relay and sink deliveries, newest first, by route, state and creation time",
        "security": API_KEY,
        "ok": {200: DeliveryPage},
        "query": {
            "route": {
                "schema": {"type": "string", "maxLength": 200},
                "description": "a route, or a sink as `sink:<name>`; default: every route and sink",
            },
            "status": {
                "schema": {
                    "type": "string",
                    "pattern": f"^(({STATES})(,({STATES}))*)?$",
                },
                "description": "one or several states, comma-separated; `outcome_unknown`: failed deliveries whose "
                "call may have reached the target",
            },
            "since": {
                "schema": {"anyOf": [{"type": "string", "format": "date-time"}, ABSENT]},
                "description": "created at or after (ISO 8601, 2000-2100); default: 7 days before until",
            },
            "until": {
                "schema": {"anyOf": [{"type": "string", "format": "date-time"}, ABSENT]},
                "description": "created before; default: now. At most 92 days after since.",
            },
            "limit": {"schema": {**LIMIT, "default": 50}},
            "cursor": CURSOR,
        },
    },
    ("GET", "/stats"): {
        "summary": "Effect measurement per UTC day (mail events counted at ingest, relay deliveries by route)",
        "security": API_KEY,
        "ok": {200: Stats},
        "query": {
            "from": {"schema": {"anyOf": [DAY, ABSENT]}, "description": "first UTC day; default: 6 days before `to`"},
            "to": {
                "schema": {"anyOf": [DAY, ABSENT]},
                "description": "last UTC day; default: today. At most 92 days from `from`.",
            },
            "provider": {"schema": {"type": "string", "enum": ["sendgrid", "braze", "infobip", ""]}},
        },
    },
    ("GET", "/console"): {
        "summary": "The operator console: one HTML page; it asks for an API key and calls this API with it",
        "ok": {200: "html"},
    },
    ("GET", "/replies"): {
        "summary": "Replies to one message (dispatch_id), or the replies tied to none (unmatched=true), newest first",
        "security": API_KEY,
        "ok": {200: ReplyPage},
        "query": {
            "dispatch_id": {
                "schema": {"type": "string", "pattern": "^d_[0-9a-f]{12,32}$"},
                "description": "one of dispatch_id / unmatched",
            },
            "unmatched": {"schema": {"type": "string", "enum": ["true"]}},
            "limit": {"schema": {**LIMIT, "default": 50}},
            "cursor": CURSOR,
        },
    },
    ("GET", "/deliveries/{delivery_id}"): {
        "summary": "A relay or sink delivery with every attempt",
        "security": API_KEY,
        "ok": {200: DeliveryOut},
    },
    ("POST", "/deliveries/{delivery_id}/retry"): {
        "summary": "Replay a failed or rejected delivery",
        "security": API_KEY,
        "ok": {202: RetryQueued},
        "errors": {409: "not failed or rejected"},
    },
    ("GET", "/subscriptions/{email}"): {
        "summary": "A recipient's subscription and its history",
        "security": API_KEY,
        "ok": {200: SubscriptionOut},
    },
    ("GET", "/subscriptions"): {
        "summary": "A recipient's subscription and its history, for any address (?email=)",
        "security": API_KEY,
        "ok": {200: SubscriptionOut},
        "query": {"email": {"schema": EMAIL, "required": True}},
    },
    ("PUT", "/subscriptions"): {
        "summary": "Set a subscription for any address (?email=)",
        "security": API_KEY,
        "body": SubscriptionUpdate,
        "ok": {200: SubscriptionOut},
        "query": {"email": {"schema": EMAIL, "required": True}},
        "errors": {409: "changed concurrently"},
    },
    ("GET", "/quota"): {
        "summary": "Each provider's send quota: recipients counted per day and month, and the limits",
        "security": API_KEY,
        "ok": {200: "object"},
    },
    ("GET", "/health"): {
        "summary": "Liveness: no credentials, no secrets",
        "ok": {200: "object"},
    },
    ("PUT", "/subscriptions/{email}"): {
        "summary": "Set a subscription (re-subscribing is explicit)",
        "security": API_KEY,
        "body": SubscriptionUpdate,
        "ok": {200: SubscriptionOut},
        "errors": {409: "changed concurrently"},
    },
}

# OpenAPI links: what a client (and the stateful fuzzer) can do next with an answer.
LINKS: dict[tuple[str, int], dict[str, dict[str, Any]]] = {
    ("/relay/{route}", 200): {
        "GetDelivery": {
            "operationId": "get_deliveries_delivery_id",
            "parameters": {"delivery_id": "$response.body#/delivery_id"},
        },
        "RetryDelivery": {
            "operationId": "post_deliveries_delivery_id_retry",
            "parameters": {"delivery_id": "$response.body#/delivery_id"},
        },
    },
    ("/mail/send", 202): {
        "GetMessage": {
            "operationId": "get_messages_dispatch_id",
            "parameters": {"dispatch_id": "$response.body#/dispatch_id"},
        },
    },
    ("/subscriptions/{email}", 200): {
        "GetSubscription": {
            "operationId": "get_subscriptions_email",
            "parameters": {"email": "$request.path.email"},
        },
        # The same record through the query form, which carries any address.
        "GetSubscriptionByQuery": {
            "operationId": "get_subscriptions",
            "parameters": {"email": "$request.path.email"},
        },
    },
    ("/subscriptions", 200): {
        "GetSubscriptionByQuery": {
            "operationId": "get_subscriptions",
            "parameters": {"email": "$request.query.email"},
        },
    },
    ("/deliveries/{delivery_id}", 200): {
        "RetryDelivery": {
            "operationId": "post_deliveries_delivery_id_retry",
            "parameters": {"delivery_id": "$response.body#/delivery_id"},
        },
    },
}
LINKS[("/relay/{route}", 202)] = LINKS[("/relay/{route}", 200)]
# A target refused the call: the delivery is `rejected` (or `failed`); read it, then replay it.
LINKS[("/relay/{route}", 502)] = {
    name: {**link, "parameters": {"delivery_id": "$response.body#/error/delivery_id"}}
    for name, link in LINKS[("/relay/{route}", 200)].items()
}


def _ref(model: Any, components: dict[str, Any]) -> dict[str, Any]:
    if model == "any" or model == "object":
        return {"type": "object", "additionalProperties": True}
    if isinstance(model, dict):
        return model
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}", mode="serialization")
    for name, definition in schema.pop("$defs", {}).items():
        components[name] = definition
    components[model.__name__] = schema
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _operation_id(method: str, path: str) -> str:
    return f"{method.lower()}_{path.strip('/').replace('/', '_').replace('{', '').replace('}', '')}"


def _operation(method: str, path: str, op: dict[str, Any], components: dict[str, Any]) -> dict[str, Any]:
    error = {"application/json": {"schema": _ref(ErrorBody, components)}}
    operation: dict[str, Any] = {"summary": op["summary"], "operationId": _operation_id(method, path)}
    parameters: list[dict[str, Any]] = [
        {"name": p, "in": "path", "required": True, "schema": PATH_PARAMETERS[p]}
        for p in (part[1:-1] for part in path.split("/") if part.startswith("{"))
    ]
    parameters += [
        {"name": name, "in": "query", "required": False, **spec} for name, spec in op.get("query", {}).items()
    ]
    parameters += op.get("headers", [])
    if "query_object" in op:
        parameters.append(op["query_object"])
    if parameters:
        operation["parameters"] = parameters
    body = op.get("body")
    if isinstance(body, dict) and "content" in body:
        operation["requestBody"] = body
    elif body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _ref(body, components)}},
        }
    responses: dict[str, Any] = {}
    for code, model in op["ok"].items():
        if model == "html":
            responses[str(code)] = {"description": "OK", "content": {"text/html": {"schema": {"type": "string"}}}}
            continue
        responses[str(code)] = {
            "description": "OK" if code == 200 else "Accepted",
            "content": {"application/json": {"schema": _ref(model, components)}},
        }
        links = LINKS.get((path, code))
        if links:
            responses[str(code)]["links"] = links
    for code, text in {**ERRORS, **op.get("errors", {})}.items():
        description, headers = text if isinstance(text, tuple) else (text, None)
        responses[str(code)] = {"description": description, "content": error}
        if headers:
            responses[str(code)]["headers"] = headers
        links = LINKS.get((path, code))
        if links:
            responses[str(code)]["links"] = links
    operation["responses"] = dict(sorted(responses.items()))
    if op.get("security"):
        operation["security"] = op["security"]
    return operation


def document() -> dict[str, Any]:
    components: dict[str, Any] = {}
    paths: dict[str, dict[str, Any]] = {}
    for (method, path), op in sorted(OPERATIONS.items()):
        if "per_provider" in op:
            for provider in op["per_provider"]:
                concrete = path.replace("{provider}", provider)
                variant = {
                    **op,
                    "summary": op["summary"].format(provider=provider.capitalize()),
                    "security": EVENT_AUTH[provider],
                    "body": {
                        "required": True,
                        "content": {"application/json": {"schema": EVENT_BODIES[provider]}},
                    },
                }
                paths.setdefault(concrete, {})[method.lower()] = _operation(method, concrete, variant, components)
            continue
        paths.setdefault(path, {})[method.lower()] = _operation(method, path, op, components)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Martech Bridge",
            "version": "1",
            "description": "Relays Marketo / KARTE webhooks, sends mail through SendGrid, Braze and Infobip, "
            'and ingests their events. Every error is {"error": {"code", "message", ...}}.',
        },
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": dict(sorted(components.items())),
            "securitySchemes": SECURITY_SCHEMES,
        },
    }


def render() -> str:
    return json.dumps(document(), indent=2, ensure_ascii=False, sort_keys=False) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
