"""The suppression releases' requests, checked against the vendors' own clients and models (test-only
dependencies): Infobip's infobip-api-python-client 6.0.0 (EmailApi.get_suppressions' query, the
EmailDeleteSuppressionRequest body, the EmailSuppressionInfoPageResponse answer) and SendGrid's
sendgrid-python client (the suppression endpoints' URLs); Braze publishes no Python model."""

import json
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


def test_braze_release_sets_the_documented_subscription_state() -> None:
    (step,) = Braze().release_steps(EMAIL, CTX)
    assert (step.remove.method, step.remove.url) == ("POST", f"{CTX.base_url}/email/status")
    assert json.loads(step.remove.body or b"") == {"email": EMAIL, "subscription_state": "subscribed"}
    # Asked first, by the documented query (GET /email/unsubscribes?email=), the address in one parameter
    assert step.check is not None and step.check.method == "GET"
    parts = urlsplit(step.check.url)
    assert parts.path == urlsplit(f"{CTX.base_url}/email/unsubscribes").path
    assert parse_qs(parts.query) == {"email": [EMAIL]}
