"""Reading a reply: charsets and transfer encodings Japanese mail uses, attachments listed, the history each
common client quotes cut off, the reply+<dispatch id>@ token and referenced ids found."""

from email.message import EmailMessage

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from martech_bridge.logic.replies import parse, strip_quoted


def test_quoted_printable_utf8_with_an_html_alternative() -> None:
    message = EmailMessage()
    message["From"] = "=?UTF-8?B?5bGx55Sw?= <Taro@Example.com>"
    message["To"] = "Reply+d_0123456789abcdef01234567@reply.example.com, other@example.com"
    message["Subject"] = "=?UTF-8?Q?Re:_=E3=81=94=E6=B3=A8=E6=96=87?="
    message["In-Reply-To"] = "<abc.filter@ismtpd.sendgrid.net>"
    message["References"] = "<first@x> <abc.filter@ismtpd.sendgrid.net>"
    message.set_content("ありがとうございます。\n", charset="utf-8", cte="quoted-printable")
    message.add_alternative("<p>ありがとうございます。</p>", subtype="html")
    raw = message.as_bytes()
    assert b"=E3=81=82" in raw  # quoted-printable on the wire
    reply = parse(raw)
    assert reply.sender == "taro@example.com" and reply.sender_name == "山田"
    assert reply.subject == "Re: ご注文"
    assert reply.text == "ありがとうございます。\n" and reply.html == "<p>ありがとうございます。</p>\n"
    assert reply.reply_tokens() == ["d_0123456789abcdef01234567"]
    assert reply.referenced_ids() == ["abc.filter@ismtpd.sendgrid.net", "first@x"]
    assert reply.problems == []


@pytest.mark.parametrize("charset", ["iso-2022-jp", "shift_jis", "euc-jp"])
def test_japanese_charsets_are_decoded(charset: str) -> None:
    raw = (
        f"From: a@example.com\r\nContent-Type: text/plain; charset={charset}\r\n\r\n".encode()
        + "納期を教えてください。".encode(charset)
    )
    assert parse(raw).text == "納期を教えてください。"


def test_attachments_are_listed_by_name_type_and_size_and_an_html_only_reply_has_text() -> None:
    message = EmailMessage()
    message["From"] = "a@example.com"
    message.add_alternative("<div>見積書を<br>お送りします</div><script>x()</script>", subtype="html")
    message.add_attachment(b"\x89PNG....", maintype="image", subtype="png", filename="図.png")
    reply = parse(message.as_bytes())
    assert [a.describe() for a in reply.attachments] == ["図.png (image/png, 8 bytes)"]
    assert reply.text.strip() == "見積書を\nお送りします"


def test_an_unknown_charset_is_read_as_utf8_and_noted() -> None:
    raw = b"From: a@example.com\r\nContent-Type: text/plain; charset=x-no-such\r\n\r\n\xe3\x81\x82\xff"
    reply = parse(raw)
    assert reply.text.startswith("あ") and any("read as UTF-8" in p for p in reply.problems)


@pytest.mark.parametrize(
    "history",
    [
        "On Mon, Nov 30, 2026 at 10:00 AM Shop <no-reply@mail.example.co.jp> wrote:\n> old",
        "On Mon, Nov 30, 2026 at 10:00 AM Shop <no-reply@mail.example.co.jp>\nwrote:\n> old",
        "-----Original Message-----\nFrom: Shop\nSent: Monday\n\nold",
        "----- Original Message -----\nold",
        "-----元のメッセージ-----\n差出人: ショップ\nold",
        "2026年11月30日(月) 10:00 ショップ <no-reply@mail.example.co.jp>:\n> old",
        "ショップ <no-reply@mail.example.co.jp> のメッセージ:\n> old",
        "________________________________\n差出人: ショップ <no-reply@mail.example.co.jp>\nold",
    ],
    ids=[
        "gmail-en",
        "gmail-en-wrapped",
        "outlook",
        "outlook-dashes",
        "outlook-ja",
        "gmail-ja",
        "outlook-ja-2",
        "outlook-rule",
    ],
)
def test_the_quoted_history_of_common_clients_is_cut(history: str) -> None:
    assert strip_quoted(f"承知しました。\n> inline quote\nよろしくお願いします。\n\n{history}\nmore old") == (
        "承知しました。\nよろしくお願いします。"
    )


