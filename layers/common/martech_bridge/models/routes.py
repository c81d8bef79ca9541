"""Routes and sinks configuration (config/bridge.json) as the functions read it: plain, typed, frozen data.

A route names how an inbound webhook is authenticated, which fields it must carry, the target it goes to,
how its fields map onto the target request (JMESPath over the inbound payload, with constants and
defaults), the flat JSON answered to the caller, and how the delivery is attempted.

These are msgspec Structs, not pydantic models: the relay and the delivery functions read the file at INIT,
and pydantic with these model classes costs each cold start ~100 ms (issue 13). The file is checked with the
pydantic schema (models/route_schema.py: the JSON Schema editors use, its messages) where that cost is paid
once - `sam build` and `make run` - and loaded here with the same rules, so a file that somehow skipped that
check still stops the function at INIT, naming the route and the field. tests/unit/test_route_schema_parity.py
holds the two to the same answers and the same values."""

import re
from functools import lru_cache
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import jmespath
import msgspec
from jmespath.exceptions import JMESPathError
from msgspec import UNSET, Meta, Struct, UnsetType, field
from msgspec.structs import force_setattr

# The patterns are written as the JSON Schema and pydantic (Rust regex) read them, where `$` is the end of the
# text; Python's `$` also matches before a final newline, so the run-time checks end them with `\Z` instead.
ROUTE_NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
HEADER_NAME_PATTERN = r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,100}$"
QUERY_PARAM_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"
# \x00-\x1f beside \s: Python's \s (the loader's) takes \x1c-\x1f, Rust's (the schema's) does not.
BASE_URL_PATTERN = r"^https?://[^/?#\s\x00-\x1f\x7f]+(/[^?#\s\x00-\x1f\x7f]*)?$"
RESPONSE_FIELD_PATTERN = r"^[A-Za-z0-9_:-][A-Za-z0-9_: -]{0,63}$"
SINK_EVENT_PATTERN = r"^[a-z]+$"
NOTIFY_PATTERN = r"^[^@\s]+@[^@\s]+$"
MAX_SECRET_REF = 2048
MAX_URL = 2048


def _text(pattern: str) -> str:
    return pattern[:-1] + r"\Z" if pattern.endswith("$") else pattern


RouteName = Annotated[str, Meta(pattern=_text(ROUTE_NAME_PATTERN))]
HeaderName = Annotated[str, Meta(pattern=_text(HEADER_NAME_PATTERN))]
# A reference to a secret (ssm:/name, secretsmanager:name) or, in local mode only, the value itself.
SecretRef = Annotated[str, Meta(min_length=1, max_length=MAX_SECRET_REF)]
BaseUrl = Annotated[str, Meta(pattern=_text(BASE_URL_PATTERN))]
Timeout = Annotated[float, Meta(gt=0, le=60)]
Secrets = Annotated[list[SecretRef], Meta(min_length=1)]
Method = Literal["GET", "POST", "PUT", "PATCH", "DELETE"]
Provider = Literal["sendgrid", "braze", "infobip"]
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


class _Strict(Struct, frozen=True, forbid_unknown_fields=True):
    pass


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
    return compile_path(expression)


def compile_path(expression: str) -> Any:
    try:
        return jmespath.compile(expression)
    except JMESPathError as exc:
        raise ValueError(f"invalid JMESPath expression {expression!r}: {exc}") from None


# ---------------------------------------------------------------- rules both readings of the file share
# Each takes the pydantic model or the Struct alike (same field names) and raises ValueError with the message
# the user reads; models/route_schema.py calls them from its validators, the Structs from __post_init__.
def check_value_spec(path: str | None, has_const: bool) -> None:
    if (path is None) == (not has_const):
        raise ValueError("give either a JMESPath `path` (a string) or a `const`")
    if path is not None:
        compile_path(path)


def check_http_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("url must be an absolute http(s) URL")
    if "{" in f"{parts.scheme}://{parts.netloc}":
        raise ValueError("placeholders are allowed in the path and query only, never in the scheme or host")
    return url


