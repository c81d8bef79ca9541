"""The target interface, the request it builds, and the one HTTP client every target call goes through."""

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Protocol

import requests

from martech_bridge.errors import InvalidRequest
from martech_bridge.logic import strict_json
from martech_bridge.logic.delivery import Outcome, classify_status, parse_retry_after
from martech_bridge.models.routes import Deliverable

# Resolves a route's secret references to every currently accepted value.
SecretResolver = Callable[[Sequence[str]], tuple[str, ...]]


@dataclass(frozen=True)
class TargetRequest:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes | None
    timeout: float
    idempotent: bool  # may be sent again after an ambiguous failure
    secret_headers: frozenset[str] = field(default_factory=frozenset)  # never logged

    def describe(self) -> str:
        return f"{self.method} {self.url.split('?', 1)[0]}"


@dataclass(frozen=True)
class TargetResponse:
    status: int
    headers: dict[str, str]
    body: bytes

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


@cache
def _session() -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # no proxy or .netrc surprises from the environment
    return session


def send(request: TargetRequest, deadline: float | None = None) -> TargetResponse | Outcome:
    """The target's answer, or the Outcome of a call that got no answer. `deadline` caps the timeout."""
    timeout = request.timeout if deadline is None else max(0.5, min(request.timeout, deadline))
    try:
        answer = _session().request(
            request.method,
            request.url,
            headers=request.headers,
            data=request.body,
            timeout=(min(3.0, timeout), timeout),
            allow_redirects=False,
        )
    except requests.exceptions.ConnectTimeout:
        return Outcome("retry", None, error=f"connect timeout after {timeout:.1f} s")
    except requests.exceptions.ReadTimeout:
        return Outcome("retry", None, error=f"no answer within {timeout:.1f} s", ambiguous=True)
    except requests.exceptions.ConnectionError as exc:
        refused = "NewConnectionError" in repr(exc) or "Name or service not known" in repr(exc)
        return Outcome(
            "retry", None, error="connection refused" if refused else "connection dropped", ambiguous=not refused
        )
    except requests.exceptions.RequestException as exc:
        return Outcome("retry", None, error=f"request failed: {type(exc).__name__}", ambiguous=True)
    return TargetResponse(answer.status_code, dict(answer.headers), answer.content)


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
