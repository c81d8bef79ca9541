"""Webhook authentication: shared secrets with rotation, query tokens only by opt-in, KARTE Hook v2 HMAC
(hex or base64, replay window) and generic HMAC."""

import base64
import hashlib
import hmac

import pytest
from martech_bridge.logic.webhook_auth import AuthFailure, verify
from martech_bridge.models.routes import HmacAuth, KarteHmacAuth, NoAuth, SharedSecretAuth

NOW = 1_795_323_600.0
BODY = '{"event_type":"talk/message/sendFromUser","data":{"user_id":"u1","content":{"text":"こんにちは"}}}'.encode()


def resolver(refs):  # a stand-in for SSM: each ref may hold several comma-separated values
    return tuple(v.strip() for ref in refs for v in ref.split(",") if v.strip())


def check(auth, headers=None, query=None, body=BODY, now=NOW) -> None:
    verify(auth, headers=headers or {}, query=query or {}, body=body, secrets=resolver, now=now)


def karte_signature(secret: str, timestamp: str, body: bytes, encoding: str = "hex") -> str:
    digest = hmac.new(secret.encode(), timestamp.encode() + b":" + body, hashlib.sha256).digest()
    return digest.hex() if encoding == "hex" else base64.b64encode(digest).decode()


SHARED = SharedSecretAuth(secrets=["old-secret,new-secret"])


@pytest.mark.parametrize("secret", ["old-secret", "new-secret"])
def test_shared_secret_accepts_every_rotated_value(secret: str) -> None:
    check(SHARED, headers={"x-webhook-token": secret})


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "Missing credentials"),
        ({"x-webhook-token": "retired"}, "Invalid"),
        ({"x-webhook-token": "new-secret "}, "Invalid"),
    ],
)
def test_shared_secret_refusals(headers: dict, message: str) -> None:
    with pytest.raises(AuthFailure, match=message):
        check(SHARED, headers=headers)


def test_query_token_only_where_the_route_opts_in() -> None:
    with pytest.raises(AuthFailure):
        check(SHARED, query={"token": "new-secret"})
    opted = SharedSecretAuth(secrets=["new-secret"], query_param="token")
    check(opted, query={"token": "new-secret"})


def test_no_configured_secret_refuses_everything() -> None:
    with pytest.raises(AuthFailure, match="no secrets configured"):
        verify(SHARED, headers={"x-webhook-token": "x"}, query={}, body=b"", secrets=lambda refs: ())


KARTE = KarteHmacAuth(secrets=["client-secret-old,client-secret-new"])


@pytest.mark.parametrize("encoding", ["hex", "base64"])
def test_karte_hmac_hex_or_base64(encoding: str) -> None:
    ts = str(int(NOW) - 10)
    check(
        KARTE,
        headers={
            "x-karte-request-timestamp": ts,
            "x-karte-signature": karte_signature("client-secret-new", ts, BODY, encoding),
        },
    )


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda h, b: ({**h, "x-karte-request-timestamp": str(int(NOW) - 301)}, b), "outside"),
        (lambda h, b: ({**h, "x-karte-request-timestamp": str(int(NOW) + 301)}, b), "outside"),
        (lambda h, b: (h, b + b" "), "does not match"),  # body changed after signing
        (lambda h, b: ({**h, "x-karte-signature": "00" * 32}, b), "does not match"),
        (lambda h, b: ({k: v for k, v in h.items() if k != "x-karte-signature"}, b), "Missing"),
        (lambda h, b: ({**h, "x-karte-request-timestamp": "yesterday"}, b), "not a number"),
    ],
)
def test_karte_hmac_refusals(mutate, message: str) -> None:
    ts = str(int(NOW))
    headers = {"x-karte-request-timestamp": ts, "x-karte-signature": karte_signature("client-secret-old", ts, BODY)}
    headers, body = mutate(headers, BODY)
    with pytest.raises(AuthFailure, match=message):
        check(KARTE, headers=headers, body=body)


def test_signature_with_a_rotated_out_secret_is_refused() -> None:
    ts = str(int(NOW))
    with pytest.raises(AuthFailure):
        check(
            KARTE, headers={"x-karte-request-timestamp": ts, "x-karte-signature": karte_signature("retired", ts, BODY)}
        )


def test_generic_hmac_with_prefix_and_timestamp() -> None:
    auth = HmacAuth(
        header="X-Hub-Signature-256",
        prefix="sha256=",
        secrets=["k"],
        timestamp_header="X-Timestamp",
    )
    ts = str(int(NOW))
    digest = hmac.new(b"k", ts.encode() + b"." + BODY, hashlib.sha256).hexdigest()
    check(auth, headers={"x-hub-signature-256": f"sha256={digest}", "x-timestamp": ts})
    with pytest.raises(AuthFailure, match="must start with"):
        check(auth, headers={"x-hub-signature-256": digest, "x-timestamp": ts})


def test_none_is_explicit() -> None:
    check(NoAuth())
