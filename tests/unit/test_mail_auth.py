"""SES's verdict on a received message: only its own, topmost Authentication-Results field counts, and it
authenticates a From domain by DMARC pass or a strictly aligned DKIM / SPF pass."""

import pytest
from martech_bridge.logic import mail_auth
from martech_bridge.logic import replies as reading

# A field as SES writes it (its shape in messages SES stores: SPF's properties as items of their own).
SES_PASS = (
    "amazonses.com;\r\n"
    " spf=pass (spfCheck: domain of example.jp designates 192.0.2.7 as permitted sender) client-ip=192.0.2.7;"
    " envelope-from=taro@example.jp; helo=mail.example.jp;\r\n"
    " dkim=pass header.i=@example.jp;\r\n"
    " dmarc=pass header.from=example.jp;"
)


def ses(field: str, *, spam: str = "PASS", virus: str = "PASS") -> list[tuple[str, str]]:
    return [
        ("Return-Path", "<taro@example.jp>"),
        ("Received", "from mail.example.jp by inbound-smtp.us-east-1.amazonaws.com"),
        ("X-SES-Spam-Verdict", spam),
        ("X-SES-Virus-Verdict", virus),
        ("Authentication-Results", field),
        ("X-SES-RECEIPT", "AEFBQUFB"),
    ]


def sender_headers(*extra: tuple[str, str]) -> list[tuple[str, str]]:
    return [*extra, ("From", "taro@example.jp"), ("Subject", "Re: x")]


def test_ses_pass_authenticates_the_from_domain_and_no_other() -> None:
    verdict = mail_auth.read(ses(SES_PASS) + sender_headers())
    assert verdict.found and verdict.spam == "PASS" and verdict.virus == "PASS"
    assert verdict.authenticates("example.jp") and verdict.authenticates("EXAMPLE.JP.")
    assert not verdict.authenticates("example.com")
    assert verdict.summary() == "spf=pass dkim=pass dmarc=pass"


def test_ses_properties_written_as_items_of_their_own_belong_to_the_spf_result() -> None:
    _, results = mail_auth.parse_field(SES_PASS)
    spf = next(r for r in results if r.method == "spf")
    assert spf.properties["envelope-from"] == "taro@example.jp" and spf.properties["helo"] == "mail.example.jp"
    assert [r.method for r in results] == ["spf", "dkim", "dmarc"]


def test_a_passing_field_the_sender_wrote_below_ses_failing_one_does_not_authenticate() -> None:
    forged = ("Authentication-Results", "amazonses.com; spf=pass smtp.mailfrom=example.jp; dkim=pass"
              " header.d=example.jp; dmarc=pass header.from=example.jp")  # fmt: skip
    failing = "amazonses.com; spf=softfail envelope-from=x@example.jp; dkim=none; dmarc=fail header.from=example.jp"
    verdict = mail_auth.read(ses(failing) + sender_headers(forged))
    assert verdict.found and not verdict.authenticates("example.jp")
    assert verdict.summary() == "spf=softfail dkim=none dmarc=fail"


def test_a_topmost_field_of_another_authserv_id_is_not_ses_and_none_below_it_counts() -> None:
    headers = [
        ("Authentication-Results", "mx.google.com; dmarc=pass header.from=example.jp"),
        ("Authentication-Results", SES_PASS),
        *sender_headers(),
    ]
    verdict = mail_auth.read(headers)
    assert not verdict.found and not verdict.authenticates("example.jp")


def test_without_any_authentication_results_nothing_is_trusted_not_even_verdicts() -> None:
    verdict = mail_auth.read(sender_headers(("X-SES-Spam-Verdict", "PASS")))
    assert not verdict.found and verdict.spam is None and not verdict.authenticates("example.jp")


def test_verdicts_count_only_above_ses_field() -> None:
    below = ("X-SES-Virus-Verdict", "PASS")
    verdict = mail_auth.read(ses(SES_PASS, spam="FAIL", virus="FAIL") + sender_headers(below))
    assert (verdict.spam, verdict.virus) == ("FAIL", "FAIL")
    odd = mail_auth.read(ses(SES_PASS, spam="pass; evil", virus="gray"))
    assert (odd.spam, odd.virus) == ("UNKNOWN", "GRAY")


