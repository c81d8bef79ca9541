"""Authentication of ESP event webhooks: SendGrid's Signed Event Webhook (ECDSA P-256 / SHA-256 over the
timestamp and the raw body), Braze's shared secret, and the token the bridge put into Infobip's
notifyUrl / trackingUrl. Every check fails closed."""

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Sequence

SENDGRID_SIGNATURE = "x-twilio-email-event-webhook-signature"
SENDGRID_TIMESTAMP = "x-twilio-email-event-webhook-timestamp"


class EventAuthFailure(Exception):
    """Why an event post was refused; safe to show (it holds no secret)."""


def verify_sendgrid(
    public_keys: Sequence[str],
    signature: str | None,
    timestamp: str | None,
    body: bytes,
    *,
    max_age_seconds: float,
    now: float | None = None,
) -> None:
    """The signature must verify with one of the keys over `timestamp + raw body` (the exact bytes SendGrid
    sent, trailing CRLF included), and the timestamp be within the window."""
    if not signature or not timestamp:
        raise EventAuthFailure("Missing X-Twilio-Email-Event-Webhook-Signature or -Timestamp")
    try:
        sent = int(timestamp)
    except ValueError:
        raise EventAuthFailure("Event webhook timestamp is not a number of seconds") from None
    if abs((now if now is not None else time.time()) - sent) > max_age_seconds:
        raise EventAuthFailure(f"Event webhook timestamp is outside the {int(max_age_seconds)} s window")
    try:
        der_signature = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        raise EventAuthFailure("Event webhook signature is not base64") from None
    # Imported here: only the SendGrid path pays for cryptography.
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import load_der_public_key

    message = timestamp.encode("utf-8") + body
    for key in public_keys:
        try:
            public_key = load_der_public_key(base64.b64decode(key))
        except (ValueError, binascii.Error):
            continue  # a malformed configured key is skipped; the others may still verify
        if not isinstance(public_key, ec.EllipticCurvePublicKey):
            continue
        try:
            public_key.verify(der_signature, message, ec.ECDSA(hashes.SHA256()))
            return
        except InvalidSignature:
            continue
    raise EventAuthFailure("Event webhook signature does not verify")


def infobip_callback_token(secret: str, dispatch_id: str) -> str:
    """The token the bridge puts into Infobip's callback URLs for one dispatch (bulkId)."""
    return hmac.new(secret.encode("utf-8"), dispatch_id.encode("utf-8"), hashlib.sha256).hexdigest()[:32]


def matches_any(given: str, accepted: Sequence[str]) -> bool:
    matched = False
    for secret in accepted:
        matched |= hmac.compare_digest(given.encode("utf-8"), secret.encode("utf-8"))
    return matched
