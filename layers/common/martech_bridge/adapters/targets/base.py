"""The target interface, the request it builds, and the one HTTP client every target call goes through."""

import base64
import contextlib
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import msgspec

from martech_bridge.adapters.http_client import Answer, FailureKind, call
from martech_bridge.errors import InvalidRequest
from martech_bridge.logic import strict_json
from martech_bridge.logic.delivery import Outcome, classify_status, parse_retry_after
from martech_bridge.models.routes import Deliverable

# Resolves a route's secret references to every currently accepted value.
SecretResolver = Callable[[Sequence[str]], tuple[str, ...]]


class TargetRequest(msgspec.Struct, frozen=True):
    method: str
    url: str
    headers: dict[str, str]
    body: bytes | None
    timeout: float
    idempotent: bool  # may be sent again after an ambiguous failure
    secret_headers: frozenset[str] = msgspec.field(default_factory=frozenset)  # never logged

    def secret_values(self) -> tuple[str, ...]:
        """Every credential this request carries, as a target might echo it back: the whole header value,
        the token after its scheme, each comma-joined kintone token, Basic auth's user:password."""
        found: set[str] = set()
        for name in self.secret_headers:
            value = self.headers.get(name, "")
            scheme, _, token = value.partition(" ")
            found.update({value, token, *value.split(",")})
            if scheme.lower() == "basic" and token:
                with contextlib.suppress(ValueError):
                    found.add(base64.b64decode(token, validate=True).decode("utf-8"))
        return tuple(sorted((v.strip() for v in found if len(v.strip()) >= 6), key=len, reverse=True))

    def describe(self) -> str:
        """The call as recorded: method and URL without its query (clipped: a payload value can be long)."""
        text = f"{self.method} {self.url.split('?', 1)[0]}"
        return text if len(text) <= 2048 else text[:2047] + "…"


class TargetResponse(msgspec.Struct, frozen=True):
    status: int
    headers: Mapping[str, str]  # case-insensitive when it comes from the target
    body: bytes
    # The status line came but the body was cut off or too slow (not too large): what the target did is known,
    # what it said is not - a read (GET) answered so is no answer, and may be asked again.
    cut_short: bool = False

    def json(self) -> Any:
        """The answer as JSON, or None when it is not JSON we accept (NaN, 1e400, a 5,000-digit integer, a
        lone surrogate): a target's malformed answer is the target's error, never ours."""
        try:
            return strict_json.loads(self.body) if self.body else None
        except strict_json.JsonRefused:
            return None


class Target(Protocol):
    def build(
        self, route: Deliverable, payload: dict[str, Any], secrets: SecretResolver, *, local_mode: bool
    ) -> TargetRequest: ...

    def interpret(self, route: Deliverable, response: TargetResponse) -> Outcome: ...


# What a call that got no whole answer means for the delivery: its error text, and whether the target may
# have acted (the request, or part of it, left this process). Only never-sent failures are unambiguous.
_NO_ANSWER: dict[FailureKind, str] = {
    "invalid_request": "request could not be sent",
    "dns_failure": "target host did not resolve",
    "refused": "connection refused",
    "connect_timeout": "connect timeout",
    "connect_failed": "connection failed",
    "tls_failure": "TLS verification failed",
    "timeout": "no answer",
    "dropped": "connection dropped",
    "bad_response": "malformed answer",
    "too_large": "answer too large",
}


def send(request: TargetRequest, deadline: float | None = None) -> TargetResponse | Outcome:
    """The target's answer, or the Outcome of a call that got no answer. The call, from look-up to the last
    byte of the body, takes at most `request.timeout` seconds of wall-clock time, or `deadline` if sooner."""
    timeout = request.timeout if deadline is None else max(0.5, min(request.timeout, deadline))
    result = call(request.method, request.url, request.headers, request.body, deadline_seconds=timeout)
    if isinstance(result, Answer):
        return TargetResponse(result.status, result.headers, result.body)
    if result.status is not None and result.kind != "bad_response":
        # The status line came (the body was too large, cut off, or too slow): the target has said what it
        # did, so a 2xx is delivered and a 4xx refused, whatever became of the body.
        return TargetResponse(result.status, {}, b"", cut_short=result.kind in ("timeout", "dropped"))
    error = _NO_ANSWER[result.kind]
    if result.kind in ("timeout", "connect_timeout"):
        error += f" within {timeout:.1f} s"
    if result.kind == "invalid_request":
        return Outcome("rejected", None, error=f"{error}: {result.detail}")
    return Outcome("retry", None, error=error, ambiguous=result.may_have_reached_peer)


def generic_outcome(
    response: TargetResponse,
    *,
    code: str | None,
    message: str | None,
    errors: Any = None,
    result: dict[str, Any] | None = None,
) -> Outcome:
    verdict = classify_status(response.status)
    if 300 <= response.status < 400:
        verdict = "rejected"
        message = message or f"redirect to {response.headers.get('Location', '?')} not followed"
    return Outcome(
        verdict=verdict,
        status=response.status,
        error=None if verdict == "delivered" else f"HTTP {response.status}" + (f" {code}" if code else ""),
        target_code=code,
        target_message=message,
        target_errors=errors,
        result=result if verdict == "delivered" else None,
        retry_after=parse_retry_after(response.headers.get("Retry-After") or response.headers.get("retry-after")),
    )


def header_value(name: str, value: Any) -> str:
    """A mapped header value, refused when it could smuggle another header or is not Latin-1."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    if any(ch in text for ch in "\r\n\x00"):
        raise InvalidRequest(f"Value mapped to header {name} contains a line break", code="invalid_header", field=name)
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        raise InvalidRequest(
            f"Value mapped to header {name} is not Latin-1 text", code="invalid_header", field=name
        ) from None
    return text


def require_https(url: str, local_mode: bool) -> None:
    if not url.startswith("https://") and not local_mode:
        from martech_bridge.errors import ConfigurationError

        raise ConfigurationError("Targets must use https outside local mode")
