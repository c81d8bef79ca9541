"""The suppression releases' requests, checked against the vendors' own clients and models (test-only
dependencies): Infobip's infobip-api-python-client 6.0.0 (EmailApi.get_suppressions' query, the
EmailDeleteSuppressionRequest body, the EmailSuppressionInfoPageResponse answer) and SendGrid's
sendgrid-python client (the suppression endpoints' URLs); Braze publishes no Python model, so its requests are
checked against the request parameters of braze-inc/braze-docs' endpoint pages."""

import json
import re
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from martech_bridge.adapters.providers.base import ReleaseContext
from martech_bridge.adapters.providers.braze import Braze
from martech_bridge.adapters.providers.infobip import Infobip
from martech_bridge.adapters.providers.sendgrid import SendGrid

from devkit.sandbox.base import Request
from devkit.sandbox.infobip import Infobip as InfobipFake

CTX = ReleaseContext(api_key="k-123456", base_url="https://api.example", sender_domain="mail.example.co.jp")
EMAIL = "taro+news@example.com"


def test_infobip_release_requests_are_what_infobips_own_client_builds() -> None:
    from infobip_api_client.api.email_api import EmailApi
    from infobip_api_client.api_client import ApiClient
    from infobip_api_client.models.email_delete_suppression_request import EmailDeleteSuppressionRequest
    from infobip_api_client.models.email_suppression_type import EmailSuppressionType

    steps = Infobip().release_steps(EMAIL, CTX)
    assert [s.name for s in steps] == ["bounce", "complaint", "over_quota"]
    for step, kind in zip(steps, EmailSuppressionType, strict=True):
        method, path, *_ = EmailApi(ApiClient())._get_suppressions_serialize(
            domain_name=CTX.sender_domain,
            type=kind,
            email_address=EMAIL,
            recipient_domain=None,
            created_date_from=None,
            created_date_to=None,
            page=None,
            size=None,
            _request_auth=None,
            _content_type=None,
            _headers=None,
            _host_index=0,
        )
        assert step.check is not None
        assert (step.check.method, step.check.url) == (method, CTX.base_url + path)
        assert step.remove.method == "DELETE" and step.remove.url == f"{CTX.base_url}/email/1/suppressions"
        body = json.loads(step.remove.body or b"")
        assert EmailDeleteSuppressionRequest.from_dict(body).to_dict() == body
        assert step.remove.headers["Authorization"] == "App k-123456"


def test_infobip_fakes_suppression_answer_fits_infobips_model() -> None:
    from infobip_api_client.models.email_suppression_info_page_response import EmailSuppressionInfoPageResponse

    fake = InfobipFake(["k"])
    fake.control("POST", "/suppressions", {"domainName": "d.example", "emailAddress": EMAIL, "type": "BOUNCE"})
    query = {"domainName": ["d.example"], "type": ["BOUNCE"], "emailAddress": [EMAIL]}
    reply = fake.handle(Request("GET", "/email/1/suppressions", query, {"authorization": "App k"}, b""))
    page = EmailSuppressionInfoPageResponse.from_dict(reply.body)
    assert page is not None and page.results and page.results[0].email_address == EMAIL


def test_sendgrid_release_urls_are_the_ones_sendgrids_client_builds() -> None:
    from sendgrid import SendGridAPIClient

    client = SendGridAPIClient("k", host=CTX.base_url).client
    expected = {
        "bounces": client.suppression.bounces._(EMAIL),
        "blocks": client.suppression.blocks._(EMAIL),
        "spam_reports": client.suppression.spam_reports._(EMAIL),
        "invalid_emails": client.suppression.invalid_emails._(EMAIL),
        "global_unsubscribes": client.asm.suppressions._("global")._(EMAIL),
    }
    steps = SendGrid().release_steps(EMAIL, CTX)
    assert {s.name for s in steps} == set(expected)
    for step in steps:
        url = expected[step.name]._build_url(None)
        assert step.check is not None and step.check.method == "GET" and step.remove.method == "DELETE"
        for request in (step.check, step.remove):
            assert unquote(urlsplit(request.url).path) == urlsplit(url).path
            assert request.headers["Authorization"] == "Bearer k-123456"


@pytest.mark.parametrize("hostile", ["a/b@example.com", "a?b@example.com", "a#b@example.com"])
def test_sendgrid_release_urls_keep_the_address_in_one_path_segment(hostile: str) -> None:
    for step in SendGrid().release_steps(hostile, CTX):
        parts = urlsplit(step.remove.url)
        assert not parts.query and not parts.fragment
        assert unquote(parts.path.rsplit("/", 1)[1]) == hostile


# What braze-inc/braze-docs' endpoint pages (`_docs/_api/endpoints/email/<page>.md`) document for each call a
# Braze release makes: method, path, query parameters (required ones, and "one of" groups) or body fields.
BRAZE_DOCUMENTED = {
    "get_list_hard_bounces": {
        "method": "GET",
        "path": "/email/hard_bounces",
        "query": {"start_date", "end_date", "limit", "offset", "email"},
        "required": {"end_date"},  # "You must provide an end_date, and either an email or a start_date"
        "one_of": {"email", "start_date"},
    },
    "post_remove_hard_bounces": {"method": "POST", "path": "/email/bounce/remove", "body": {"email"}},
    "post_remove_spam": {"method": "POST", "path": "/email/spam/remove", "body": {"email"}},
    "get_query_unsubscribed_email_addresses": {
        "method": "GET",
        "path": "/email/unsubscribes",
        "query": {"start_date", "end_date", "limit", "offset", "sort_direction", "email"},
        "required": {"end_date"},  # "You must provide an end_date, as well as either an email or a start_date"
        "one_of": {"email", "start_date"},
    },
    "post_email_subscription_status": {
        "method": "POST",
        "path": "/email/status",
        "body": {"email", "subscription_state"},
        "subscription_state": {"subscribed", "unsubscribed", "opted_in"},
    },
}


