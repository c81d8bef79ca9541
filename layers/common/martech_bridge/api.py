"""HTTP API plumbing shared by every API function: the resolver, the one mapping from domain exceptions
to JSON error responses, API-key authentication, the body size guard and body parsing.

The resolver is a small one of our own, not Powertools' APIGatewayHttpResolver: importing that one loads
every resolver (AppSync and asyncio, Bedrock, OpenAPI config) and every event data class, 30-60 ms of each
API function's cold start (docs/design.md, "Cold starts"). It keeps the part of its behaviour the functions
use: routes with <name> segments (static routes first), global and per-route middlewares, exception handlers
by exception class, a not-found handler, payload format 2.0 answers."""

import base64
import binascii
import hmac
import json
import re
from collections.abc import Callable, Sequence
from typing import Any, Protocol, Self, TypeVar
from urllib.parse import unquote

from aws_lambda_powertools.metrics import MetricUnit

from martech_bridge import secrets
from martech_bridge.config import get_settings
from martech_bridge.errors import BridgeError, InvalidRequest, MethodNotAllowed, PayloadTooLarge, Unauthorized
from martech_bridge.logic.inbound import json_object
from martech_bridge.models.plain import ValidationError
from martech_bridge.observability import logger, metrics

JSON = "application/json"
API_KEY_HEADER = "x-api-key"


class Body(Protocol):
    """A request model (models/mail.py, models/subscription.py): built from a JSON object or refused with
    ValidationError naming the field."""

    @classmethod
    def model_validate(cls, data: Any) -> Self: ...


M = TypeVar("M", bound=Body)
# Every path the HTTP API routes and its methods (template.yaml; test_openapi holds the two equal). Any other
# method on one of these paths reaches the catch-all, which answers 405 with Allow, as HTTP says, not 404.
API_PATHS: dict[str, tuple[str, ...]] = {
    "/relay/{route}": ("GET", "POST", "PUT", "PATCH", "DELETE"),
    "/mail/send": ("POST",),
    "/events/{provider}": ("POST",),
    "/messages": ("GET",),
    "/messages/{dispatch_id}": ("GET",),
    "/reports": ("GET",),
    "/quota": ("GET",),
    "/events": ("GET",),
    "/deliveries": ("GET",),
    "/replies": ("GET",),
    "/deliveries/{delivery_id}": ("GET",),
    "/stats": ("GET",),
    "/console": ("GET",),
    "/deliveries/{delivery_id}/retry": ("POST",),
    "/subscriptions/{email}": ("GET", "PUT"),
    "/subscriptions": ("GET", "PUT"),
    "/health": ("GET",),
}
_API_PATHS = [(re.compile("^" + re.sub(r"\\{\w+\\}", "[^/]+", re.escape(p)) + "/?$"), p) for p in API_PATHS]


class Response:
    """One answer: status, body (a str, or bytes sent base64-encoded) and headers."""

    def __init__(
        self, status_code: int, content_type: str | None = None, body: Any = None, headers: dict[str, Any] | None = None
    ) -> None:
        self.status_code = status_code
        self.body = body
        self.headers: dict[str, Any] = dict(headers) if headers else {}
        if content_type:
            self.headers.setdefault("Content-Type", content_type)


class _Headers(dict[str, str]):
    """Request headers; looked up case-insensitively (API Gateway sends them lower-cased)."""

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        return super().get(key.lower(), default)

    def __getitem__(self, key: str) -> str:
        return super().__getitem__(key.lower())

    def __contains__(self, key: object) -> bool:
        return super().__contains__(key.lower() if isinstance(key, str) else key)


class HttpEvent:
    """The parts of an API Gateway HTTP API (payload format 2.0) event the functions read."""

    def __init__(self, raw: dict[str, Any]) -> None:
        self.raw = raw
        self.headers = _Headers({str(k).lower(): v for k, v in (raw.get("headers") or {}).items()})
        self.query_string_parameters: dict[str, str] = raw.get("queryStringParameters") or {}
        self.raw_query_string: str = raw.get("rawQueryString") or ""
        self.body: str | None = raw.get("body")
        self.is_base64_encoded: bool = bool(raw.get("isBase64Encoded"))
        context = raw.get("requestContext") or {}
        self.http_method: str = str((context.get("http") or {}).get("method") or "")
        stage = context.get("stage")
        raw_path = str(raw.get("rawPath") or "/")
        # As API Gateway's own event data class reads it: a named stage's prefix is not part of the route.
        self.path = raw_path[len("/" + stage) :] if stage and stage != "$default" else raw_path