_FRAMING_HEADERS = frozenset(
    {"host", "content-length", "transfer-encoding", "connection", "te", "upgrade", "trailer", "keep-alive", "expect"}
)


def check_mapping_headers(headers: dict[str, Any]) -> dict[str, Any]:
    # A payload value must never decide how the request is framed or where it goes.
    taken = sorted(h for h in headers if h.lower() in _FRAMING_HEADERS)
    if taken:
        raise ValueError(f"headers {taken} are set by the bridge and cannot be mapped")
    return headers


def check_one_body(m: Any) -> None:
    if m.body is not None and m.body_value is not None:
        raise ValueError("map either `body` (fields) or `body_value` (one value), not both")


def check_mapping(m: Any, t: Any) -> None:
    """The mapping fits its target (routes and sinks)."""
    if m.each is not None and t.type != "kintone":
        raise ValueError("`each` (one record per list element) is for kintone targets only")
    if t.type == "karte":
        if m.record or m.update_key is not None or m.url_params or m.query or m.headers or m.body_value is not None:
            raise ValueError("a karte target takes `id` (the user key's value) and `body` (event values) only")
        return
    if t.type == "kintone":
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
        missing = http_placeholders(t.url) - set(m.url_params)
        if missing:
            raise ValueError(f"url placeholders without a url_params mapping: {sorted(missing)}")
        if t.method == "GET" and (m.body is not None or m.body_value is not None):
            raise ValueError("a GET target has no body")


def check_sink(s: Any) -> None:
    check_mapping(s.mapping, s.target)
    if s.source != "events" and (s.filter.events or s.filter.providers or s.event_names):
        raise ValueError(f"`filter` and `event_names` apply to event sinks only, not to a {s.source} sink")


def check_one_fallback(providers: dict[Any, Any]) -> None:
    if sum(1 for p in providers.values() if p.fallback) > 1:
        raise ValueError("at most one provider can be the fallback")


def check_notify(address: str | None) -> None:
    # The quota warning is mailed with the send request's address checks: an address they refuse would fail
    # the warning after the send it warns about was made and answered.
    if address is not None:
        # Only for a file that names one (read at INIT): the relay and delivery functions need no address checks.
        from martech_bridge.models.email import InvalidEmail, normalize_email

        try:
            normalize_email(address)
        except InvalidEmail as exc:
            raise ValueError(f"the notification address {exc}") from None


def check_unique_sinks(sinks: list[Any]) -> None:
    names = [s.name for s in sinks]
    if len(set(names)) != len(names):
        raise ValueError("sink names must be unique")


def http_placeholders(url: str) -> set[str]:
    return set(_PLACEHOLDER.findall(url))


# ---------------------------------------------------------------- values
class ValueSpec(_Strict, frozen=True, kw_only=True):
    """Where a value comes from: a JMESPath `path` over the inbound payload (with a `default` when it finds
    nothing), or a `const`. A bare string in the file is a path (`load` turns it into {"path": ...})."""

    path: str | None = None
    const: Any | UnsetType = UNSET  # UNSET: not given (a `const` of null is a value)
    default: Any = None

    def __post_init__(self) -> None:
        check_value_spec(self.path, self.const is not UNSET)

    def evaluate(self, payload: Any) -> Any:
        if self.path is None:
            return self.const
        found = search(self.path, payload)
        return self.default if found is None else found


Value = ValueSpec


# ---------------------------------------------------------------- auth
class SharedSecretAuth(_Strict, frozen=True, kw_only=True, tag_field="type", tag="shared_secret"):
    """A secret the caller sends in a header (Marketo custom header, KARTE Craft headers)."""

    header: HeaderName = "X-Webhook-Token"
    secrets: Secrets  # each may hold several, comma-separated (rotation)
    query_param: Annotated[str, Meta(pattern=_text(QUERY_PARAM_PATTERN))] | None = None  # opt-in only

    @property
    def type(self) -> Literal["shared_secret"]:
        return "shared_secret"


