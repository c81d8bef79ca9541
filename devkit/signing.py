"""Sign inbound posts as their senders do, with the local secrets the stack trusts, so the local stack runs
verified end to end: SendGrid's Signed Event Webhook (`python -m devkit post-sendgrid FILE`) and KARTE
Hook v2's HMAC (`python -m devkit post-karte-hook FILE`)."""

import base64
import hashlib
import hmac
import time
from functools import cache
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_private_key

LOCAL_KEY = Path(__file__).resolve().parent / "sandbox" / "sendgrid-webhook-signing-key.pem"


@cache
def _key(path: Path = LOCAL_KEY) -> ec.EllipticCurvePrivateKey:
    key = load_pem_private_key(path.read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key


def sendgrid_headers(
    body: bytes, timestamp: int | None = None, key: ec.EllipticCurvePrivateKey | None = None
) -> dict[str, str]:
    """The two headers of SendGrid's Signed Event Webhook for this exact body."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    signature = (key or _key()).sign(ts.encode() + body, ec.ECDSA(hashes.SHA256()))
    return {
        "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
        "X-Twilio-Email-Event-Webhook-Timestamp": ts,
    }


def karte_hook_headers(body: bytes, client_secret: str, timestamp: int | None = None) -> dict[str, str]:
    """KARTE Hook v2: X-Karte-Signature = hex HMAC-SHA256 of "{timestamp}:{raw body}" under the app's client
    secret, X-Karte-Request-Timestamp in unix seconds (developers.karte.io/reference/webhook-v2-hmac; hex is
    one of the two encodings the bridge accepts, the documentation not saying which KARTE sends)."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(client_secret.encode("utf-8"), ts.encode() + b":" + body, hashlib.sha256).hexdigest()
    return {"X-Karte-Signature": digest, "X-Karte-Request-Timestamp": ts}