Handler = Callable[..., Any]
Middleware = Callable[["Router", Callable[["Router"], Any]], Any]
NextMiddleware = Callable[["Router"], Any]
# A <name> segment matches what Powertools' resolver matched: RFC 3986 unreserved and sub-delims, and the
# characters API Gateway passes on undecoded (never "/").
_SEGMENT = r"[-._~()'!*:@,;=+&$%<> \[\]{}|^\w]+"


class Router:
    """Routes an HTTP API event to its handler through the middlewares; exceptions to their handlers."""

    def __init__(self) -> None:
        self._routes: list[tuple[str, re.Pattern[str], Handler, list[Middleware]]] = []
        self._middlewares: list[Middleware] = []
        self._exception_handlers: dict[type[BaseException], Handler] = {}
        self._not_found: Handler | None = None
        self.current_event: HttpEvent = HttpEvent({})
        self.lambda_context: Any = None

    def route(
        self, rule: str, method: str | list[str], middlewares: Sequence[Middleware] | None = None
    ) -> Callable[[Handler], Handler]:
        methods = [method] if isinstance(method, str) else method

        def register(handler: Handler) -> Handler:
            pattern = re.compile("^" + re.sub(r"<(\w+)>", lambda m: f"(?P<{m[1]}>{_SEGMENT})", rule) + "$")
            for m in methods:
                self._routes.append((m.upper(), pattern, handler, list(middlewares or [])))
            # Static routes are tried before those with <name> segments, whatever the order they came in.
            self._routes.sort(key=lambda r: "<" in r[1].pattern)
            return handler

        return register

    def get(self, rule: str, middlewares: Sequence[Middleware] | None = None) -> Callable[[Handler], Handler]:
        return self.route(rule, "GET", middlewares)

    def post(self, rule: str, middlewares: Sequence[Middleware] | None = None) -> Callable[[Handler], Handler]:
        return self.route(rule, "POST", middlewares)

    def put(self, rule: str, middlewares: Sequence[Middleware] | None = None) -> Callable[[Handler], Handler]:
        return self.route(rule, "PUT", middlewares)

    def use(self, middlewares: Sequence[Middleware]) -> None:
        self._middlewares.extend(middlewares)

    def not_found(self, handler: Handler) -> Handler:
        self._not_found = handler
        return handler

    def exception_handler(self, kind: type[BaseException]) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self._exception_handlers[kind] = handler
            return handler

        return register

    def resolve(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        self.current_event = HttpEvent(event)
        self.lambda_context = context
        method, path = self.current_event.http_method.upper(), self.current_event.path
        handler: Handler = self._no_route
        arguments: dict[str, str] = {}
        chain = list(self._middlewares)
        for route_method, pattern, route_handler, route_middlewares in self._routes:
            found = pattern.match(path) if route_method == method else None
            if found:
                handler, arguments = route_handler, found.groupdict()
                chain += route_middlewares
                break
        try:
            response = self._call(chain, lambda _app: handler(**arguments))
        except Exception as exc:  # noqa: BLE001 - handed to the handler registered for its class, else re-raised
            response = self._handle(exc)
        finally:
            self.current_event, self.lambda_context = HttpEvent({}), None
        return _answer(response)

    def _call(self, chain: list[Middleware], last: NextMiddleware) -> Any:
        if not chain:
            return last(self)
        return chain[0](self, lambda app: app._call(chain[1:], last))

    def _no_route(self) -> Any:
        if self._not_found is None:
            return Response(404, JSON, json.dumps({"statusCode": 404, "message": "Not found"}))
        return self._not_found(LookupError("no route"))

    def _handle(self, exc: Exception) -> Any:
        for kind in type(exc).__mro__:
            handler = self._exception_handlers.get(kind)
            if handler is not None:
                return handler(exc)
        raise exc


def _answer(response: Any) -> dict[str, Any]:
    """The payload format 2.0 answer; a bytes body goes base64-encoded."""
    body = response.body
    encoded = isinstance(body, bytes)
    if encoded:
        body = base64.b64encode(body).decode()
    headers = {k: v if isinstance(v, str) else ", ".join(v) for k, v in response.headers.items() if v is not None}
    return {
        "statusCode": response.status_code,
        "body": body,
        "isBase64Encoded": encoded,
        "headers": headers,
        "cookies": [],
    }


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(
        status_code=status,
        content_type=JSON,
        body=json.dumps(body, ensure_ascii=False, separators=(",", ":")),
        headers=headers,
    )


def error_response(error: BridgeError) -> Response:
    return json_response(error.status, error.body(), error.headers or None)


def build_resolver() -> Router:
    """A resolver whose every answer, success or failure, is JSON in the contract's shape."""
    app = Router()
    app.use(middlewares=[_limit_body_size])

    @app.not_found
    def _not_found(_: Exception) -> Response:
        event = app.current_event
        allowed = allowed_methods(event.path)
        if allowed and event.http_method not in allowed:
            allow = ", ".join(allowed)
            # The path's template, not the path: error bodies never hold an address (/subscriptions/{email}).
            shown = _path_template(event.path) or _without_addresses(event.path)
            return error_response(MethodNotAllowed(f"{shown} accepts {allow}, not {event.http_method}", allow=allow))
        return json_response(
            404,
            {
                "error": {
                    "code": "not_found",
                    "message": f"No route for {event.http_method} {_without_addresses(event.path)}",
                }
            },
        )

    @app.exception_handler(BridgeError)
    def _bridge_error(exc: BridgeError) -> Response:
        if exc.status >= 500:
            logger.error("Request failed", extra={"error_code": exc.code, "error": exc.message})
        else:
            logger.info("Request refused", extra={"status": exc.status, "error_code": exc.code})
        return error_response(exc)

    @app.exception_handler(Exception)
    def _unexpected(exc: Exception) -> Response:
        # A bug of ours, never the caller's fault: log it whole, answer without internals.
        logger.exception("Unhandled error")
        return error_response(BridgeError("Internal error; see the function's log for the request id"))

    return app


def _path_template(path: str) -> str | None:
    return next((p for pattern, p in _API_PATHS if pattern.match(path)), None)


def _without_addresses(path: str) -> str:
    """The path with each segment that holds an address (an `@`, as sent or percent-encoded) shown as
    {redacted}: a path the router could not match is echoed to help with a typo, never with an address."""
    return "/".join("{redacted}" if "@" in unquote(part) else part for part in path.split("/"))


def allowed_methods(path: str) -> tuple[str, ...]:
    """The methods `path` takes (a relay route: the ones it lists), or () for a path the API does not have."""
    template = _path_template(path)
    if template is None:
        return ()
    if template == "/relay/{route}":
        from martech_bridge.config import load_bridge_config

        spec = load_bridge_config().routes.get(unquote(path.rstrip("/").rsplit("/", 1)[1]))
        return tuple(spec.methods) if spec else ()
    return API_PATHS[template]


def _limit_body_size(app: Router, next_middleware: NextMiddleware) -> Response:
    body = app.current_event.body or ""
    size = len(body) * 3 // 4 if app.current_event.is_base64_encoded else len(body.encode("utf-8"))
    limit = get_settings().max_request_bytes
    if size > limit:
        metrics.add_metric(name="RequestsRejected", unit=MetricUnit.Count, value=1)
        return error_response(PayloadTooLarge(f"Request body is {size} bytes; the limit is {limit}", limit_bytes=limit))
    return next_middleware(app)


def require_api_key(app: Router, next_middleware: NextMiddleware) -> Response:
    """Route middleware: the X-Api-Key header must equal one of the configured keys (several, for rotation)."""
    settings = get_settings()
    keys = secrets.resolve_list("api_keys", settings.api_keys, allow_plaintext=settings.allow_plaintext_secrets)
    given = app.current_event.headers.get(API_KEY_HEADER, "")
    if not keys:
        logger.warning("API_KEYS is not configured; refusing the request")
        return _auth_failure("This endpoint has no API keys configured; every request is refused")
    if not given:
        return _auth_failure(f"Missing API key: send it in the {API_KEY_HEADER.title()} header")
    # Compare against every key, without stopping early, so timing says nothing about which one is close.
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(given.encode("utf-8"), key.encode("utf-8"))
    if not matched:
        return _auth_failure("Invalid API key")
    return next_middleware(app)


def _auth_failure(message: str) -> Response:
    metrics.add_metric(name="AuthRejected", unit=MetricUnit.Count, value=1)
    return error_response(Unauthorized(message))


def raw_body(app: Router) -> bytes:
    """The request body exactly as sent (base64-decoded when API Gateway encoded it)."""
    event = app.current_event
    body = event.body or ""
    if event.is_base64_encoded:
        try:
            return base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidRequest("Body is marked base64-encoded but is not valid base64") from None
    return body.encode("utf-8")


def parse_body(app: Router, model: type[M]) -> M:
    """Validate a JSON object body against `model`; a 400 names the first offending field."""
    data = raw_body(app)
    if not data.strip():
        raise InvalidRequest("Request body is empty; a JSON object is required", code="empty_body")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRequest("Request body is not valid UTF-8", code="invalid_encoding") from None
    parsed = json_object(text)
    try:
        return model.model_validate(parsed)
    except ValidationError as exc:
        raise validation_error(exc) from None


def validation_error(exc: ValidationError) -> InvalidRequest:
    field = ".".join(str(p) for p in exc.loc) or None
    message = exc.msg if not field else f"{field}: {exc.msg}"
    return InvalidRequest(message, code="validation_error", field=field)
