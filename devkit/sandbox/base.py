"""What every sandboxed provider shares: the request and reply types and the provider interface."""

import json
import threading
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import parse_qs


@dataclass
class Request:
    method: str
    path: str  # below the provider's prefix, e.g. /k/v1/record.json
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    body: bytes

    @classmethod
    def build(cls, method: str, path: str, query: str, headers: dict[str, str], body: bytes) -> "Request":
        return cls(method, path, parse_qs(query, keep_blank_values=True), headers, body)

    def json(self) -> Any:
        """The body as JSON; raises ValueError with a readable reason."""
        try:
            return json.loads(self.body.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"body is not JSON: {exc}") from None


@dataclass
class Reply:
    status: int
    body: Any = None  # dict/list -> JSON, str/bytes as is, None -> empty
    headers: dict[str, str] = field(default_factory=dict)

    def encode(self) -> tuple[bytes, dict[str, str]]:
        headers = dict(self.headers)
        if self.body is None:
            return b"", headers
        if isinstance(self.body, bytes):
            return self.body, headers
        if isinstance(self.body, str):
            headers.setdefault("Content-Type", "text/plain; charset=utf-8")
            return self.body.encode("utf-8"), headers
        headers.setdefault("Content-Type", "application/json; charset=utf-8")
        return json.dumps(self.body, ensure_ascii=False).encode("utf-8"), headers


class Provider(Protocol):
    name: str

    def handle(self, request: Request) -> Reply: ...

    def reset(self) -> None: ...

    def control(self, method: str, path: str, body: Any) -> Reply | None:
        """Provider-specific set-up under /_sandbox/<name>/...; None when the path is not its own."""
        ...


def bearer_token(request: Request) -> str | None:
    value = request.headers.get("authorization", "")
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


class AcceptedLog:
    """What a provider accepted (mail sent, events written), readable at GET /_sandbox/<name>/<listing>."""

    listing = "/sent"

    def __init__(self) -> None:
        self.accepted: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def accept(self, item: dict[str, Any]) -> None:
        with self._lock:
            self.accepted.append(item)

    def reset(self) -> None:
        with self._lock:
            self.accepted.clear()

    def control(self, method: str, path: str, body: Any) -> Reply | None:
        if path == self.listing and method == "GET":
            with self._lock:
                return Reply(200, list(self.accepted))
        return None


def rate_limit_headers(limit: int, wait: float | None) -> dict[str, str]:
    """SendGrid's and Braze's rate-limit headers on a 429: `X-RateLimit-Reset` is an epoch time in seconds,
    not a delay, and no `Retry-After` is sent (SendGrid's *Rate limits* page; Braze's *API Rate Limits*,
    braze-inc/braze-docs `_docs/_api/api_limits.md`; WIRE-FORMATS 1.6, 3.2)."""
    import math
    import time

    return {
        "X-RateLimit-Limit": str(limit),
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": str(math.ceil(time.time() + (wait if wait is not None else 1))),
    }