class KarteHmacAuth(_Strict, frozen=True, kw_only=True, tag_field="type", tag="karte_hmac"):
    """KARTE Hook v2: HMAC-SHA256 of "{timestamp}:{raw body}" with the app's client secret."""

    secrets: Secrets
    max_skew_seconds: Annotated[int, Meta(ge=10, le=3600)] = 300

    @property
    def type(self) -> Literal["karte_hmac"]:
        return "karte_hmac"


class HmacAuth(_Strict, frozen=True, kw_only=True, tag_field="type", tag="hmac_sha256"):
    """Generic HMAC-SHA256 of the raw body (optionally "{timestamp}.{body}"), hex or base64."""

    header: HeaderName = "X-Signature"
    prefix: Annotated[str, Meta(max_length=32)] = ""  # e.g. "sha256="
    secrets: Secrets
    timestamp_header: HeaderName | None = None
    max_skew_seconds: Annotated[int, Meta(ge=10, le=3600)] = 300

    @property
    def type(self) -> Literal["hmac_sha256"]:
        return "hmac_sha256"


class NoAuth(_Strict, frozen=True, kw_only=True, tag_field="type", tag="none"):
    """No authentication at all: only for routes behind something else that authenticates."""

    @property
    def type(self) -> Literal["none"]:
        return "none"


Auth = SharedSecretAuth | KarteHmacAuth | HmacAuth | NoAuth


# ---------------------------------------------------------------- targets
class KintoneTarget(_Strict, frozen=True, kw_only=True, tag_field="type", tag="kintone"):
    # https://example.cybozu.com (a path prefix is allowed, for a proxy in front of kintone)
    base_url: BaseUrl
    app: Annotated[int, Meta(ge=1)]
    guest_space: Annotated[int, Meta(ge=1)] | None = None
    operation: Literal["update", "upsert", "add"] = "update"
    api_tokens: Annotated[list[SecretRef], Meta(min_length=1, max_length=9)]
    basic_auth: SecretRef | None = None  # "user:password", for domains behind IP restriction + Basic auth
    daily_request_budget: Annotated[int, Meta(ge=1)] = 10_000  # Standard course; Wide course is 100,000
    budget_warn_ratio: Annotated[float, Meta(gt=0, le=1)] = 0.8
    timeout_seconds: Timeout = 10.0

    @property
    def type(self) -> Literal["kintone"]:
        return "kintone"

    def __post_init__(self) -> None:
        force_setattr(self, "base_url", self.base_url.rstrip("/"))

    @property
    def host(self) -> str:
        return urlsplit(self.base_url).netloc


class HttpTarget(_Strict, frozen=True, kw_only=True, tag_field="type", tag="http"):
    """Any HTTPS API. The URL's scheme and host are fixed here; payload values only fill path and query
    placeholders, percent-encoded, so a webhook can never steer the call to another host."""

    method: Method
    url: Annotated[str, Meta(max_length=MAX_URL)]
    headers: dict[HeaderName, str] = field(default_factory=dict)
    secret_headers: dict[HeaderName, SecretRef] = field(default_factory=dict)  # e.g. Authorization
    secret_header_format: dict[HeaderName, str] = field(default_factory=dict)  # e.g. "Bearer {}"
    body_format: Literal["json", "form"] = "json"
    timeout_seconds: Timeout = 10.0
    idempotent: bool | None = None  # default: GET, PUT and DELETE (RFC 9110 9.2.2); PATCH and POST are not

    @property
    def type(self) -> Literal["http"]:
        return "http"

    def __post_init__(self) -> None:
        check_http_url(self.url)

    @property
    def host(self) -> str:
        return urlsplit(self.url).netloc

    @property
    def placeholders(self) -> set[str]:
        return http_placeholders(self.url)

    @property
    def is_idempotent(self) -> bool:
        return self.idempotent if self.idempotent is not None else self.method in ("GET", "PUT", "DELETE")


