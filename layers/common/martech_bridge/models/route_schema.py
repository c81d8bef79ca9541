"""The routes file's pydantic schema: checks the file at `sam build` and `make run`, and gives its JSON Schema.

The functions do not import it: they load the file as plain data with the same rules (models/routes.py,
which holds the field documentation, the shared rules and the patterns). Only the build-time check, devkit and
the tests import pydantic for it. tests/unit/test_route_schema_parity.py holds the two to the same answers."""

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from martech_bridge.models.routes import (
    BASE_URL_PATTERN,
    HEADER_NAME_PATTERN,
    KINTONE_MAX_TEXT_CHARS,
    MAX_SECRET_REF,
    MAX_URL,
    NOTIFY_PATTERN,
    QUERY_PARAM_PATTERN,
    RESPONSE_FIELD_PATTERN,
    ROUTE_NAME_PATTERN,
    SINK_EVENT_PATTERN,
    check_http_url,
    check_mapping,
    check_mapping_headers,
    check_notify,
    check_one_body,
    check_one_fallback,
    check_sink,
    check_unique_sinks,
    check_value_spec,
    compile_path,
)

RouteName = Annotated[str, Field(pattern=ROUTE_NAME_PATTERN)]
HeaderName = Annotated[str, Field(pattern=HEADER_NAME_PATTERN)]
# A reference to a secret (ssm:/name, secretsmanager:name) or, in local mode only, the value itself.
SecretRef = Annotated[str, Field(min_length=1, max_length=MAX_SECRET_REF)]


class _Strict(BaseModel):
    # strict: a number is a JSON number and a flag a JSON boolean, as the published JSON Schema says (no "5"
    # for 5, no true for 1), which is also how the functions' loader (models/routes.py) reads the file.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


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
        check_value_spec(self.path, "const" in self.model_fields_set)
        return self


Value = ValueSpec


# ---------------------------------------------------------------- auth
class SharedSecretAuth(_Strict):
    """A secret the caller sends in a header (Marketo custom header, KARTE Craft headers)."""

    type: Literal["shared_secret"]
    header: HeaderName = "X-Webhook-Token"
    secrets: list[SecretRef] = Field(min_length=1)  # each may hold several, comma-separated (rotation)
    query_param: Annotated[str, Field(pattern=QUERY_PARAM_PATTERN)] | None = None  # opt-in only


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
    base_url: Annotated[str, Field(pattern=BASE_URL_PATTERN)]
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


class HttpTarget(_Strict):
    """Any HTTPS API. The URL's scheme and host are fixed here; payload values only fill path and query
    placeholders, percent-encoded, so a webhook can never steer the call to another host."""

    type: Literal["http"]
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"]
    url: Annotated[str, Field(max_length=MAX_URL)]
    headers: dict[HeaderName, str] = Field(default_factory=dict)
    secret_headers: dict[HeaderName, SecretRef] = Field(default_factory=dict)  # e.g. Authorization
    secret_header_format: dict[HeaderName, str] = Field(default_factory=dict)  # e.g. "Bearer {}"
    body_format: Literal["json", "form"] = "json"
    timeout_seconds: float = Field(default=10, gt=0, le=60)
    idempotent: bool | None = None  # default: GET, PUT and DELETE (RFC 9110 9.2.2); PATCH and POST are not

    @field_validator("url")
    @classmethod
    def _fixed_origin(cls, url: str) -> str:
        return check_http_url(url)


class KarteTarget(_Strict):
    """KARTE's Track API, `POST /v2/track/event/write` with an app token: {keys: {user_id}, event: {...}}."""

    type: Literal["karte"]
    base_url: Annotated[str, Field(pattern=BASE_URL_PATTERN)] = "https://api.karte.io"
    api_token: SecretRef
    user_key: Literal["user_id", "visitor_id"] = "user_id"
    timeout_seconds: float = Field(default=10, gt=0, le=60)


Target = Annotated[KintoneTarget | HttpTarget | KarteTarget, Field(discriminator="type")]


class UpdateKeyMapping(_Strict):
    field: Annotated[str, Field(min_length=1, max_length=128)]
    value: Value


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
            compile_path(path)
        return path

    @field_validator("headers")
    @classmethod
    def _no_framing_headers(cls, headers: dict[str, Any]) -> dict[str, Any]:
        return check_mapping_headers(headers)

    @model_validator(mode="after")
    def _one_body(self) -> "Mapping":
        check_one_body(self)
        return self


