"""Routes and sinks configuration (config/bridge.json): validated when a function starts and in the tests.

A route names how an inbound webhook is authenticated, which fields it must carry, the target it goes to,
how its fields map onto the target request (JMESPath over the inbound payload, with constants and
defaults), the flat JSON answered to the caller, and how the delivery is attempted."""

import re
from functools import lru_cache
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import jmespath
from jmespath.exceptions import JMESPathError
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

ROUTE_NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
RouteName = Annotated[str, Field(pattern=ROUTE_NAME_PATTERN)]
HeaderName = Annotated[str, Field(pattern=r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,100}$")]
# A reference to a secret (ssm:/name, secretsmanager:name) or, in local mode only, the value itself.
SecretRef = Annotated[str, Field(min_length=1, max_length=2048)]
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MappingFailed(Exception):
    """A JMESPath expression of the routes file failed on this payload (`join()` over a number, ...)."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = path, reason

    def as_error(self) -> Any:
        from martech_bridge.errors import Unprocessable

        return Unprocessable(
            f"The route's mapping {self.path!r} cannot be applied to this payload: {self.reason}",
            code="mapping_error",
            field=self.path,
        )


def search(path: str, data: Any) -> Any:
    """Evaluate a routes-file JMESPath expression; MappingFailed when it fails on this data."""
    try:
        return _compiled(path).search(data)
    except JMESPathError as exc:
        raise MappingFailed(path, str(exc).splitlines()[0][:200]) from None
    except (TypeError, ValueError, RecursionError) as exc:  # jmespath's functions raise some of these raw
        raise MappingFailed(path, f"{type(exc).__name__}") from None


@lru_cache(maxsize=1024)
def _compiled(expression: str) -> Any:
    return _compile(expression)


def _compile(expression: str) -> Any:
    try:
        return jmespath.compile(expression)
    except JMESPathError as exc:
        raise ValueError(f"invalid JMESPath expression {expression!r}: {exc}") from None


class ValueSpec(_Strict):
    """Where a value comes from: a JMESPath `path` over the inbound payload (with a `default` when it finds
    nothing), or a `const`. A bare string in the file is a path."""

    path: str | None = None
    const: Any = None
    default: Any = None

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value: Any) -> Any:
        return {"path": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _path_or_const(self) -> "ValueSpec":
        if (self.path is None) == ("const" not in self.model_fields_set):
            raise ValueError("give either a JMESPath `path` (a string) or a `const`")
        if self.path is not None:
            _compile(self.path)
        return self

    def evaluate(self, payload: Any) -> Any:
        if self.path is None:
            return self.const
        found = search(self.path, payload)
        return self.default if found is None else found


Value = ValueSpec


# ---------------------------------------------------------------- auth
class SharedSecretAuth(_Strict):
    """A secret the caller sends in a header (Marketo custom header, KARTE Craft headers)."""

    type: Literal["shared_secret"]
    header: HeaderName = "X-Webhook-Token"
    secrets: list[SecretRef] = Field(min_length=1)  # each may hold several, comma-separated (rotation)
    query_param: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")] | None = None  # opt-in only


class KarteHmacAuth(_Strict):
    """KARTE Hook v2: HMAC-SHA256 of "{timestamp}:{raw body}" with the app's client secret."""

    type: Literal["karte_hmac"]
    secrets: list[SecretRef] = Field(min_length=1)
    max_skew_seconds: int = Field(default=300, ge=10, le=3600)


class HmacAuth(_Strict):
    """Generic HMAC-SHA256 of the raw body (optionally "{timestamp}.{body}"), hex or base64."""

    type: Literal["hmac_sha256"]
    header: HeaderName = "X-Signature"
    prefix: str = Field(default="", max_length=32)  # e.g. "sha256="
    secrets: list[SecretRef] = Field(min_length=1)
    timestamp_header: HeaderName | None = None
    max_skew_seconds: int = Field(default=300, ge=10, le=3600)


class NoAuth(_Strict):
    """No authentication at all: only for routes behind something else that authenticates."""

    type: Literal["none"]


Auth = Annotated[SharedSecretAuth | KarteHmacAuth | HmacAuth | NoAuth, Field(discriminator="type")]


# ---------------------------------------------------------------- targets
class KintoneTarget(_Strict):
    type: Literal["kintone"]
    # https://example.cybozu.com (a path prefix is allowed, for a proxy in front of kintone)
    base_url: Annotated[str, Field(pattern=r"^https?://[^/?#\s]+(/[^?#\s]*)?$")]
    app: int = Field(ge=1)
    guest_space: int | None = Field(default=None, ge=1)
    operation: Literal["update", "upsert", "add"] = "update"
    api_tokens: list[SecretRef] = Field(min_length=1, max_length=9)
    basic_auth: SecretRef | None = None  # "user:password", for domains behind IP restriction + Basic auth
    daily_request_budget: int = Field(default=10_000, ge=1)  # Standard course; Wide course is 100,000
    budget_warn_ratio: float = Field(default=0.8, gt=0, le=1)
    timeout_seconds: float = Field(default=10, gt=0, le=60)

    @field_validator("base_url")
    @classmethod
    def _no_trailing_slash(cls, url: str) -> str:
        return url.rstrip("/")

    @property
    def host(self) -> str:
        return urlsplit(self.base_url).netloc


class HttpTarget(_Strict):
    """Any HTTPS API. The URL's scheme and host are fixed here; payload values only fill path and query
    placeholders, percent-encoded, so a webhook can never steer the call to another host."""

    type: Literal["http"]
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"]
    url: Annotated[str, Field(max_length=2048)]
    headers: dict[HeaderName, str] = Field(default_factory=dict)
    secret_headers: dict[HeaderName, SecretRef] = Field(default_factory=dict)  # e.g. Authorization
    secret_header_format: dict[HeaderName, str] = Field(default_factory=dict)  # e.g. "Bearer {}"
    body_format: Literal["json", "form"] = "json"
    timeout_seconds: float = Field(default=10, gt=0, le=60)
    idempotent: bool | None = None  # default: GET, PUT and DELETE (RFC 9110 9.2.2); PATCH and POST are not

    @field_validator("url")
    @classmethod
    def _fixed_origin(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("url must be an absolute http(s) URL")
        if "{" in f"{parts.scheme}://{parts.netloc}":
            raise ValueError("placeholders are allowed in the path and query only, never in the scheme or host")
        return url

    @property
    def host(self) -> str:
        return urlsplit(self.url).netloc

    @property
    def placeholders(self) -> set[str]:
        return set(_PLACEHOLDER.findall(self.url))

    @property
    def is_idempotent(self) -> bool:
        return self.idempotent if self.idempotent is not None else self.method in ("GET", "PUT", "DELETE")


class KarteTarget(_Strict):
    """KARTE's Track API, `POST /v2/track/event/write` with an app token: {keys: {user_id}, event: {...}}."""

    type: Literal["karte"]
    base_url: Annotated[str, Field(pattern=r"^https?://[^/?#\s]+(/[^?#\s]*)?$")] = "https://api.karte.io"
    api_token: SecretRef
    user_key: Literal["user_id", "visitor_id"] = "user_id"
    timeout_seconds: float = Field(default=10, gt=0, le=60)

    @property
    def host(self) -> str:
        return urlsplit(self.base_url).netloc


Target = Annotated[KintoneTarget | HttpTarget | KarteTarget, Field(discriminator="type")]


class UpdateKeyMapping(_Strict):
    field: Annotated[str, Field(min_length=1, max_length=128)]
    value: Value


_FRAMING_HEADERS = frozenset(
    {"host", "content-length", "transfer-encoding", "connection", "te", "upgrade", "trailer", "keep-alive", "expect"}
)


class Mapping(_Strict):
    """How inbound fields become the target request.

    kintone: `record` (field code -> value, shaped into {"code": {"value": ...}}), and `id` or `update_key`.
    http: `url_params` (fill {placeholders}), `query`, `headers`, and either `body` (a map of fields) or
    `body_value` (the whole body from one value: {"path": "@"} forwards the payload as it came)."""

    record: dict[Annotated[str, Field(min_length=1, max_length=128)], Value] = Field(default_factory=dict)
    id: Value | None = None
    update_key: UpdateKeyMapping | None = None
    revision: Value | None = None
    url_params: dict[str, Value] = Field(default_factory=dict)
    query: dict[str, Value] = Field(default_factory=dict)
    headers: dict[HeaderName, Value] = Field(default_factory=dict)
    body: dict[str, Value] | None = None
    body_value: Value | None = None
    # kintone only: one record per element of this list (JMESPath), each mapped over the payload merged with
    # the element, in one call to the bulk endpoint (records.json, at most 100 records, all or nothing).
    each: str | None = None

    @field_validator("each")
    @classmethod
    def _each_compiles(cls, path: str | None) -> str | None:
        if path is not None:
            _compile(path)
        return path

    @field_validator("headers")
    @classmethod
    def _no_framing_headers(cls, headers: dict[str, Any]) -> dict[str, Any]:
        # A payload value must never decide how the request is framed or where it goes.
        taken = sorted(h for h in headers if h.lower() in _FRAMING_HEADERS)
        if taken:
            raise ValueError(f"headers {taken} are set by the bridge and cannot be mapped")
        return headers

    @model_validator(mode="after")
    def _one_body(self) -> "Mapping":
        if self.body is not None and self.body_value is not None:
            raise ValueError("map either `body` (fields) or `body_value` (one value), not both")
        return self


class InputSpec(_Strict):
    required: list[Annotated[str, Field(min_length=1)]] = Field(default_factory=list)  # JMESPath paths

    @field_validator("required")
    @classmethod
    def _compiles(cls, paths: list[str]) -> list[str]:
        for path in paths:
            _compile(path)
        return paths


class ResponseSpec(_Strict):
    """Extra flat fields for the caller (Marketo response mappings read them), JMESPath over
    {"request": <inbound payload>, "result": <target result>, "delivery_id": ...}."""

    fields: dict[Annotated[str, Field(pattern=r"^[A-Za-z0-9_:-][A-Za-z0-9_: -]{0,63}$")], str] = Field(
        default_factory=dict
    )

    @field_validator("fields")
    @classmethod
    def _compiles(cls, fields: dict[str, str]) -> dict[str, str]:
        for path in fields.values():
            _compile(path)
        return fields


class IdempotencySpec(_Strict):
    header: HeaderName | None = "Idempotency-Key"
    path: str | None = None  # JMESPath into the payload, used when the header is absent

    @field_validator("path")
    @classmethod
    def _compiles(cls, path: str | None) -> str | None:
        if path is not None:
            _compile(path)
        return path


class DeliverySpec(_Strict):
    mode: Literal["sync", "async"] = "sync"
    deadline_seconds: float = Field(default=8, gt=0, le=20)  # well inside Marketo's 30 s
    max_attempts: int = Field(default=8, ge=1, le=50)
    max_age_seconds: int = Field(default=86_400, ge=60, le=14 * 86_400)
    backoff_base_seconds: float = Field(default=2, gt=0, le=300)
    backoff_max_seconds: float = Field(default=900, ge=1, le=43_200)
    idempotency: IdempotencySpec = Field(default_factory=IdempotencySpec)


class Route(_Strict):
    description: str = ""
    # KARTE Craft's webhook action and Marketo webhooks may send any of these (WIRE-FORMATS 0.6).
    methods: list[Literal["GET", "POST", "PUT", "PATCH", "DELETE"]] = Field(default=["POST"], min_length=1)
    auth: Auth
    input: InputSpec = Field(default_factory=InputSpec)
    target: Target
    mapping: Mapping = Field(default_factory=Mapping)
    response: ResponseSpec = Field(default_factory=ResponseSpec)
    delivery: DeliverySpec = Field(default_factory=DeliverySpec)
    max_body_bytes: int = Field(default=262_144, ge=1, le=262_144)  # a delivery record holds the payload

    @model_validator(mode="after")
    def _mapping_fits_target(self) -> "Route":
        _check_mapping(self.mapping, self.target)
        return self


def _check_mapping(m: "Mapping", t: Any) -> None:
    if m.each is not None and not isinstance(t, KintoneTarget):
        raise ValueError("`each` (one record per list element) is for kintone targets only")
    if isinstance(t, KarteTarget):
        if m.record or m.update_key is not None or m.url_params or m.query or m.headers or m.body_value is not None:
            raise ValueError("a karte target takes `id` (the user key's value) and `body` (event values) only")
        return
    if isinstance(t, KintoneTarget):
        if m.url_params or m.query or m.headers or m.body is not None or m.body_value is not None:
            raise ValueError("a kintone target takes `record`, `id`/`update_key` and `revision` mappings only")
        if m.id is not None and m.update_key is not None:
            raise ValueError("map either `id` or `update_key`, not both (kintone refuses both)")
        if t.operation in ("update", "upsert") and m.id is None and m.update_key is None:
            raise ValueError(f"kintone {t.operation} needs an `id` or `update_key` mapping")
        if t.operation == "add" and (m.id is not None or m.update_key is not None):
            raise ValueError("kintone add takes no `id` or `update_key`")
    else:
        if m.record or m.id is not None or m.update_key is not None or m.revision is not None:
            raise ValueError("an http target takes `url_params`, `query`, `headers` and `body` mappings only")
        missing = t.placeholders - set(m.url_params)
        if missing:
            raise ValueError(f"url placeholders without a url_params mapping: {sorted(missing)}")
        if t.method == "GET" and (m.body is not None or m.body_value is not None):
            raise ValueError("a GET target has no body")


# KARTE's names for the SendGrid plug-in's events (WIRE-FORMATS 7.2), the default for a karte sink;
# other types become "_<provider>_<type>".
KARTE_EVENT_NAMES = {
    "delivered": "_{provider}_delivered",
    "bounced": "_{provider}_bounce",
    "rejected": "_{provider}_dropped",
    "complained": "_{provider}_spamreport",
    "opened": "talk_message_open",
    "clicked": "message_click",
}
SINK_PREFIX = "sink:"


class SinkFilter(_Strict):
    events: list[Annotated[str, Field(pattern=r"^[a-z]+$")]] = Field(default_factory=list)  # empty: all
    providers: list[Literal["sendgrid", "braze", "infobip"]] = Field(default_factory=list)  # empty: all

    def accepts(self, provider: str, event_type: str) -> bool:
        return (not self.events or event_type in self.events) and (not self.providers or provider in self.providers)


# What feeds a sink: normalised ESP events (the default), mail the bridge sent (`sent_mail`, one payload per
# dispatch with its `recipients` list), or replies received by the inbound mail path (`replies`).
SinkSource = Literal["events", "sent_mail", "replies"]
# kintone refuses a text value longer than this (pessimistic reading: docs/kintone.md).
KINTONE_MAX_TEXT_CHARS = 65_535


class Sink(_Strict):
    """Where normalised events go: KARTE's event API, a kintone record, or any HTTP endpoint - delivered
    like relay calls (records, retries, DLQ, replay). The mapping reads the normalised event (with
    `event_name` and `app_name` added, and the provider's `raw` event); a `sent_mail` or `replies` sink reads
    the sent message or the reply (docs/replies.md)."""

    name: RouteName
    description: str = ""
    source: SinkSource = "events"
    # sent_mail and replies: keep the HTML body as well as the text (off: kintone apps often hold text only).
    include_html: bool = False
    # sent_mail and replies: a body is cut to this many characters (kintone's text limit at most).
    max_body_chars: int = Field(default=KINTONE_MAX_TEXT_CHARS, ge=1, le=KINTONE_MAX_TEXT_CHARS)
    filter: SinkFilter = Field(default_factory=SinkFilter)
    target: Target
    mapping: Mapping = Field(default_factory=Mapping)
    event_names: dict[str, str] = Field(default_factory=dict)  # per event type, over KARTE_EVENT_NAMES
    response: ResponseSpec = Field(default_factory=ResponseSpec)
    delivery: DeliverySpec = Field(default_factory=lambda: DeliverySpec(mode="async"))

    @model_validator(mode="after")
    def _mapping_fits_target(self) -> "Sink":
        _check_mapping(self.mapping, self.target)
        if self.source != "events" and (self.filter.events or self.filter.providers or self.event_names):
            raise ValueError(f"`filter` and `event_names` apply to event sinks only, not to a {self.source} sink")
        return self

    def event_name(self, provider: str, event_type: str) -> str:
        template = (
            self.event_names.get(event_type) or KARTE_EVENT_NAMES.get(event_type) or f"_{{provider}}_{event_type}"
        )
        return template.format(provider=provider)


class ProviderSending(_Strict):
    """How the bridge sends through one provider: its send quota and warnings, and whether it stands in for the
    others (docs/sending.md, "Quotas" and "Failover")."""

    # At most 10^15: the counter's arithmetic must fit a DynamoDB number (38 digits), whose serializer
    # raises on a larger one, and no account sends more.
    daily_limit: int | None = Field(default=None, ge=1, le=10**15)  # recipients a day (UTC days)
    monthly_limit: int | None = Field(default=None, ge=1, le=10**15)  # recipients a calendar month (UTC)
    # Fractions of a limit at which the notification address is warned, once per period each.
    warn_at: list[Annotated[float, Field(gt=0, le=1)]] = Field(default=[0.8, 1.0], max_length=10)
    notify: Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+$", max_length=320)] | None = None
    on_limit: Literal["refuse", "warn"] = "refuse"  # past a limit: 429 quota_exceeded, or only warned about
    fallback: bool = False  # used for recipients another provider provably never took (refused before accepting)


class SendingConfig(_Strict):
    providers: dict[Literal["sendgrid", "braze", "infobip"], ProviderSending] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_fallback(self) -> "SendingConfig":
        if sum(1 for p in self.providers.values() if p.fallback) > 1:
            raise ValueError("at most one provider can be the fallback")
        return self

    def fallback(self) -> str | None:
        return next((name for name, p in self.providers.items() if p.fallback), None)


class BridgeConfig(_Strict):
    # Editors find the published JSON Schema through it; the bridge ignores it.
    schema_ref: str | None = Field(default=None, alias="$schema")
    version: Literal[1]
    routes: dict[RouteName, Route] = Field(default_factory=dict)
    sinks: list[Sink] = Field(default_factory=list)
    sending: SendingConfig = Field(default_factory=SendingConfig)

    @model_validator(mode="after")
    def _unique_sinks(self) -> "BridgeConfig":
        names = [s.name for s in self.sinks]
        if len(set(names)) != len(names):
            raise ValueError("sink names must be unique")
        return self

    def sinks_for(self, source: str) -> "list[Sink]":
        return [s for s in self.sinks if s.source == source]

    def spec(self, name: str) -> "Route | Sink | None":
        """What a delivery was made for: a route by name, or a sink as "sink:<name>"."""
        if name.startswith(SINK_PREFIX):
            return next((s for s in self.sinks if s.name == name[len(SINK_PREFIX) :]), None)
        return self.routes.get(name)


# What the delivery machinery delivers for: a relay route or an event sink (both carry target, mapping,
# response and delivery).
Deliverable = Route | Sink
