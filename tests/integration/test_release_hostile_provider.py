"""An Infobip that answers its domain listing badly (the same page whatever `page` asks, pages that never end,
domain names no DNS would hold) never makes a release claim more than it did: the listing is bounded in calls,
and a listing that cannot be trusted fails the release (looked at), never reports it `not_listed`. Real HTTP to a
loopback server that plays the misbehaving provider."""

import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from martech_bridge.adapters.providers.base import ReleaseContext
from martech_bridge.adapters.providers.infobip import DOMAIN_PAGE_SIZE, Infobip
from martech_bridge.releases import FAILED, _release_per_domain

Pager = Callable[[int], list[dict[str, Any]]]


@pytest.fixture()
def hostile() -> Iterator[tuple[str, list[str], list[Pager]]]:
    """(base URL, the paths+queries it received, [the domain pager]) of a loopback Infobip whose domain listing
    the test sets; every suppression list answers empty, every DELETE 204."""
    seen: list[str] = []
    pager: list[Pager] = [lambda page: []]

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _answer(self, status: int, body: Any) -> None:
            data = b"" if body is None else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            seen.append(self.path)
            url = urlsplit(self.path)
            if url.path == "/email/1/suppressions/domains":
                page = int(parse_qs(url.query)["page"][0])
                self._answer(200, {"results": pager[0](page), "paging": {"page": page, "size": DOMAIN_PAGE_SIZE}})
            else:
                self._answer(200, {"results": [], "paging": {"page": 0, "size": 100}})

        def do_DELETE(self) -> None:  # noqa: N802
            seen.append(self.path)
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self._answer(204, None)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen, pager
    finally:
        server.shutdown()
        server.server_close()


def _domain(name: str) -> dict[str, Any]:
    return {"domainName": name, "dataAccess": "OWNER"}


def _release(base: str) -> tuple[str, dict[str, str]]:
    ctx = ReleaseContext(api_key="k-1234567890", base_url=base, sender_domain="example.com", timeout=5)
    return _release_per_domain(Infobip(), "taro@example.jp", ctx, time.monotonic() + 20)


def _listings(seen: list[str]) -> int:
    return sum(1 for p in seen if p.startswith("/email/1/suppressions/domains"))


def test_a_listing_that_repeats_its_page_stops_and_fails_the_release(
    hostile: tuple[str, list[str], list[Pager]],
) -> None:
    # Given an Infobip that answers every page with the same full page (it ignores `page`)
    base, seen, pager = hostile
    pager[0] = lambda page: [_domain(f"d{n:03}.example.com") for n in range(DOMAIN_PAGE_SIZE)]
    outcome, lists = _release(base)
    # Then the listing stops at the page that brought nothing new, and the release fails: the account may
    # hold domains that were never listed, so nobody may read it as "not listed anywhere"
    assert _listings(seen) == 2
    assert outcome == FAILED
    assert lists["sending domains"].startswith(FAILED)


def test_a_listing_that_never_ends_is_bounded_and_fails_the_release(
    hostile: tuple[str, list[str], list[Pager]],
) -> None:
    # Given an Infobip whose pages are always full and always new (a paging bug on its side)
    base, seen, pager = hostile
    pager[0] = lambda page: [_domain(f"p{page}-d{n:03}.example.com") for n in range(DOMAIN_PAGE_SIZE)]
    ctx = ReleaseContext(api_key="k-1234567890", base_url=base, sender_domain="example.com", timeout=5)
    # (a deadline too short to clear thousands of domains: only the listing's bound is looked at here)
    outcome, lists = _release_per_domain(Infobip(), "taro@example.jp", ctx, time.monotonic() + 3)
    from martech_bridge.adapters.providers.infobip import MAX_DOMAIN_PAGES

    assert _listings(seen) == MAX_DOMAIN_PAGES
    # Then the domains past the last page read are named as not looked at: never `not_listed`
    assert lists["sending domains"].startswith(FAILED)
    assert outcome in (FAILED, "pending")  # pending: the deadline passed before every domain was cleared