class KarteTarget(_Strict, frozen=True, kw_only=True, tag_field="type", tag="karte"):
    """KARTE's Track API, `POST /v2/track/event/write` with an app token: {keys: {user_id}, event: {...}}."""

    base_url: BaseUrl = "https://api.karte.io"
    api_token: SecretRef
    user_key: Literal["user_id", "visitor_id"] = "user_id"
    timeout_seconds: Timeout = 10.0

    @property
    def type(self) -> Literal["karte"]:
        return "karte"

    @property
    def host(self) -> str:
        return urlsplit(self.base_url).netloc


Target = KintoneTarget | HttpTarget | KarteTarget


class UpdateKeyMapping(_Strict, frozen=True, kw_only=True):
    field: Annotated[str, Meta(min_length=1, max_length=128)]
    value: Value


class Mapping(_Strict, frozen=True, kw_only=True):
    """How inbound fields become the target request.

    kintone: `record` (field code -> value, shaped into {"code": {"value": ...}}), and `id` or `update_key`.
    http: `url_params` (fill {placeholders}), `query`, `headers`, and either `body` (a map of fields) or
    `body_value` (the whole body from one value: {"path": "@"} forwards the payload as it came)."""

    record: dict[Annotated[str, Meta(min_length=1, max_length=128)], Value] = field(default_factory=dict)
    id: Value | None = None
    update_key: UpdateKeyMapping | None = None
    revision: Value | None = None
    url_params: dict[str, Value] = field(default_factory=dict)
    query: dict[str, Value] = field(default_factory=dict)
    headers: dict[HeaderName, Value] = field(default_factory=dict)
    body: dict[str, Value] | None = None
    body_value: Value | None = None
    # kintone only: one record per element of this list (JMESPath), each mapped over the payload merged with
    # the element, in one call to the bulk endpoint (records.json, at most 100 records, all or nothing).
    each: str | None = None

    def __post_init__(self) -> None:
        if self.each is not None:
            compile_path(self.each)
        check_mapping_headers(self.headers)
        check_one_body(self)


class InputSpec(_Strict, frozen=True, kw_only=True):
    required: list[Annotated[str, Meta(min_length=1)]] = field(default_factory=list)  # JMESPath paths

    def __post_init__(self) -> None:
        for path in self.required:
            compile_path(path)


