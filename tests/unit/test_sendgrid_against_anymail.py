"""Our SendGrid event normaliser held against django-anymail's (SendGridTrackingWebhookView), the reference
the model claims to be a superset of: the same event type, MTA response, reject reason, description, tags
and metadata for every event of the realistic batch and for the cases the issue names."""

import json
import warnings

import pytest
from martech_bridge.adapters.providers.sendgrid import sendgrid_events

from devkit.template import REPO_ROOT


@pytest.fixture(scope="module")
def anymail() -> object:
    import django
    from django.conf import settings

    if not settings.configured:
        settings.configure(ANYMAIL={"WEBHOOK_SECRET": "u:p"}, INSTALLED_APPS=["anymail"])
        django.setup()
    from anymail.webhooks.sendgrid import SendGridTrackingWebhookView

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # anymail warns that it dropped official SendGrid support
        return SendGridTrackingWebhookView()


EXTRA = [
    {
        "email": "a@example.com",
        "event": "bounce",
        "type": "blocked",
        "reason": "421 4.7.0 try later",
        "status": "4.7.0",
    },
    {
        "email": "a@example.com",
        "event": "bounce",
        "type": "bounce",
        "reason": "550 5.1.1 no such user",
        "status": "5.1.1",
    },
    {"email": "a@example.com", "event": "dropped", "reason": "Unsubscribed Address"},
    {"email": "a@example.com", "event": "dropped", "reason": "Bounced Address", "status": "5.0.0"},
    {"email": "a@example.com", "event": "delivered", "response": "250 OK", "category": "one", "tenant": "t1"},
    {"email": "a@example.com", "event": "open", "category": ["a", "b"], "useragent": "Mail", "dispatch_id": "d_1"},
    {"email": "invalid@invalid", "event": "dropped", "reason": "Invalid"},
]


NEWER_SENDGRID_KEYS = {"sg_machine_open", "bounce_classification", "sg_template_id", "sg_template_name", "sg_user_id"}


def batch() -> list[dict]:
    real = json.loads((REPO_ROOT / "events" / "payloads" / "sendgrid-batch.json").read_text())
    extra = [{**e, "timestamp": 1795323600, "sg_event_id": f"x{i}"} for i, e in enumerate(EXTRA)]
    return real + extra


def test_every_field_anymail_reads_matches_anymails_reading(anymail) -> None:
    events = batch()
    ours = sendgrid_events(events)
    for raw, mine in zip(events, ours, strict=True):
        theirs = anymail.esp_to_anymail_event(raw)  # type: ignore[attr-defined]
        tags = theirs.tags if isinstance(theirs.tags, list) else [theirs.tags]
        assert mine.event_type.value == theirs.event_type, raw
        assert mine.mta_response == theirs.mta_response, raw
        assert mine.reject_reason == theirs.reject_reason, raw
        assert mine.tags == tags, raw
        # SendGrid fields newer than anymail's list of its own keys are not custom args (WIRE-FORMATS 2.2).
        assert mine.metadata == {k: v for k, v in theirs.metadata.items() if k not in NEWER_SENDGRID_KEYS}, raw
        assert mine.recipient == (theirs.recipient or "").lower(), raw
        assert mine.timestamp == theirs.timestamp, raw
        assert mine.url == theirs.click_url and mine.user_agent == theirs.user_agent, raw
