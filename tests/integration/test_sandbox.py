"""The provider sandbox over real HTTP: each stand-in checks its auth, answers in its provider's dialect,
records what it got, and injects the faults the delivery tests need."""

import json
import time

import pytest
import requests

from devkit.sandbox.server import Sandbox

KINTONE_TOKEN = {"X-Cybozu-API-Token": "local-kintone-token"}


@pytest.fixture()
def box(sandbox: Sandbox) -> Sandbox:
    requests.post(f"{sandbox.url}/_sandbox/reset", timeout=5).raise_for_status()
    return sandbox


def kintone(
    box: Sandbox, method: str, resource: str, body: dict, headers: dict | None = None, guest: str | None = None
) -> requests.Response:
    prefix = f"/k/guest/{guest}/v1" if guest else "/k/v1"
    return requests.request(
        method,
        f"{box.base_url('kintone')}{prefix}/{resource}.json",
        json=body,
        headers=headers if headers is not None else KINTONE_TOKEN,
        timeout=5,
    )


def setup_app(box: Sandbox, app: int = 7, **spec: object) -> None:
    fields = {
        "email": {"type": "SINGLE_LINE_TEXT", "unique": True},
        "score": {"type": "NUMBER", "max": 150},
        "name": {"type": "SINGLE_LINE_TEXT", "required": True},
        "status": {"type": "SINGLE_LINE_TEXT"},
    }
    requests.put(
        f"{box.url}/_sandbox/kintone/apps/{app}", json={"fields": fields, **spec}, timeout=5
    ).raise_for_status()


# ------------------------------------------------------------------ kintone
def test_kintone_add_get_update_by_id_and_update_key(box: Sandbox) -> None:
    setup_app(box)
    added = kintone(
        box,
        "POST",
        "record",
        {"app": 7, "record": {"email": {"value": "taro@example.com"}, "name": {"value": "山田太郎"}}},
    )
    assert added.status_code == 200 and added.json() == {"id": "1", "revision": "1"}
    updated = kintone(
        box,
        "PUT",
        "record",
        {
            "app": 7,
            "updateKey": {"field": "email", "value": "taro@example.com"},
            "record": {"status": {"value": "opened"}},
        },
    )
    assert updated.json() == {"revision": "2"}
    got = kintone(box, "GET", "record", {}, headers=KINTONE_TOKEN)
    assert got.status_code == 400  # app is required
    got = requests.get(
        f"{box.base_url('kintone')}/k/v1/record.json", params={"app": 7, "id": 1}, headers=KINTONE_TOKEN, timeout=5
    ).json()["record"]
    assert (
        got["status"]["value"] == "opened" and got["name"]["value"] == "山田太郎" and got["$revision"]["value"] == "2"
    )
    assert kintone(box, "PUT", "record", {"app": 7, "id": 1, "record": {"score": {"value": "10"}}}).json() == {
        "revision": "3"
    }


def test_kintone_bulk_upsert_updates_and_inserts_all_or_nothing(box: Sandbox) -> None:
    setup_app(box, records=[{"email": {"value": "a@example.com"}, "name": {"value": "A"}}])
    rows = [
        {"updateKey": {"field": "email", "value": "a@example.com"}, "record": {"status": {"value": "x"}}},
        {"updateKey": {"field": "email", "value": "b@example.com"}, "record": {"name": {"value": "B"}}},
    ]
    response = kintone(box, "PUT", "records", {"app": 7, "upsert": True, "records": rows})
    assert [r["operation"] for r in response.json()["records"]] == ["UPDATE", "INSERT"]
    bad = rows + [{"id": 999, "record": {"score": {"value": "1000"}}}]
    failed = kintone(box, "PUT", "records", {"app": 7, "upsert": True, "records": bad})
    assert failed.status_code == 400 and failed.json()["code"] == "CB_VA01"
    state = requests.get(f"{box.url}/_sandbox/kintone/apps/7", timeout=5).json()
    assert len(state["records"]) == 2  # the failed bulk call changed nothing