def test_text_without_history_is_kept_whole() -> None:
    assert strip_quoted("From Tokyo with thanks.\nOn Monday we ship.") == "From Tokyo with thanks.\nOn Monday we ship."


def test_the_sample_reply_has_iso_2022_jp_headers_body_and_file_name_and_can_answer_any_send() -> None:
    from devkit.inbound import addressed_to
    from devkit.template import REPO_ROOT

    raw = (REPO_ROOT / "events" / "payloads" / "reply-iso-2022-jp.eml").read_bytes()
    assert b"=?iso-2022-jp?b?" in raw.lower() and b"charset=ISO-2022-JP" in raw
    reply = parse(addressed_to(raw, "d_0123456789abcdef01234567"))
    assert reply.subject == "Re: ご注文ありがとうございます" and reply.date == "2026-11-30T10:00:00Z"
    assert reply.new_text == "お世話になっております。\n納期を教えてください。"
    assert [a.describe() for a in reply.attachments] == ["仕様書.pdf (application/pdf, 13 bytes)"]
    assert reply.reply_tokens() == ["d_0123456789abcdef01234567"] and reply.problems == []


MIME_BITS = [
    b"From: a@example.com\r\n",
    b"Content-Type: multipart/mixed; boundary=b\r\n",
    b"Content-Type: text/plain; charset=iso-2022-jp\r\n",
    b"Content-Transfer-Encoding: quoted-printable\r\n",
    b"Content-Transfer-Encoding: base64\r\n",
    b"Subject: =?iso-2022-jp?B?GyRC?=\r\n",
    b"\r\n",
    b"--b\r\n",
    b"=1B$B=FF\r\n",
    b"\x1b$B\xff\xfe\x1b(B",
    b"> quoted\r\n",
]


@given(st.lists(st.sampled_from(MIME_BITS) | st.binary(max_size=40), max_size=40))
@settings(max_examples=300, deadline=None)
def test_no_message_makes_the_reader_raise(pieces: list[bytes]) -> None:
    reply = parse(b"".join(pieces))
    assert isinstance(reply.text, str) and isinstance(reply.new_text, str)


@pytest.mark.parametrize(
    "hostile",
    [
        "<script>" * 200_000,  # each unclosed <script> made the tag pattern scan to the end: quadratic
        "<" * 10 * 1024 * 1024,  # each "<" made the tag pattern try 2,000 characters: 18 s here, past 60 s in Lambda
    ],
    ids=["unclosed-scripts", "ten-mb-of-angle-brackets"],
)
def test_an_html_only_reply_full_of_hostile_tags_is_read_in_linear_time(hostile: str) -> None:
    # Too slow a reading passes the function's 60 s timeout, its retries, then the DLQ: the reply never stored.
    # The alarm only turns that hang into a failure; the linear reading takes about a second at most.
    import signal

    html = "<p>Thanks, I will come.</p>" + hostile
    raw = (
        b"From: a@example.com\r\nTo: b@example.com\r\nSubject: s\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: text/html; charset=utf-8\r\n\r\n" + html.encode()
    )

    def hung(signum: int, frame: object) -> None:
        raise TimeoutError("the HTML reading is not linear")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(10)
    try:
        reply = parse(raw)
        text = reply.new_text
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert text.startswith("Thanks, I will come.")


def test_script_and_style_contents_never_reach_the_text() -> None:
    html = "<style>p{color:red}</style><p>Yes</p><SCRIPT type=x>alert(1)</script ><p>No</p><script>tail"
    raw = b"From: a@example.com\r\nContent-Type: text/html; charset=utf-8\r\n\r\n" + html.encode()
    assert parse(raw).text.split() == ["Yes", "No"]
