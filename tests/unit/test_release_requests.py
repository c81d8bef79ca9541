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
from martech_bridge.adapters.providers.base import ReleaseContext, SuppressionDomain
from martech_bridge.adapters.providers.braze import Braze
from martech_bridge.adapters.providers.infobip import Infobip, read_suppression_domains
from martech_bridge.adapters.providers.sendgrid import SendGrid
from martech_bridge.adapters.targets.base import TargetResponse
from msgspec.structs import replace

from devkit.sandbox.base import Request
from devkit.sandbox.infobip import PERMISSIONS
from devkit.sandbox.infobip import Infobip as InfobipFake

TYPES = ("bounce", "complaint", "over_quota")

CTX = ReleaseContext(api_key="k-123456", base_url="https://api.example", sender_domain="mail.example.co.jp")
EMAIL = "taro+news@example.com"


def _sdk_get_suppressions(domain: str, kind: Any) -> tuple[str, str]:
    from infobip_api_client.api.email_api import EmailApi
    from infobip_api_client.api_client import ApiClient

    method, path, *_ = EmailApi(ApiClient())._get_suppressions_serialize(
        domain_name=domain,
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
    return method, path


def test_infobip_release_requests_are_what_infobips_own_client_builds() -> None:
    from infobip_api_client.models.email_delete_suppression_request import EmailDeleteSuppressionRequest
    from infobip_api_client.models.email_suppression_type import EmailSuppressionType

    every = frozenset(t.value for t in EmailSuppressionType)
    domains = (
        SuppressionDomain("mail.example.co.jp", every, every),
        SuppressionDomain("news.example.com", every, every),
    )
    steps = Infobip().release_steps(EMAIL, replace(CTX, domains=domains))
    # Every list of every domain the account manages: three types per sending domain
    assert [s.name for s in steps] == [f"{d.name} {t.value.lower()}" for d in domains for t in EmailSuppressionType]
    for step, (domain, kind) in zip(steps, [(d, t) for d in domains for t in EmailSuppressionType], strict=True):
        method, path = _sdk_get_suppressions(domain.name, kind)
        assert step.check is not None and step.remove is not None
        assert (step.check.method, step.check.url) == (method, CTX.base_url + path)
        assert step.remove.method == "DELETE" and step.remove.url == f"{CTX.base_url}/email/1/suppressions"
        body = json.loads(step.remove.body or b"")
        assert EmailDeleteSuppressionRequest.from_dict(body).to_dict() == body
        assert body["suppressions"] == [{"domainName": domain.name, "emailAddress": [EMAIL], "type": kind.value}]
        assert step.remove.headers["Authorization"] == "App k-123456"


def test_infobip_without_a_domain_listing_releases_the_default_senders_domain() -> None:
    steps = Infobip().release_steps(EMAIL, CTX)
    assert [s.name for s in steps] == [f"{CTX.sender_domain} {t}" for t in ("bounce", "complaint", "over_quota")]


def test_infobip_domain_listing_request_is_what_infobips_own_client_builds() -> None:
    from infobip_api_client.api.email_api import EmailApi
    from infobip_api_client.api_client import ApiClient

    request = Infobip().suppression_domains_request(CTX, 2)
    method, path, *_ = EmailApi(ApiClient())._get_domains_serialize(
        page=2, size=100, _request_auth=None, _content_type=None, _headers=None, _host_index=0
    )
    assert (request.method, request.url) == (method, CTX.base_url + path)
    assert request.headers["Authorization"] == "App k-123456"


def _answer(body: Any) -> TargetResponse:
    return TargetResponse(200, {}, json.dumps(body).encode())


def test_infobip_domain_permissions_decide_which_lists_are_read_and_which_deleted() -> None:
    listing = {
        "results": [
            {"domainName": "own.example.com", "dataAccess": "OWNER", **dict.fromkeys(PERMISSIONS, True)},
            {
                "domainName": "granted.example.com",
                "dataAccess": "GRANTED",
                **dict.fromkeys(PERMISSIONS, False),
                "readBounces": True,  # may see its bounces, delete none
                "deleteComplaints": True,  # may delete complaints without reading them
            },
        ],
        "paging": {"page": 0, "size": 100},
    }
    domains = read_suppression_domains(_answer(listing))
    assert domains is not None
    steps = {s.name: s for s in Infobip().release_steps(EMAIL, replace(CTX, domains=tuple(domains)))}
    assert all(steps[f"own.example.com {t}"].check and steps[f"own.example.com {t}"].remove for t in TYPES)
    bounce, complaint, over_quota = (steps[f"granted.example.com {t}"] for t in TYPES)
    assert bounce.check is not None and bounce.remove is None
    assert complaint.check is None and complaint.remove is not None
    assert over_quota.check is None and over_quota.remove is None


@pytest.mark.parametrize(
    "body", [{"results": "x"}, {"results": [{"dataAccess": "OWNER"}]}, [], {"results": [{"domainName": ""}]}]
)
def test_an_infobip_domain_listing_that_cannot_be_read_is_none_not_an_empty_account(body: Any) -> None:
    assert read_suppression_domains(_answer(body)) is None


def test_infobip_fakes_domain_listing_fits_infobips_model() -> None:
    from infobip_api_client.models.email_domain_info_page_response import EmailDomainInfoPageResponse

    fake = InfobipFake(["k"])
    fake.control("POST", "/suppressions", {"domainName": "d.example", "emailAddress": EMAIL, "type": "BOUNCE"})
    fake.control("POST", "/domains", {"domainName": "g.example", "deleteBounces": False})
    reply = fake.handle(Request("GET", "/email/1/suppressions/domains", {}, {"authorization": "App k"}, b""))
    page = EmailDomainInfoPageResponse.from_dict(reply.body)
    assert page is not None
    assert [(d.domain_name, d.data_access.value, d.delete_bounces) for d in page.results] == [
        ("d.example", "OWNER", True),
        ("g.example", "GRANTED", False),
    ]


def test_infobip_fakes_suppression_answer_fits_infobips_model() -> None:
    from infobip_api_client.models.email_suppression_info_page_response import EmailSuppressionInfoPageResponse

    fake = InfobipFake(["k"])
    fake.control("POST", "/suppressions", {"domainName": "d.example", "emailAddress": EMAIL, "type": "BOUNCE"})
    query = {"domainName": ["d.example"], "type": ["BOUNCE"], "emailAddress": [EMAIL]}
    reply = fake.handle(Request("GET", "/email/1/suppressions", query, {"authorization": "App k"}, b""))
    page = EmailSuppressionInfoPageResponse.from_dict(reply.body)
    assert page is not None and page.results and page.results[0].email_address == EMAIL


def test_infobip_fakes_refusals_are_infobips_api_error_body() -> None:
    from infobip_api_client.models.api_error import ApiError

    fake = InfobipFake(["k"])
    fake.control("POST", "/domains", {"domainName": "g.example", "readBounces": False})
    query = {"domainName": ["g.example"], "type": ["BOUNCE"], "emailAddress": [EMAIL]}
    reply = fake.handle(Request("GET", "/email/1/suppressions", query, {"authorization": "App k"}, b""))
    assert reply.status == 403 and ApiError.from_dict(reply.body) is not None
    # A domain that is not the account's is refused too (pessimistic: the docs list 403, not when)
    query = {"domainName": ["other.example"], "type": ["BOUNCE"], "emailAddress": [EMAIL]}
    reply = fake.handle(Request("GET", "/email/1/suppressions", query, {"authorization": "App k"}, b""))
    assert reply.status == 403


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


def test_a_release_over_many_domains_names_every_list_that_held_the_address_and_counts_the_rest() -> None:
    from martech_bridge.releases import MAX_LISTS_NAMED, _outcome, _summarised

    lists = {f"d{n}.example.com {t}": "not_listed" for n in range(40) for t in TYPES}
    lists["d7.example.com bounce"] = "removed"
    lists["d9.example.com complaint"] = "pending"
    short = _summarised(lists)
    assert short == {
        "d7.example.com bounce": "removed",
        "d9.example.com complaint": "pending",
        "118 other lists": "not_listed",
    }
    assert _outcome(short) == _outcome(lists) == "pending"  # counting never changes the outcome
    few = dict(list(lists.items())[:MAX_LISTS_NAMED])
    assert _summarised(few) == few  # a small account's entry names every list


def test_a_release_over_many_failing_domains_names_a_bounded_number_of_lists_and_keeps_its_outcome() -> None:
    # An account of 2,000 domains (long names), every list refused or unsettled: a history entry naming each
    # would pass DynamoDB's 400 KB item limit, so its write would fail on every check, for good
    from martech_bridge.releases import MAX_LISTS_NAMED, _outcome, _summarised

    name = "x" * 200
    lists = {f"{name}{n}.example.com {t}": "failed (HTTP 403)" for n in range(2000) for t in TYPES}
    lists[f"{name}7.example.com bounce"] = "removed"
    short = _summarised(lists)
    assert len(short) <= MAX_LISTS_NAMED + 3
    assert len(", ".join(f"{k} {v}" for k, v in short.items()).encode()) < 20_000
    assert _outcome(short) == _outcome(lists) == "failed"
    # every list is named or counted, and what was counted is named by its kind
    counted = {k: v for k, v in short.items() if k not in lists}
    assert sum(int(k.split()[0]) for k in counted) + len(short) - len(counted) == len(lists)
    assert set(counted.values()) == {"failed"}
    pending = {**lists, f"{name}1999.example.com over_quota": "pending"}
    assert _outcome(_summarised(pending)) == "pending"  # a pending list past the named ones still counts
    # as many pending as failed past the named ones: both kinds kept (counts alike never share a key)
    mixed = {f"d{n}.example.com {t}": "failed (HTTP 403)" for n in range(20) for t in TYPES}
    mixed.update({f"e{n}.example.com {t}": "pending" for n in range(20) for t in TYPES})
    mixed.update({f"f{n}.example.com {t}": "failed (HTTP 500)" for n in range(10) for t in TYPES})
    assert _outcome(_summarised(mixed)) == "pending"
    assert sorted(_summarised(mixed).values()).count("pending") == 1
    assert set(_summarised(mixed).values()) == {"failed (HTTP 403)", "failed", "pending"}