def test_kintone_refuses_text_longer_than_its_limits(box: Sandbox) -> None:
    setup_app(box)
    too_long_key = kintone(
        box, "POST", "record", {"app": 7, "record": {"email": {"value": "a" * 65}, "name": {"value": "A"}}}
    )
    assert too_long_key.status_code == 400 and "record.email.value" in too_long_key.json()["errors"]
    fits = kintone(
        box, "POST", "record", {"app": 7, "record": {"email": {"value": "a" * 64}, "name": {"value": "あ" * 65_535}}}
    )
    assert fits.status_code == 200
    too_long = kintone(box, "POST", "record", {"app": 7, "record": {"name": {"value": "あ" * 65_536}}})
    assert too_long.status_code == 400 and too_long.json()["code"] == "CB_VA01"


def test_kintone_errors_are_kintones_own(box: Sandbox) -> None:
    setup_app(box, readonly_tokens=["viewer-token"])
    missing = kintone(box, "PUT", "record", {"app": 7, "id": 4444, "record": {}})
    assert missing.status_code == 404 and missing.json()["code"] == "GAIA_RE01"
    assert missing.json()["message"] == "The specified record (ID: 4444) is not found."
    invalid = kintone(box, "POST", "record", {"app": 7, "record": {"score": {"value": "200"}}})
    body = invalid.json()
    assert invalid.status_code == 400 and body["code"] == "CB_VA01" and body["id"]
    assert body["errors"]["record.score.value"] == {"messages": ["The value must be 150 or less."]}
    assert body["errors"]["record.name.value"] == {"messages": ["Required."]}
    kintone(box, "POST", "record", {"app": 7, "record": {"name": {"value": "x"}}})
    stale = kintone(box, "PUT", "record", {"app": 7, "id": 1, "revision": 5, "record": {}})
    assert stale.status_code == 409 and stale.json()["code"] == "GAIA_CO02"
    no_upsert = kintone(box, "PUT", "record", {"app": 7, "id": 1, "upsert": True})
    assert no_upsert.status_code == 400
    viewer = kintone(
        box, "PUT", "record", {"app": 7, "id": 1, "record": {}}, headers={"X-Cybozu-API-Token": "viewer-token"}
    )
    assert viewer.status_code == 403 and viewer.json()["code"] == "CB_NO02"
    wrong = kintone(box, "PUT", "record", {"app": 7, "id": 1}, headers={"X-Cybozu-API-Token": "nope"})
    assert wrong.status_code == 401 and wrong.json()["code"] == "GAIA_IA02"
    too_many = kintone(
        box,
        "PUT",
        "record",
        {"app": 7, "id": 1},
        headers={"X-Cybozu-API-Token": ",".join(["nope"] * 9 + ["local-kintone-token"])},
    )
    assert too_many.status_code == 400


def test_kintone_guest_space_comma_joined_tokens_and_limits_headers(box: Sandbox) -> None:
    response = kintone(
        box,
        "POST",
        "record",
        {"app": 9, "record": {"x": {"value": "1"}}},
        headers={"X-Cybozu-API-Token": "other-app-token,local-kintone-token-2"},
        guest="3",
    )
    assert response.status_code == 200 and response.headers["X-ConcurrencyLimit-Limit"] == "100"


def test_kintone_basic_auth_for_ip_restricted_domains() -> None:
    box = Sandbox(port=0, kintone_basic_auth=("basic-user", "basic-pass")).start()
    try:
        url = f"{box.base_url('kintone')}/k/v1/record.json"
        body = {"app": 1, "record": {}}
        assert requests.post(url, json=body, headers=KINTONE_TOKEN, timeout=5).status_code == 401
        ok = requests.post(url, json=body, headers=KINTONE_TOKEN, auth=("basic-user", "basic-pass"), timeout=5)
        assert ok.status_code == 200
    finally:
        box.stop()


# ------------------------------------------------------------------ SendGrid
MAIL = {
    "personalizations": [{"to": [{"email": "taro@example.com"}], "custom_args": {"dispatch_id": "d-1"}}],
    "from": {"email": "no-reply@example.co.jp"},
    "subject": "こんにちは",
    "content": [{"type": "text/plain", "value": "hi"}],
}