@pytest.mark.parametrize(
    "name",
    ["a" * 300 + ".example.com", "evil.example.com\r\nX-Injected: 1", "evil example.com", "evil.example.com\x00"],
)
def test_a_domain_name_no_dns_would_hold_makes_the_listing_unreadable(
    hostile: tuple[str, list[str], list[Pager]], name: str
) -> None:
    # Given a listing naming a domain too long for DNS, or with a line break, a space or a NUL in it
    base, seen, pager = hostile
    pager[0] = lambda page: [_domain("mail.example.com"), _domain(name)] if page == 0 else []
    outcome, lists = _release(base)
    # Then the listing is not trusted (it would put that text into the history, and into calls): the default
    # sender's domain is released and the release fails, so that it is looked at
    assert outcome == FAILED
    assert lists["sending domains"].startswith(f"{FAILED} (unreadable answer")
    assert not any(name in key for key in lists)


@pytest.fixture()
def cut_listing() -> Iterator[tuple[str, list[str]]]:
    """A loopback Infobip whose domain listing sends `200`, a Content-Length, half the body, then closes the
    connection (a reset mid-body); every other call answers as Infobip would for an empty account."""
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            seen.append(self.path)
            listing = urlsplit(self.path).path == "/email/1/suppressions/domains"
            found = [_domain("mail.example.com")] if listing else []
            body = json.dumps({"results": found, "paging": {"page": 0, "size": 100}}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if listing:
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(body)

        def do_DELETE(self) -> None:  # noqa: N802
            seen.append(self.path)
            self.send_response(204)
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def test_a_domain_listing_cut_off_mid_body_leaves_the_release_pending_not_failed(
    cut_listing: tuple[str, list[str]],
) -> None:
    # Given an Infobip whose listing's connection drops after the status line and half the body
    base, seen = cut_listing
    ctx = ReleaseContext(api_key="k-1234567890", base_url=base, sender_domain="example.com", timeout=2)
    outcome, lists = _release_per_domain(Infobip(), "taro@example.jp", ctx, time.monotonic() + 4)
    # Then that is a network failure, asked again while the deadline allows, and the release stays pending for
    # the check to repeat: never `failed` (which nothing retries) as though Infobip had answered garbage
    assert _listings(seen) >= 2
    assert (outcome, lists) == ("pending", {"sending domains": "pending"})
    assert not any(p.startswith("/email/1/suppressions?") for p in seen)


def test_a_listed_domain_name_with_url_characters_stays_one_query_value_and_one_body_field() -> None:
    # Given a listed domain whose name holds & = ? # / % + (no DNS name does; a hostile answer may)
    from martech_bridge.adapters.providers.base import SuppressionDomain
    from martech_bridge.adapters.providers.infobip import SUPPRESSION_TYPES

    name = "a.example.com&type=BOUNCE&emailAddress=x@y.jp?z=1#frag/../%2F+"
    every = frozenset(SUPPRESSION_TYPES)
    ctx = ReleaseContext(
        api_key="k-1234567890", base_url="http://127.0.0.1:9", domains=(SuppressionDomain(name, every, every),)
    )
    for step in Infobip().release_steps("taro+tag@example.jp", ctx):
        assert step.check is not None and step.remove is not None
        url = urlsplit(step.check.url)
        # Then each call names that domain, its own type and the address once each, and nothing else
        assert url.path == "/email/1/suppressions" and url.fragment == ""
        query = parse_qs(url.query)
        assert query["domainName"] == [name] and query["emailAddress"] == ["taro+tag@example.jp"]
        assert len(query["type"]) == 1 and query["type"][0] in SUPPRESSION_TYPES
        assert urlsplit(step.remove.url).path == "/email/1/suppressions"
        body = json.loads(step.remove.body or b"")
        assert body["suppressions"][0]["domainName"] == name
