"""The Infobip sandbox keeps suppressions per sending domain and drops mail to a suppressed address as
Infobip does (accepted, then a report that it was not sent); a hard bounce suppresses the address on the
sending domain. The reports are checked against Infobip's own model (infobip-api-python-client 6.0.0) and
read by the bridge's own Infobip event normaliser."""

import json
from typing import Any

from martech_bridge.adapters.providers.infobip import infobip_events

from devkit.sandbox.base import Request
from devkit.sandbox.callbacks import EventCallbacks
from devkit.sandbox.infobip import Infobip

AUTH = {"authorization": "App k", "content-type": "application/json"}
EMAIL = "taro@example.com"


def send(fake: Infobip, sender: str, message_id: str, to: str = EMAIL) -> dict[str, Any]:
    body = {
        "messages": [
            {
                "sender": sender,
                "destinations": [{"to": [{"destination": to, "messageId": message_id}]}],
                "content": {"subject": "s", "text": "t"},
                "webhooks": {"delivery": {"url": "http://127.0.0.1:9/events/infobip"}},
            }
        ]
    }
    reply = fake.handle(Request("POST", "/email/4/messages", {}, AUTH, json.dumps(body).encode()))
    assert reply.status == 200, reply.body
    return {"request": body, "reply": reply}


def reports(fake: Infobip, sent: dict[str, Any]) -> list[dict[str, Any]]:
    """The delivery reports the sandbox would post for one send."""
    callbacks = EventCallbacks({})
    posted: list[Any] = []
    callbacks._later = lambda delay, provider, url, events: posted.append(events)  # type: ignore[method-assign]
    request = Request("POST", "/email/4/messages", {}, AUTH, json.dumps(sent["request"]).encode())
    callbacks.after("infobip", request, sent["reply"], fake)
    return [item for post in posted if "results" in post for item in post["results"]]


def test_a_hard_bounce_suppresses_the_address_on_the_sending_domain_only() -> None:
    fake = Infobip(["k"])
    fake.control("POST", "/mailboxes", {"email": EMAIL, "outcome": "bounce"})
    sent = send(fake, "Shop <news@b.example.com>", "m1")
    assert sent["reply"].body["messages"][0]["status"]["groupName"] == "PENDING"  # accepted, as Infobip does
    listed = fake.control("GET", "/suppressions", None)
    assert listed is not None and listed.body == [
        {"domainName": "b.example.com", "emailAddress": EMAIL, "type": "BOUNCE"}
    ]
    (report,) = reports(fake, sent)
    assert report["status"]["groupName"] == "UNDELIVERABLE" and report["error"]["permanent"] is True
    (event,) = infobip_events({"results": [report]})
    assert event.event_type == "bounced" and event.bounce == "hard"


def test_mail_to_a_suppressed_address_is_accepted_then_reported_not_sent_until_released() -> None:
    fake = Infobip(["k"])
    fake.control("POST", "/suppressions", {"domainName": "b.example.com", "emailAddress": EMAIL, "type": "COMPLAINT"})
    dropped = send(fake, "news@b.example.com", "m1")
    (report,) = reports(fake, dropped)
    assert report["status"]["groupName"] == "REJECTED"
    assert (report["error"]["id"], report["error"]["name"]) == (6035, "EC_SUPPRESSED_SPAM_COMPLAINT")
    (event,) = infobip_events({"results": [report]})
    assert event.event_type == "rejected"
    # Another sending domain's mail is not affected: Infobip keeps suppressions per domain
    (other,) = reports(fake, send(fake, "news@a.example.com", "m2"))
    assert other["status"]["groupName"] == "DELIVERED"
    # Once the suppression is deleted, the next mail from that domain is delivered
    body = {"suppressions": [{"domainName": "b.example.com", "emailAddress": [EMAIL], "type": "COMPLAINT"}]}
    deleted = fake.handle(Request("DELETE", "/email/1/suppressions", {}, AUTH, json.dumps(body).encode()))
    assert deleted.status == 204
    (after,) = reports(fake, send(fake, "news@b.example.com", "m3"))
    assert after["status"]["groupName"] == "DELIVERED"


def test_the_sandboxs_reports_fit_infobips_delivery_report_model() -> None:
    from infobip_api_client.models.email_webhook_dlr_report_response import EmailWebhookDLRReportResponse

    fake = Infobip(["k"])
    fake.control("POST", "/mailboxes", {"email": "gone@example.com", "outcome": "bounce"})
    fake.control("POST", "/suppressions", {"domainName": "b.example.com", "emailAddress": EMAIL, "type": "BOUNCE"})
    found = []
    for n, to in enumerate((EMAIL, "gone@example.com", "fine@example.com")):
        found += reports(fake, send(fake, "news@b.example.com", f"m{n}", to))
    parsed = EmailWebhookDLRReportResponse.from_dict({"results": found})
    assert parsed is not None and parsed.results is not None
    assert [r.status.group_name for r in parsed.results if r.status] == ["REJECTED", "UNDELIVERABLE", "DELIVERED"]
