"""Sign event posts the way SendGrid does, with the local key whose public half env.json configures, so
the local stack runs verified end to end (`python -m devkit post-sendgrid FILE`)."""

import base64
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
