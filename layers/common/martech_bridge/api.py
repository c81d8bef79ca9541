"""HTTP API plumbing shared by every API function: the resolver, the one mapping from domain exceptions
to JSON error responses, API-key authentication, the body size guard and body parsing."""

import base64
import binascii
import hmac
import json
import re
from typing import Any, TypeVar
from urllib.parse import unquote

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
from aws_lambda_powertools.metrics import MetricUnit
from pydantic import BaseModel, ValidationError

from martech_bridge import secrets
from martech_bridge.config import get_settings
from martech_bridge.errors import BridgeError, InvalidRequest, MethodNotAllowed, PayloadTooLarge, Unauthorized
from martech_bridge.logic.inbound import json_object
from martech_bridge.observability import logger, metrics

JSON = "application/json"
API_KEY_HEADER = "x-api-key"
M = TypeVar("M", bound=BaseModel)
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


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(
        status_code=status,
        content_type=JSON,
        body=json.dumps(body, ensure_ascii=False, separators=(",", ":")),
        headers=headers,
    )


def error_response(error: BridgeError) -> Response:
    return json_response(error.status, error.body(), error.headers or None)


def build_resolver() -> APIGatewayHttpResolver:
    """A resolver whose every answer, success or failure, is JSON in the contract's shape."""
    app = APIGatewayHttpResolver()
    app.use(middlewares=[_limit_body_size])

    @app.not_found
    def _not_found(_: Exception) -> Response:
        event = app.current_event
        allowed = allowed_methods(event.path)
        if allowed and event.http_method not in allowed:
            allow = ", ".join(allowed)
            return error_response(
                MethodNotAllowed(f"{event.path} accepts {allow}, not {event.http_method}", allow=allow)
            )
        return json_response(
            404,
            {"error": {"code": "not_found", "message": f"No route for {event.http_method} {event.path}"}},
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


def allowed_methods(path: str) -> tuple[str, ...]:
    """The methods `path` takes (a relay route: the ones it lists), or () for a path the API does not have."""
    template = next((p for pattern, p in _API_PATHS if pattern.match(path)), None)
    if template is None:
        return ()
    if template == "/relay/{route}":
        from martech_bridge.config import load_bridge_config

        spec = load_bridge_config().routes.get(unquote(path.rstrip("/").rsplit("/", 1)[1]))
        return tuple(spec.methods) if spec else ()
    return API_PATHS[template]


def _limit_body_size(app: APIGatewayHttpResolver, next_middleware: NextMiddleware) -> Response:
    body = app.current_event.body or ""
    size = len(body) * 3 // 4 if app.current_event.is_base64_encoded else len(body.encode("utf-8"))
    limit = get_settings().max_request_bytes
    if size > limit:
        metrics.add_metric(name="RequestsRejected", unit=MetricUnit.Count, value=1)
        return error_response(PayloadTooLarge(f"Request body is {size} bytes; the limit is {limit}", limit_bytes=limit))
    return next_middleware(app)


def require_api_key(app: APIGatewayHttpResolver, next_middleware: NextMiddleware) -> Response:
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


def raw_body(app: APIGatewayHttpResolver) -> bytes:
    """The request body exactly as sent (base64-decoded when API Gateway encoded it)."""
    event = app.current_event
    body = event.body or ""
    if event.is_base64_encoded:
        try:
            return base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidRequest("Body is marked base64-encoded but is not valid base64") from None
    return body.encode("utf-8")


def parse_body(app: APIGatewayHttpResolver, model: type[M]) -> M:
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
    first = exc.errors(include_url=False, include_input=False)[0]
    field = ".".join(str(p) for p in first["loc"]) or None
    message = first["msg"] if not field else f"{field}: {first['msg']}"
    return InvalidRequest(message, code="validation_error", field=field)