def sendgrid(box: Sandbox, body: dict, key: str | None = "SG.local-sandbox-key") -> requests.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return requests.post(f"{box.base_url('sendgrid')}/v3/mail/send", json=body, headers=headers, timeout=5)


def test_sendgrid_accepts_with_message_id(box: Sandbox) -> None:
    response = sendgrid(box, MAIL)
    assert response.status_code == 202 and response.content == b"" and len(response.headers["X-Message-Id"]) == 22
    sent = requests.get(f"{box.url}/_sandbox/sendgrid/sent", timeout=5).json()
    assert sent[0]["request"]["personalizations"][0]["custom_args"] == {"dispatch_id": "d-1"}


def test_sendgrid_sandbox_mode_is_200_and_sends_nothing(box: Sandbox) -> None:
    response = sendgrid(box, {**MAIL, "mail_settings": {"sandbox_mode": {"enable": True}}})
    assert response.status_code == 200 and "X-Message-Id" not in response.headers
    assert requests.get(f"{box.url}/_sandbox/sendgrid/sent", timeout=5).json() == []


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"personalizations": []}, "personalizations"),
        ({"from": {}}, "from.email"),
        ({"categories": [str(i) for i in range(11)]}, "categories"),
        (
            {"personalizations": [{"to": [{"email": "a@b.co"}], "custom_args": {"n": 1}}]},
            "personalizations.0.custom_args",
        ),
        ({"content": []}, "content"),
        ({"mail_settings": {"sandbox_mode": {"enable": "true"}}}, "mail_settings.sandbox_mode.enable"),
        ({"categories": ["注文確認"]}, "categories"),
        ({"attachments": [{"content": "eA==", "filename": "a;b.pdf"}]}, "attachments.0.filename"),
        ({"attachments": [{"content": "eA==", "filename": "a,b.pdf"}]}, "attachments.0.filename"),
        ({"attachments": [{"content": "eA==", "filename": "a\r\nb.pdf"}]}, "attachments.0.filename"),
        ({"attachments": [{"content": "eA==", "filename": "a.pdf", "type": "text/plain;x"}]}, "attachments.0.type"),
        (
            {"attachments": [{"content": "eA==", "filename": "a.png", "content_id": "logo;1"}]},
            "attachments.0.content_id",
        ),
    ],
)
def test_sendgrid_validation_errors(box: Sandbox, change: dict, field: str) -> None:
    response = sendgrid(box, {**MAIL, **change})
    assert response.status_code == 400 and response.json()["errors"][0]["field"] == field


def test_sendgrid_auth(box: Sandbox) -> None:
    assert sendgrid(box, MAIL, key=None).json() == {
        "errors": [
            {
                "message": "authorization required",
                "field": None,
                "help": "http://sendgrid.com/docs/API_Reference/Web_API_v3/Mail/errors.html",
            }
        ]
    }
    assert sendgrid(box, MAIL, key="SG.wrong").status_code == 401


# ------------------------------------------------------------------ Braze
def braze(
    box: Sandbox, body: dict, campaign: str = "4f1c1b62-6b1e-4a8e-9d0c-3c2f5e9a7b10", key: str = "local-braze-key"
) -> requests.Response:
    return requests.post(
        f"{box.base_url('braze')}/transactional/v1/campaigns/{campaign}/send",
        json=body,
        headers={"Authorization": f"Bearer {key}"},
        timeout=5,
    )


def test_braze_answers_a_repeated_external_send_id_with_the_queued_error(box: Sandbox) -> None:
    body = {"external_send_id": "bXNnXzAx+/=", "recipient": {"external_user_id": "user_8842"}}
    first, second = braze(box, body), braze(box, body)
    assert first.status_code == 200 and first.json()["metadata"]["external_send_id"] == "bXNnXzAx+/="
    # Braze's troubleshooting table, verbatim (two spaces); no dispatch_id, and no second send.
    assert second.status_code == 400
    assert second.json() == {"message": "The external reference has been queued.  Please retry to obtain send_id."}
    assert len(requests.get(f"{box.url}/_sandbox/braze/sent", timeout=5).json()) == 1


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {"recipient": {"external_user_id": "u", "user_alias": {"alias_name": "a", "alias_label": "l"}}},
            "exactly one",
        ),
        ({"recipient": {}}, "exactly one"),
        ({"external_send_id": "has space", "recipient": {"external_user_id": "u"}}, "Base64 compatible"),
        ({"recipient": {"external_user_id": "u"}, "trigger_properties": {"x": "y" * 52000}}, "50 KB"),
    ],
)
def test_braze_rejects_bad_requests(box: Sandbox, body: dict, message: str) -> None:
    response = braze(box, body)
    assert response.status_code == 400 and message in response.json()["message"]


