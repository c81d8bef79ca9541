"""SendGrid's Signed Event Webhook, checked with SendGrid's own test vector (WIRE-FORMATS 2.5)."""

import pytest
from martech_bridge.logic.event_auth import EventAuthFailure, infobip_callback_token, verify_sendgrid

PUBLIC_KEY = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE83T4O/n84iotIvIW4mdBgQ/7dAfSmpqIM8kF9mN1flpVKS3GRqe62gw+2fNNRaINXvVpiglSI8eNEc6wEA3F+g=="
SIGNATURE = "MEUCIGHQVtGj+Y3LkG9fLcxf3qfI10QysgDWmMOVmxG0u6ZUAiEAyBiXDWzM+uOe5W0JuG+luQAbPIqHh89M15TluLtEZtM="
TIMESTAMP = "1600112502"
PAYLOAD = (
    b'[{"email":"hello@world.com","event":"dropped","reason":"Bounced Address","sg_event_id":'
    b'"ZHJvcC0xMDk5NDkxOS1MUnpYbF9OSFN0T0doUTRrb2ZTbV9BLTA","sg_message_id":'
    b'"LRzXl_NHStOGhQ4kofSm_A.filterdrecv-p3mdw1-756b745b58-kmzbl-18-5F5FC76C-9.0","smtp-id":'
    b'"<LRzXl_NHStOGhQ4kofSm_A@ismtpd0039p1iad1.sendgrid.net>","timestamp":1600112492}]\r\n'
)
WRONG_KEY = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEqTxd43gyp8IOEto2LdIfjRQrIbsd4SXZkLW6jDutdhXSJCWHw8REntlo7aNDthvj+y7GjUuFDb/R1NGe1OPzpA=="
WRONG_SIGNATURE = "MEUCIQCtIHJeH93Y+qpYeWrySphQgpNGNr/U+UyUlBkU6n7RAwIgJTz2C+8a8xonZGi6BpSzoQsbVRamr2nlxFDWYNH3j/0="
NOW = 1600112502 + 5


def check(keys=(PUBLIC_KEY,), signature=SIGNATURE, timestamp=TIMESTAMP, body=PAYLOAD, now=NOW) -> None:
    verify_sendgrid(list(keys), signature, timestamp, body, max_age_seconds=600, now=now)


def test_the_official_vector_verifies() -> None:
    check()


def test_any_of_several_keys_verifies_for_rotation() -> None:
    check(keys=("not base64 at all", WRONG_KEY, PUBLIC_KEY))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"body": PAYLOAD.rstrip(b"\r\n")}, "does not verify"),  # the CRLF is part of the signed bytes
        ({"keys": (WRONG_KEY,)}, "does not verify"),
        ({"signature": WRONG_SIGNATURE}, "does not verify"),
        ({"body": b"payload"}, "does not verify"),
        ({"timestamp": "timestamp"}, "not a number"),
        ({"now": 1600112502 + 601}, "outside"),
        ({"signature": None}, "Missing"),
        ({"timestamp": None}, "Missing"),
        ({"signature": "%%%"}, "not base64"),
    ],
)
def test_everything_else_is_refused(change: dict, message: str) -> None:
    with pytest.raises(EventAuthFailure, match=message):
        check(**change)


def test_infobip_tokens_are_per_dispatch() -> None:
    assert infobip_callback_token("s", "d_1") != infobip_callback_token("s", "d_2")
    assert infobip_callback_token("s", "d_1") == infobip_callback_token("s", "d_1")
    assert len(infobip_callback_token("s", "d_1")) == 32
