"""Webhook authentication: shared secrets (header, or query token where a route opts in), KARTE Hook v2
HMAC and generic HMAC-SHA256. Every comparison is constant-time and runs over every accepted secret."""

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Callable, Mapping, Sequence

from martech_bridge.models.routes import Auth, HmacAuth, KarteHmacAuth, NoAuth, SharedSecretAuth


class AuthFailure(Exception):
    """Why a webhook was refused; the message is safe to show the caller (it holds no secret)."""


def verify(
    auth: Auth,
    *,
    headers: Mapping[str, str],
    query: Mapping[str, str],
    body: bytes,
    secrets: Callable[[Sequence[str]], tuple[str, ...]],
    now: float | None = None,
) -> None:
    """Raise AuthFailure unless the request carries valid credentials. `headers` are lower-cased;
    `secrets` resolves the route's references to every currently accepted value."""
    if isinstance(auth, NoAuth):
        return
    accepted = secrets(auth.secrets)
    if not accepted:
        raise AuthFailure("This route has no secrets configured; every request is refused")
    if isinstance(auth, SharedSecretAuth):
        given = headers.get(auth.header.lower())
        if given is None and auth.query_param:
            given = query.get(auth.query_param)
        if not given:
            where = f"the {auth.header} header" + (
                f" or the {auth.query_param} query parameter" if auth.query_param else ""
            )
            raise AuthFailure(f"Missing credentials: send the shared secret in {where}")
        if not _matches_any(given.encode("utf-8"), accepted):
            raise AuthFailure("Invalid shared secret")
        return
    if isinstance(auth, KarteHmacAuth):
        signature = headers.get("x-karte-signature")
        timestamp = headers.get("x-karte-request-timestamp")
        if not signature or not timestamp:
            raise AuthFailure("Missing X-Karte-Signature or X-Karte-Request-Timestamp")
        _check_timestamp(timestamp, auth.max_skew_seconds, now)
        message = timestamp.encode("ascii", "replace") + b":" + body
        _check_hmac(signature, message, accepted)
        return
    if isinstance(auth, HmacAuth):
        signature = headers.get(auth.header.lower())
        if not signature:
            raise AuthFailure(f"Missing {auth.header} signature")
        if auth.prefix:
            if not signature.startswith(auth.prefix):
                raise AuthFailure(f"{auth.header} must start with {auth.prefix!r}")
            signature = signature[len(auth.prefix) :]
        message = body
        if auth.timestamp_header:
            timestamp = headers.get(auth.timestamp_header.lower())
            if not timestamp:
                raise AuthFailure(f"Missing {auth.timestamp_header}")
            _check_timestamp(timestamp, auth.max_skew_seconds, now)
            message = timestamp.encode("ascii", "replace") + b"." + body
        _check_hmac(signature, message, accepted)
        return
    raise AuthFailure("Unsupported authentication scheme")  # pragma: no cover - the model is exhaustive


def _matches_any(given: bytes, accepted: Sequence[str]) -> bool:
    matched = False
    for secret in accepted:
        matched |= hmac.compare_digest(given, secret.encode("utf-8"))
    return matched


def _check_timestamp(value: str, max_skew: int, now: float | None) -> None:
    try:
        sent = int(value.strip())
    except ValueError:
        raise AuthFailure("Request timestamp is not a number of seconds") from None
    if sent > 10**11:  # milliseconds, not seconds
        sent //= 1000
    if abs((now if now is not None else time.time()) - sent) > max_skew:
        raise AuthFailure(f"Request timestamp is outside the {max_skew} s window (replayed or clock skew)")


def _check_hmac(signature: str, message: bytes, accepted: Sequence[str]) -> None:
    """Accept the digest hex- or base64-encoded (KARTE does not document which)."""
    candidates: list[bytes] = []
    sig = signature.strip()
    try:
        candidates.append(bytes.fromhex(sig))
    except ValueError:
        pass
    try:
        candidates.append(base64.b64decode(sig + "=" * (-len(sig) % 4), validate=True))
    except (binascii.Error, ValueError):
        pass
    candidates = [c for c in candidates if len(c) == 32]
    matched = False
    for secret in accepted:
        expected = hmac.new(secret.encode("utf-8"), message, hashlib.sha256).digest()
        for candidate in candidates:
            matched |= hmac.compare_digest(candidate, expected)
    if not matched:
        raise AuthFailure("Signature does not match")