class ResponseSpec(_Strict, frozen=True, kw_only=True):
    """Extra flat fields for the caller (Marketo response mappings read them), JMESPath over
    {"request": <inbound payload>, "result": <target result>, "delivery_id": ...}."""

    fields: dict[Annotated[str, Meta(pattern=_text(RESPONSE_FIELD_PATTERN))], str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for path in self.fields.values():
            compile_path(path)


class IdempotencySpec(_Strict, frozen=True, kw_only=True):
    header: HeaderName | None = "Idempotency-Key"
    path: str | None = None  # JMESPath into the payload, used when the header is absent

    def __post_init__(self) -> None:
        if self.path is not None:
            compile_path(self.path)


class DeliverySpec(_Strict, frozen=True, kw_only=True):
    mode: Literal["sync", "async"] = "sync"
    deadline_seconds: Annotated[float, Meta(gt=0, le=20)] = 8.0  # well inside Marketo's 30 s
    max_attempts: Annotated[int, Meta(ge=1, le=50)] = 8
    max_age_seconds: Annotated[int, Meta(ge=60, le=14 * 86_400)] = 86_400
    backoff_base_seconds: Annotated[float, Meta(gt=0, le=300)] = 2.0
    backoff_max_seconds: Annotated[float, Meta(ge=1, le=43_200)] = 900.0
    idempotency: IdempotencySpec = field(default_factory=IdempotencySpec)


class Route(_Strict, frozen=True, kw_only=True):
    description: str = ""
    # KARTE Craft's webhook action and Marketo webhooks may send any of these (WIRE-FORMATS 0.6).
    methods: Annotated[list[Method], Meta(min_length=1)] = field(default_factory=lambda: ["POST"])
    auth: Auth
    input: InputSpec = field(default_factory=InputSpec)
    target: Target
    mapping: Mapping = field(default_factory=Mapping)
    response: ResponseSpec = field(default_factory=ResponseSpec)
    delivery: DeliverySpec = field(default_factory=DeliverySpec)
    max_body_bytes: Annotated[int, Meta(ge=1, le=262_144)] = 262_144  # a delivery record holds the payload

    def __post_init__(self) -> None:
        check_mapping(self.mapping, self.target)


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


class SinkFilter(_Strict, frozen=True, kw_only=True):
    events: list[Annotated[str, Meta(pattern=_text(SINK_EVENT_PATTERN))]] = field(default_factory=list)  # empty: all
    providers: list[Provider] = field(default_factory=list)  # empty: all

    def accepts(self, provider: str, event_type: str) -> bool:
        return (not self.events or event_type in self.events) and (not self.providers or provider in self.providers)


# What feeds a sink: normalised ESP events (the default), mail the bridge sent (`sent_mail`, one payload per
# dispatch with its `recipients` list), or replies received by the inbound mail path (`replies`).
SinkSource = Literal["events", "sent_mail", "replies"]
# kintone refuses a text value longer than this (pessimistic reading: docs/kintone.md).
KINTONE_MAX_TEXT_CHARS = 65_535


class Sink(_Strict, frozen=True, kw_only=True):
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
    max_body_chars: Annotated[int, Meta(ge=1, le=KINTONE_MAX_TEXT_CHARS)] = KINTONE_MAX_TEXT_CHARS
    filter: SinkFilter = field(default_factory=SinkFilter)
    target: Target
    mapping: Mapping = field(default_factory=Mapping)
    event_names: dict[str, str] = field(default_factory=dict)  # per event type, over KARTE_EVENT_NAMES
    response: ResponseSpec = field(default_factory=ResponseSpec)
    delivery: DeliverySpec = field(default_factory=lambda: DeliverySpec(mode="async"))

    def __post_init__(self) -> None:
        check_sink(self)

    def event_name(self, provider: str, event_type: str) -> str:
        template = (
            self.event_names.get(event_type) or KARTE_EVENT_NAMES.get(event_type) or f"_{{provider}}_{event_type}"
        )
        return template.format(provider=provider)


class ProviderSending(_Strict, frozen=True, kw_only=True):
    """How the bridge sends through one provider: its send quota and warnings, and whether it stands in for the
    others (docs/sending.md, "Quotas" and "Failover")."""

    # At most 10^15: the counter's arithmetic must fit a DynamoDB number (38 digits), whose serializer
    # raises on a larger one, and no account sends more.
    daily_limit: Annotated[int, Meta(ge=1, le=10**15)] | None = None  # recipients a day (UTC days)
    monthly_limit: Annotated[int, Meta(ge=1, le=10**15)] | None = None  # recipients a calendar month (UTC)
    # Fractions of a limit at which the notification address is warned, once per period each.
    warn_at: Annotated[list[Annotated[float, Meta(gt=0, le=1)]], Meta(max_length=10)] = field(
        default_factory=lambda: [0.8, 1.0]
    )
    notify: Annotated[str, Meta(pattern=_text(NOTIFY_PATTERN), max_length=320)] | None = None
    on_limit: Literal["refuse", "warn"] = "refuse"  # past a limit: 429 quota_exceeded, or only warned about
    fallback: bool = False  # used for recipients another provider provably never took (refused before accepting)

    def __post_init__(self) -> None:
        check_notify(self.notify)


class SendingConfig(_Strict, frozen=True, kw_only=True):
    providers: dict[Provider, ProviderSending] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_one_fallback(self.providers)

    def fallback(self) -> str | None:
        return next((name for name, p in self.providers.items() if p.fallback), None)


class BridgeConfig(_Strict, frozen=True, kw_only=True):
    # Editors find the published JSON Schema through it; the bridge ignores it.
    schema_ref: str | None = field(default=None, name="$schema")
    version: Literal[1]
    routes: dict[RouteName, Route] = field(default_factory=dict)
    sinks: list[Sink] = field(default_factory=list)
    sending: SendingConfig = field(default_factory=SendingConfig)

    def __post_init__(self) -> None:
        check_unique_sinks(self.sinks)

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

_VALUE_MAPS = ("record", "url_params", "query", "headers", "body")
_VALUES = ("id", "revision", "body_value")


class RoutesFileError(ValueError):
    """The routes file breaks a rule; the message names the route (or sink) and the field."""


def load(data: Any) -> BridgeConfig:
    """The routes file's JSON as a BridgeConfig, every rule checked; RoutesFileError for the first problem,
    as "route <name>, field <dotted.path>: <what is wrong>" (the pydantic check's wording of places)."""
    data = _with_value_specs(data)
    if not isinstance(data, dict):
        return _convert(data, BridgeConfig, "")
    whole = dict(data)
    if isinstance(data.get("routes"), dict):
        whole["routes"] = {}
        for name, route in data["routes"].items():
            if not isinstance(name, str) or not _ROUTE_NAME.search(name):
                raise RoutesFileError(f"route name {name!r}: String should match pattern '{ROUTE_NAME_PATTERN}'")
            whole["routes"][name] = _convert(route, Route, f"route {name}")
    if isinstance(data.get("sinks"), list):
        whole["sinks"] = [_convert(sink, Sink, f"sink #{n}") for n, sink in enumerate(data["sinks"])]
    return _convert(whole, BridgeConfig, "")


_ROUTE_NAME = re.compile(_text(ROUTE_NAME_PATTERN))
_AT = re.compile(r"^(?P<what>.*) - at `(?P<key>key` in `)?\$(?P<path>[^`]*)`$", re.S)


def _convert(data: Any, kind: type[Any], where: str) -> Any:
    try:
        return msgspec.convert(data, kind)
    except msgspec.ValidationError as exc:
        raise RoutesFileError(_placed(str(exc), where)) from None


def _placed(message: str, where: str) -> str:
    """msgspec's "<what> - at `$.target.app`" as "route r, field target.app: <what>"."""
    found = _AT.match(message)
    what, path = (found["what"], found["path"].lstrip(".")) if found else (message, "")
    if found and found["key"]:
        path = f"{path} (a key)"
    what = what.replace("\\\\Z", "$")  # msgspec quotes the pattern the run time uses; the schema's is `$`
    if not where:  # the whole file: routes and sinks were checked one by one before
        return f"{path or '(the file)'}: {what}"
    return f"{where}, field {path or f'(the {where.split()[0]})'}: {what}"


def _with_value_specs(data: Any) -> Any:
    """A copy in which every value written as a bare JMESPath string is {"path": ...} (pydantic's "before"
    validator in route_schema.py does the same); anything of the wrong shape is left for the checks."""
    if not isinstance(data, dict):
        return data
    data = dict(data)
    if isinstance(data.get("routes"), dict):
        data["routes"] = {n: _item(r) for n, r in data["routes"].items()}
    if isinstance(data.get("sinks"), list):
        data["sinks"] = [_item(s) for s in data["sinks"]]
    return data


def _item(item: Any) -> Any:
    if not isinstance(item, dict) or not isinstance(item.get("mapping"), dict):
        return item
    mapping = dict(item["mapping"])
    for name in _VALUE_MAPS:
        if isinstance(mapping.get(name), dict):
            mapping[name] = {k: _spec(v) for k, v in mapping[name].items()}
    for name in _VALUES:
        if name in mapping:
            mapping[name] = _spec(mapping[name])
    key = mapping.get("update_key")
    if isinstance(key, dict) and "value" in key:
        mapping["update_key"] = {**key, "value": _spec(key["value"])}
    return {**item, "mapping": mapping}


def _spec(value: Any) -> Any:
    return {"path": value} if isinstance(value, str) else value