def test_braze_campaign_states_and_auth(box: Sandbox) -> None:
    requests.put(f"{box.url}/_sandbox/braze/campaigns/paused-one", json={"state": "paused"}, timeout=5)
    assert "paused" in braze(box, {"recipient": {"external_user_id": "u"}}, campaign="paused-one").json()["message"]
    assert braze(box, {}, key="wrong").json() == {"message": "Error authenticating credentials"}


def _braze_send(box: Sandbox, email: str, user: str = "u-1") -> dict:
    body = {"recipient": {"external_user_id": user, "attributes": {"email": email}}}
    answer = braze(box, body)
    assert answer.status_code == 200, answer.text  # Braze names no synchronous refusal of an address
    (sent,) = [
        s
        for s in requests.get(f"{box.url}/_sandbox/braze/sent", timeout=5).json()
        if s["dispatch_id"] == answer.json()["dispatch_id"]
    ]
    return sent


def _braze_lists(box: Sandbox) -> dict:
    return requests.get(f"{box.url}/_sandbox/braze/suppressions", timeout=5).json()


def _braze_email_call(box: Sandbox, method: str, path: str, **kwargs: object) -> requests.Response:
    return requests.request(
        method,
        f"{box.base_url('braze')}{path}",
        headers={"Authorization": "Bearer local-braze-key"},
        timeout=5,
        **kwargs,
    )


def test_braze_marks_a_hard_bounce_and_drops_mail_to_the_address_until_it_is_removed(box: Sandbox) -> None:
    email = "gone@example.com"
    requests.post(f"{box.url}/_sandbox/braze/mailboxes", json={"email": email, "outcome": "bounce"}, timeout=5)
    # A send to a mailbox that does not exist bounces, and Braze marks the address invalid
    assert _braze_send(box, email)["fate"] == "bounce"
    assert _braze_lists(box)["hard_bounces"] == [email]
    found = _braze_email_call(box, "GET", "/email/hard_bounces", params={"email": email, "end_date": "2099-01-01"})
    assert found.status_code == 200 and [e["email"] for e in found.json()["emails"]] == [email]
    # Braze "will not attempt to send any further emails to that email address", even once the mailbox works
    requests.post(f"{box.url}/_sandbox/braze/mailboxes", json={"email": email, "outcome": "deliver"}, timeout=5)
    assert _braze_send(box, email)["fate"] == "dropped:hard_bounces"
    # A user whose profile holds the address is dropped too, when a later send names no address
    answer = braze(box, {"recipient": {"external_user_id": "u-1"}})
    assert answer.status_code == 200
    assert requests.get(f"{box.url}/_sandbox/braze/sent", timeout=5).json()[-1]["fate"] == "dropped:hard_bounces"
    # Until the address is taken off the list
    removed = _braze_email_call(box, "POST", "/email/bounce/remove", json={"email": email})
    assert removed.status_code == 201 and removed.json() == {"message": "success"}
    assert _braze_lists(box)["hard_bounces"] == []
    assert _braze_send(box, email)["fate"] == "delivered"


def test_braze_drops_mail_to_a_spam_marked_address_but_not_to_an_unsubscribed_one(box: Sandbox) -> None:
    requests.post(
        f"{box.url}/_sandbox/braze/suppressions", json={"list": "spam", "email": "spam@example.com"}, timeout=5
    )
    requests.post(
        f"{box.url}/_sandbox/braze/email_status",
        json={"email": "out@example.com", "subscription_state": "unsubscribed"},
        timeout=5,
    )
    assert _braze_send(box, "spam@example.com")["fate"] == "dropped:spam"  # pessimistic (see the fake)
    assert _braze_send(box, "out@example.com", user="u-2")["fate"] == "delivered"  # transactional: all users
    assert _braze_email_call(box, "POST", "/email/spam/remove", json={"email": ["spam@example.com"]}).status_code == 201
    assert _braze_send(box, "spam@example.com")["fate"] == "delivered"