def _documented(request: Any) -> str:
    """The docs page whose request this is; fails the test when the request breaks the page."""
    parts = urlsplit(request.url)
    (page,) = [
        name
        for name, spec in BRAZE_DOCUMENTED.items()
        if (spec["method"], f"{urlsplit(CTX.base_url).path}{spec['path']}") == (request.method, parts.path)
    ]
    spec = BRAZE_DOCUMENTED[page]
    assert request.headers["Authorization"] == f"Bearer {CTX.api_key}"  # every page: "Authorization: Bearer"
    if spec["method"] == "GET":
        query = parse_qs(parts.query)
        assert set(query) <= spec["query"] and spec["required"] <= set(query) and spec["one_of"] & set(query)
        assert all(len(v) == 1 for v in query.values())
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", query["end_date"][0])  # "String in YYYY-MM-DD format"
        assert request.body is None
    else:
        assert request.headers["Content-Type"] == "application/json"
        body = json.loads(request.body or b"")
        assert set(body) == spec["body"]
        # "String email address to modify, or an array of up to 50 email addresses to modify."
        assert isinstance(body["email"], str) or (isinstance(body["email"], list) and len(body["email"]) <= 50)
        if "subscription_state" in spec:
            assert body["subscription_state"] in spec["subscription_state"]
    return page


def test_braze_release_requests_are_the_ones_brazes_docs_describe() -> None:
    steps = Braze().release_steps(EMAIL, CTX)
    assert [s.name for s in steps] == ["hard_bounces", "spam", "email_subscription"]
    pages = [(_documented(s.check) if s.check else None, _documented(s.remove)) for s in steps]
    assert pages == [
        ("get_list_hard_bounces", "post_remove_hard_bounces"),
        (None, "post_remove_spam"),  # braze-docs document no query of the spam list
        ("get_query_unsubscribed_email_addresses", "post_email_subscription_status"),
    ]
    hard_bounces, spam, status = steps
    assert parse_qs(urlsplit(hard_bounces.check.url).query)["email"] == [EMAIL]  # type: ignore[union-attr]
    assert json.loads(hard_bounces.remove.body or b"") == {"email": EMAIL}
    assert json.loads(spam.remove.body or b"") == {"email": EMAIL}
    # Re-subscribing through the bridge is not an explicit opt-in: "subscribed", never "opted_in"
    assert json.loads(status.remove.body or b"") == {"email": EMAIL, "subscription_state": "subscribed"}
    assert spam.done == "cleared" and status.done == "subscribed"


@pytest.mark.parametrize("hostile", ["a&end_date=1999-01-01@example.com", "x#frag@example.com", "p%2Fq@example.com"])
def test_braze_release_keeps_the_address_in_one_query_parameter(hostile: str) -> None:
    for step in Braze().release_steps(hostile, CTX):
        if step.check is not None:
            query = parse_qs(urlsplit(step.check.url).query)
            assert query["email"] == [hostile] and len(query["end_date"]) == 1


def test_brazes_look_ups_read_an_unlisted_address_only_from_a_readable_empty_answer() -> None:
    from martech_bridge.adapters.providers.braze import _listed
    from martech_bridge.adapters.targets.base import TargetResponse

    def answer(body: bytes) -> TargetResponse:
        return TargetResponse(200, {"Content-Type": "application/json"}, body)

    assert _listed(answer(b'{"emails": [], "message": "success"}')) is False
    assert _listed(answer(b'{"emails": [{"email": "a@b.c", "hard_bounced_at": "2026-01-01T00:00:00Z"}]}')) is True
    assert _listed(answer(b"<html>gateway</html>")) is True  # unreadable: pessimistically listed
    assert _listed(answer(b'{"message": "success"}')) is True


def test_the_braze_fake_answers_the_release_requests_and_refuses_what_the_docs_require() -> None:
    from devkit.sandbox.braze import Braze as BrazeFake

    fake = BrazeFake(["k-123456"])
    fake.bounced(EMAIL)

    def call(req: Any) -> Any:
        parts = urlsplit(req.url)
        path = parts.path[len(urlsplit(CTX.base_url).path) :]
        headers = {k.lower(): v for k, v in req.headers.items()}
        return fake.handle(Request.build(req.method, path, parts.query, headers, req.body or b""))

    hard_bounces = Braze().release_steps(EMAIL, CTX)[0]
    found = call(hard_bounces.check)
    assert found.status == 200 and [e["email"] for e in found.body["emails"]] == [EMAIL]
    assert call(hard_bounces.remove).status == 201
    assert call(hard_bounces.check).body["emails"] == []
    no_end = Request.build("GET", "/email/hard_bounces", f"email={EMAIL}", {"authorization": "Bearer k-123456"}, b"")
    assert fake.handle(no_end).status == 400