class InputSpec(_Strict):
    required: list[Annotated[str, Field(min_length=1)]] = Field(default_factory=list)  # JMESPath paths

    @field_validator("required")
    @classmethod
    def _compiles(cls, paths: list[str]) -> list[str]:
        for path in paths:
            compile_path(path)
        return paths


class ResponseSpec(_Strict):
    """Extra flat fields for the caller (Marketo response mappings read them), JMESPath over
    {"request": <inbound payload>, "result": <target result>, "delivery_id": ...}."""

    fields: dict[Annotated[str, Field(pattern=RESPONSE_FIELD_PATTERN)], str] = Field(default_factory=dict)

    @field_validator("fields")
    @classmethod
    def _compiles(cls, fields: dict[str, str]) -> dict[str, str]:
        for path in fields.values():
            compile_path(path)
        return fields


class IdempotencySpec(_Strict):
    header: HeaderName | None = "Idempotency-Key"
    path: str | None = None  # JMESPath into the payload, used when the header is absent

    @field_validator("path")
    @classmethod
    def _compiles(cls, path: str | None) -> str | None:
        if path is not None:
            compile_path(path)
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
        check_mapping(self.mapping, self.target)
        return self


class SinkFilter(_Strict):
    events: list[Annotated[str, Field(pattern=SINK_EVENT_PATTERN)]] = Field(default_factory=list)  # empty: all
    providers: list[Literal["sendgrid", "braze", "infobip"]] = Field(default_factory=list)  # empty: all


# What feeds a sink: normalised ESP events (the default), mail the bridge sent (`sent_mail`, one payload per
# dispatch with its `recipients` list), or replies received by the inbound mail path (`replies`).
SinkSource = Literal["events", "sent_mail", "replies"]


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
        check_sink(self)
        return self


class ProviderSending(_Strict):
    """How the bridge sends through one provider: its send quota and warnings, and whether it stands in for the
    others (docs/sending.md, "Quotas" and "Failover")."""

    # At most 10^15: the counter's arithmetic must fit a DynamoDB number (38 digits), whose serializer
    # raises on a larger one, and no account sends more.
    daily_limit: int | None = Field(default=None, ge=1, le=10**15)  # recipients a day (UTC days)
    monthly_limit: int | None = Field(default=None, ge=1, le=10**15)  # recipients a calendar month (UTC)
    # Fractions of a limit at which the notification address is warned, once per period each.
    warn_at: list[Annotated[float, Field(gt=0, le=1)]] = Field(default=[0.8, 1.0], max_length=10)
    notify: Annotated[str, Field(pattern=NOTIFY_PATTERN, max_length=320)] | None = None
    on_limit: Literal["refuse", "warn"] = "refuse"  # past a limit: 429 quota_exceeded, or only warned about
    fallback: bool = False  # used for recipients another provider provably never took (refused before accepting)

    @field_validator("notify")
    @classmethod
    def _mailable(cls, notify: str | None) -> str | None:
        check_notify(notify)
        return notify


class SendingConfig(_Strict):
    providers: dict[Literal["sendgrid", "braze", "infobip"], ProviderSending] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_fallback(self) -> "SendingConfig":
        check_one_fallback(self.providers)
        return self


class BridgeConfig(_Strict):
    # Editors find the published JSON Schema through it; the bridge ignores it.
    schema_ref: str | None = Field(default=None, alias="$schema")
    version: Literal[1]
    routes: dict[RouteName, Route] = Field(default_factory=dict)
    sinks: list[Sink] = Field(default_factory=list)
    sending: SendingConfig = Field(default_factory=SendingConfig)

    @field_validator("version", mode="before")
    @classmethod
    def _not_a_flag(cls, version: Any) -> Any:
        # pydantic matches a literal by equality, and true == 1 == 1.0; the loader (msgspec) takes the integer
        # only, as the file's JSON Schema says.
        if isinstance(version, bool | float):
            raise ValueError("Input should be 1")
        return version

    @model_validator(mode="after")
    def _unique_sinks(self) -> "BridgeConfig":
        check_unique_sinks(self.sinks)
        return self