@pytest.mark.parametrize(
    ("method", "path", "kwargs"),
    [
        ("GET", "/email/hard_bounces", {"params": {"email": "a@example.com"}}),  # no end_date
        ("GET", "/email/unsubscribes", {"params": {"email": "a@example.com"}}),  # no end_date
        ("GET", "/email/hard_bounces", {"params": {"end_date": "2099-01-01"}}),  # neither email nor start_date
        ("POST", "/email/bounce/remove", {"json": {"email": [f"a{i}@example.com" for i in range(51)]}}),
        ("POST", "/email/spam/remove", {"json": {"emails": "a@example.com"}}),
        ("POST", "/email/spam/remove", {"data": b"{not json"}),
    ],
)
def test_braze_email_endpoints_refuse_what_their_pages_do_not_allow(
    box: Sandbox, method: str, path: str, kwargs: dict
) -> None:
    assert _braze_email_call(box, method, path, **kwargs).status_code == 400


def test_braze_postbacks_follow_each_sends_fate(box: Sandbox) -> None:
    from devkit.sandbox.callbacks import EventCallbacks

    posted = EventCallbacks({"braze": "http://127.0.0.1:9/events/braze"})  # nothing listens: posts are recorded
    box.callbacks = posted
    try:
        requests.post(
            f"{box.url}/_sandbox/braze/mailboxes", json={"email": "b@example.com", "outcome": "bounce"}, timeout=5
        )
        bounced = _braze_send(box, "b@example.com")["dispatch_id"]
        dropped = _braze_send(box, "b@example.com", user="u-3")["dispatch_id"]
        delivered = _braze_send(box, "ok@example.com", user="u-4")["dispatch_id"]
        deadline = time.monotonic() + 10
        while len(posted.posted) < 5 and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        box.callbacks = None
    by_dispatch: dict[str, dict[str, dict]] = {}
    for post in posted.posted:
        by_dispatch.setdefault(post["events"]["dispatch_id"], {})[post["events"]["status"]] = post["events"]["metadata"]
    assert set(by_dispatch[bounced]) == {"processed", "bounced"}
    assert by_dispatch[bounced]["bounced"]["reason"].startswith("550 5.1.1")
    assert by_dispatch[dropped] == {"aborted": by_dispatch[dropped]["aborted"]}
    assert by_dispatch[dropped]["aborted"]["reason"] == "User not emailable"
    assert set(by_dispatch[delivered]) == {"processed", "delivered"}


# ------------------------------------------------------------------ Infobip
def test_infobip_v3_multipart_many_recipients_and_attachment(box: Sandbox) -> None:
    fields = [
        ("from", "Example Shop <no-reply@example.co.jp>"),
        ("to", "taro@example.com"),
        ("to", json.dumps({"to": "hanako@example.net", "messageId": "m-hanako"})),
        ("subject", "ご注文ありがとうございます"),
        ("html", "<p>ok</p>"),
        ("bulkId", "bulk-1"),
        ("notifyUrl", "http://127.0.0.1:3000/events/infobip?token=t"),
        ("callbackData", '{"d":"1"}'),
    ]
    response = requests.post(
        f"{box.base_url('infobip')}/email/3/send",
        data=fields,
        files={"attachment": ("invoice.pdf", b"%PDF-1.4 fake", "application/pdf")},
        headers={"Authorization": "App local-infobip-key"},
        timeout=5,
    )
    body = response.json()
    assert response.status_code == 200 and body["bulkId"] == "bulk-1"
    assert [(m["to"], m["status"]["name"]) for m in body["messages"]] == [
        ("taro@example.com", "PENDING_ACCEPTED"),
        ("hanako@example.net", "PENDING_ACCEPTED"),
    ]
    # v3 documents no messageId inside `to`: Infobip ignores it and mints its own.
    assert body["messages"][1]["messageId"] != "m-hanako" and body["messages"][1]["messageId"]
    sent = requests.get(f"{box.url}/_sandbox/infobip/sent", timeout=5).json()[0]
    assert sent["fields"]["attachment"] == [{"filename": "invoice.pdf", "size": 13}]
    assert sent["fields"]["subject"] == ["ご注文ありがとうございます"]