def test_names_methods_and_results_are_case_insensitive_and_comments_are_dropped() -> None:
    field = (
        'AmazonSES.com (comment; dmarc=pass) ; DKIM=Pass (ok (nested; dmarc=pass)) Header.D="Example.JP"; DMARC=None'
    )
    verdict = mail_auth.read([("AUTHENTICATION-RESULTS", field)])
    assert verdict.found and verdict.summary() == "dkim=pass dmarc=none"
    assert verdict.authenticates("example.jp")  # no DMARC record: strictly aligned DKIM


def test_an_authserv_id_with_a_version_is_ses() -> None:
    assert mail_auth.read([("Authentication-Results", "amazonses.com 1; dmarc=pass")]).authenticates("a.example")


@pytest.mark.parametrize(
    ("results", "domain", "expected"),
    [
        ("dmarc=pass header.from=example.jp", "example.jp", True),
        ("dmarc=pass header.from=other.example", "example.jp", False),  # judged another From
        ("dmarc=fail header.from=example.jp; dkim=pass header.d=example.jp", "example.jp", False),  # DMARC final
        ("dmarc=none; dkim=pass header.i=@example.jp", "example.jp", True),
        ("dmarc=none; dkim=pass header.i=@mail.example.jp", "example.jp", False),  # relaxed: not guessed
        ("dmarc=none; dkim=pass header.d=attacker.example", "example.jp", False),
        ("dmarc=none; dkim=fail header.d=example.jp", "example.jp", False),
        ("dmarc=temperror; spf=pass smtp.mailfrom=bounce@example.jp", "example.jp", True),
        ("spf=pass smtp.mailfrom=bounce@esp.example", "example.jp", False),
        ("spf=neutral envelope-from=x@example.jp", "example.jp", False),
        ("none", "example.jp", False),
        ("dmarc=pass header.from=例え.jp", "xn--r8jz45g.jp", True),  # an IDN domain, as the sender is compared
        ("dmarc=none; dkim=pass header.i=@例え.jp", "xn--r8jz45g.jp", True),
        ("dkim=pass header.d=example.jp", "", False),
    ],
)
def test_what_authenticates_a_from_domain(results: str, domain: str, expected: bool) -> None:
    verdict = mail_auth.read([("Authentication-Results", f"amazonses.com; {results}")])
    assert verdict.authenticates(domain) is expected


@pytest.mark.parametrize(
    "garbage",
    ["", ";;;", "   ", "amazonses.com", "amazonses.com; =pass; dmarc", "amazonses.com; dmarc=pa\x00ss",
     '(unclosed comment amazonses.com; dmarc=pass', 'amazonses.com; dmarc="pass', "amazonses.com; " + "dkim=pass; " * 5000,
     "amazonses.com; dmarc=" + "p" * 100_000],
)  # fmt: skip
def test_garbage_never_raises_and_never_authenticates_more_than_it_says(garbage: str) -> None:
    verdict = mail_auth.read([("Authentication-Results", garbage)])
    assert not verdict.authenticates("example.jp") or "dkim=pass" in garbage
    assert len(verdict.results) <= mail_auth.MAX_RESULTS


def test_a_folded_field_in_a_parsed_message_is_read_from_the_top() -> None:
    raw = (
        b"X-SES-Spam-Verdict: PASS\r\nX-SES-Virus-Verdict: FAIL\r\n"
        b"Authentication-Results: amazonses.com;\r\n spf=fail envelope-from=x@example.jp;\r\n"
        b"\tdkim=pass\r\n header.i=@example.jp;\r\n dmarc=pass\r\n  header.from=example.jp;\r\n"
        b"Authentication-Results: amazonses.com; dmarc=pass header.from=forged.example\r\n"
        b"From: Taro <taro@example.jp>\r\nTo: reply+d_0123456789abcdef@reply.example.com\r\n\r\nbody\r\n"
    )
    parsed = reading.parse(raw)
    assert parsed.ses.found and parsed.ses.virus == "FAIL"
    assert parsed.ses.authenticates("example.jp") and not parsed.ses.authenticates("forged.example")
    assert parsed.ses.summary() == "spf=fail dkim=pass dmarc=pass"
