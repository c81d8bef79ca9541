"""The sent-mail sink's records: one kintone record per recipient in one bulk call, bodies cut to what
kintone and a delivery record take, and `each` refused where it means nothing."""

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from martech_bridge.adapters.delivery_store import MAX_STORED_PAYLOAD_BYTES, payload_json
from martech_bridge.adapters.targets.kintone import KintoneTargetAdapter
from martech_bridge.config import parse_bridge_config
from martech_bridge.errors import ConfigurationError, InvalidRequest
from martech_bridge.models.mail import MailRequest, RecipientResult
from martech_bridge.sent_mail import payloads

KINTONE = {
    "type": "kintone",
    "base_url": "https://example.cybozu.com",
    "app": 11,
    "operation": "upsert",
    "api_tokens": ["tok"],
}
MAPPING = {
    "each": "recipients",
    "update_key": {"field": "message_id", "value": "message_id"},
    "record": {"email": "recipient", "subject": "subject", "body_text": "text", "body_html": "html"},
}


def sink(**extra: Any) -> Any:
    spec = {"name": "sent", "source": "sent_mail", "target": KINTONE, "mapping": MAPPING, **extra}
    return parse_bridge_config({"version": 1, "sinks": [spec]}).sinks[0]


def mail(n: int, **body: Any) -> tuple[MailRequest, list[RecipientResult]]:
    request = MailRequest.model_validate(
        {"to": [{"email": f"r{i}@example.com"} for i in range(n)], "subject": "件名", "text": "本文", **body}
    )
    results = [RecipientResult(email=f"r{i}@example.com", message_id=f"d_1.{i}", status="accepted") for i in range(n)]
    return request, results


def test_recipients_go_in_blocks_of_kintones_bulk_limit_each_an_upsert_by_message_id() -> None:
    request, results = mail(250)
    blocks = payloads(sink(), "d_1", "sendgrid", request, results, datetime(2026, 11, 30, 1, 2, 3, 456, UTC))
    assert [len(p["recipients"]) for _, p in blocks] == [100, 100, 50]
    assert [k for k, _ in blocks] == ["d_1#0", "d_1#1", "d_1#2"]
    assert blocks[0][1]["sent_at"] == "2026-11-30T01:02:03Z"
    built = KintoneTargetAdapter().build(sink(), blocks[0][1], lambda refs: tuple(refs), local_mode=False)
    body = json.loads(built.body or b"")
    assert (built.method, built.url) == ("PUT", "https://example.cybozu.com/k/v1/records.json")
    assert body["upsert"] is True and len(body["records"]) == 100
    assert body["records"][1] == {
        "updateKey": {"field": "message_id", "value": "d_1.1"},
        "record": {"email": {"value": "r1@example.com"}, "subject": {"value": "件名"}, "body_text": {"value": "本文"}},
    }


def test_html_is_kept_only_when_the_sink_asks_for_it() -> None:
    request, results = mail(1, html="<p>x</p>")
    ((_, without),) = payloads(sink(), "d_1", "sendgrid", request, results, datetime.now(UTC))
    ((_, with_html),) = payloads(sink(include_html=True), "d_1", "sendgrid", request, results, datetime.now(UTC))
    assert without["html"] is None and with_html["html"] == "<p>x</p>"


def test_bodies_are_cut_to_fit_kintone_and_the_delivery_record() -> None:
    request, results = mail(100, text="字" * 65_535, html="<p>" + "字" * 65_000 + "</p>")
    ((_, payload),) = payloads(sink(include_html=True), "d_1", "sendgrid", request, results, datetime.now(UTC))
    assert payload["truncated"] is True
    assert len(payload_json(payload).encode("utf-8")) <= MAX_STORED_PAYLOAD_BYTES
    assert request.text and request.text.startswith(payload["text"]) and len(payload["text"]) > 1000
    short, _ = mail(1, text="字" * 100)
    ((_, small),) = payloads(sink(max_body_chars=10), "d_1", "sendgrid", short, results[:1], datetime.now(UTC))
    assert small["text"] == "字" * 10 and small["truncated"] is True


def test_recipients_the_provider_did_not_take_are_left_out() -> None:
    request, results = mail(3)
    results[1] = RecipientResult(email="r1@example.com", message_id="d_1.1", status="suppressed")
    results[2] = RecipientResult(email="r2@example.com", message_id="d_1.2", status="failed")
    ((_, payload),) = payloads(sink(), "d_1", "sendgrid", request, results, datetime.now(UTC))
    assert [r["message_id"] for r in payload["recipients"]] == ["d_1.0"]


def test_each_is_refused_on_a_non_kintone_target_and_more_than_100_records_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="each"):
        parse_bridge_config(
            {
                "version": 1,
                "sinks": [
                    {
                        "name": "h",
                        "target": {"type": "http", "method": "POST", "url": "https://api.example.com/x"},
                        "mapping": {"each": "recipients"},
                    }
                ],
            }
        )
    payload = {"recipients": [{"message_id": f"m{i}"} for i in range(101)]}
    with pytest.raises(InvalidRequest, match="at most 100"):
        KintoneTargetAdapter().build(sink(), payload, lambda refs: tuple(refs), local_mode=False)


def test_an_event_filter_on_a_sent_mail_sink_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="event sinks only"):
        sink(filter={"events": ["delivered"]})


def test_a_recipient_sent_through_the_fallback_is_recorded_under_the_fallbacks_name() -> None:
    request, results = mail(2)
    results[1] = results[1].model_copy(update={"provider": "infobip"})  # failed over
    spec = sink(mapping={**MAPPING, "record": {**MAPPING["record"], "provider": "provider"}})
    ((_, payload),) = payloads(spec, "d_1", "sendgrid", request, results, datetime(2026, 11, 30, tzinfo=UTC))
    _, _, body = KintoneTargetAdapter()._bulk(spec, payload)
    assert [r["record"]["provider"]["value"] for r in body["records"]] == ["sendgrid", "infobip"]