def test_infobip_errors(box: Sandbox) -> None:
    url = f"{box.base_url('infobip')}/email/3/send"
    denied = requests.post(url, data={"to": "a@b.co"}, headers={"Authorization": "App wrong"}, timeout=5)
    assert (
        denied.status_code == 401 and denied.json()["requestError"]["serviceException"]["messageId"] == "UNAUTHORIZED"
    )
    bad = requests.post(
        url, files={"subject": (None, "s")}, headers={"Authorization": "App local-infobip-key"}, timeout=5
    )
    errors = bad.json()["requestError"]["serviceException"]["validationErrors"]
    assert bad.status_code == 400 and errors["to"] == ["must not be empty"]


# ------------------------------------------------------------------ KARTE
def test_karte_track_event(box: Sandbox) -> None:
    url = f"{box.base_url('karte')}/v2/track/event/write"
    event = {"keys": {"user_id": "user_8842"}, "event": {"event_name": "_sendgrid_bounce", "values": {}}}
    assert (
        requests.post(url, json=event, headers={"Authorization": "Bearer local-karte-token"}, timeout=5).status_code
        == 200
    )
    assert (
        requests.post(
            url, json={"keys": {}}, headers={"Authorization": "Bearer local-karte-token"}, timeout=5
        ).status_code
        == 400
    )
    assert requests.post(url, json=event, headers={"Authorization": "Bearer x"}, timeout=5).status_code == 401


# ------------------------------------------------------------------ faults and recording
def fault(box: Sandbox, provider: str, **spec: object) -> None:
    requests.post(f"{box.url}/_sandbox/{provider}/faults", json=spec, timeout=5).raise_for_status()


def test_status_fault_with_retry_after_for_n_calls_then_normal(box: Sandbox) -> None:
    fault(box, "sendgrid", count=2, status=429, retry_after=3)
    first, second, third = (sendgrid(box, MAIL) for _ in range(3))
    assert (first.status_code, second.status_code, third.status_code) == (429, 429, 202)
    # SendGrid paces a 429 with X-RateLimit-Reset (epoch seconds) and sends no Retry-After.
    assert "Retry-After" not in first.headers and first.headers["X-RateLimit-Remaining"] == "0"
    assert 2 <= int(first.headers["X-RateLimit-Reset"]) - time.time() <= 4
    assert first.json() == {"errors": [{"field": None, "message": "too many requests"}]}
    recorded = requests.get(f"{box.url}/_sandbox/sendgrid/requests", timeout=5).json()
    assert [r["fault"] for r in recorded] == ["429", "429", None]
    assert requests.get(f"{box.url}/_sandbox/sendgrid/sent", timeout=5).json()[0]["x_message_id"]
    assert len(requests.get(f"{box.url}/_sandbox/sendgrid/sent", timeout=5).json()) == 1  # faulted calls sent nothing


def test_delay_past_the_client_timeout_is_ambiguous(box: Sandbox) -> None:
    fault(box, "sendgrid", delay=1.5)
    started = time.monotonic()
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.post(
            f"{box.base_url('sendgrid')}/v3/mail/send",
            json=MAIL,
            headers={"Authorization": "Bearer SG.local-sandbox-key"},
            timeout=0.5,
        )
    assert time.monotonic() - started < 1.4
    # The provider did carry the call out: exactly the case a blind resend would duplicate.
    assert len(requests.get(f"{box.url}/_sandbox/sendgrid/sent", timeout=5).json()) == 1


def test_dropped_connection(box: Sandbox) -> None:
    fault(box, "kintone", drop=True)
    with pytest.raises(requests.exceptions.ConnectionError):
        kintone(box, "POST", "record", {"app": 1, "record": {}})
    assert kintone(box, "POST", "record", {"app": 1, "record": {}}).status_code == 200


def test_kintone_shaped_429(box: Sandbox) -> None:
    fault(box, "kintone", status=429, retry_after=1)
    response = kintone(box, "POST", "record", {"app": 1, "record": {}})
    assert response.status_code == 429 and response.json()["code"] == "GAIA_TO04"


@pytest.mark.parametrize("spec", [{"count": 0, "status": 500}, {"count": 1}, {"status": 500, "colour": "red"}, [1]])
def test_bad_fault_specs_are_refused(box: Sandbox, spec: object) -> None:
    response = requests.post(f"{box.url}/_sandbox/sendgrid/faults", json=spec, timeout=5)
    assert response.status_code == 400


def test_sendgrid_refuses_non_ascii_categories_with_its_text(box: Sandbox) -> None:
    response = sendgrid(box, {**MAIL, "categories": ["注文確認"]})
    assert response.json()["errors"][0]["message"] == "Categories can not contain non-ASCII characters."


def test_braze_429_carries_its_rate_limit_headers(box: Sandbox) -> None:
    fault(box, "braze", status=429, retry_after=5)
    response = braze(box, {"recipient": {"external_user_id": "u"}})
    assert response.status_code == 429 and "Retry-After" not in response.headers
    assert 4 <= int(response.headers["X-RateLimit-Reset"]) - time.time() <= 6


def test_infobip_429_is_the_newer_e429_body(box: Sandbox) -> None:
    fault(box, "infobip", status=429)
    response = infobip_v4(box, {})
    assert response.status_code == 429 and response.json()["errorCode"] == "E429"


def infobip_v4(box: Sandbox, body: object) -> requests.Response:
    return requests.post(
        f"{box.base_url('infobip')}/email/4/messages",
        json=body,
        headers={"Authorization": "App local-infobip-key"},
        timeout=5,
    )


V4 = {
    "messages": [
        {
            "sender": "Shop <shop@example.co.jp>",
            "destinations": [
                {"to": [{"destination": "taro@example.com", "messageId": "d_1.0"}, {"destination": "h@example.net"}]}
            ],
            "content": {"subject": "s", "text": "t"},
        }
    ],
    "options": {"schedule": {"bulkId": "d_1"}},
}


def test_infobip_v4_keeps_our_ids_and_answers_with_destination(box: Sandbox) -> None:
    response = infobip_v4(box, V4)
    body = response.json()
    assert response.status_code == 200 and body["bulkId"] == "d_1"
    first, second = body["messages"]
    assert (first["messageId"], first["destination"], first["status"]["groupName"]) == (
        "d_1.0",
        "taro@example.com",
        "PENDING",
    )
    assert second["destination"] == "h@example.net" and second["messageId"]  # minted when not given


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"bulkId": "top-level"}, "bulkId"),  # v4 has no top-level bulkId
        ({"messages": []}, "messages"),
        ({"options": {"schedule": {"bulkId": "x" * 101}}}, "options.schedule.bulkId"),
        (
            {
                "messages": [
                    {**V4["messages"][0], "destinations": [{"to": [{"destination": "a@b.co", "messageId": "x" * 201}]}]}
                ]
            },
            "messages[0].destinations[0].to[0].messageId",
        ),
        (
            {
                "messages": [
                    {
                        **V4["messages"][0],
                        "destinations": [{"to": [{"destination": "a@b.co", "placeholders": {"a": 1}}]}],
                    }
                ]
            },
            "messages[0].destinations[0].to[0].placeholders",
        ),
        (
            {
                "messages": [
                    {
                        **V4["messages"][0],
                        "content": {
                            "subject": "s",
                            "text": "t",
                            "attachments": [{"type": "binary", "content": "eA=="}],
                        },
                    }
                ]
            },
            "messages[0].content.attachments[0].contentType",
        ),
    ],
)
def test_infobip_v4_refuses_what_its_model_refuses(box: Sandbox, change: dict, field: str) -> None:
    response = infobip_v4(box, {**V4, **change})
    assert response.status_code == 400, response.text
    assert field in response.json()["requestError"]["serviceException"]["validationErrors"]
