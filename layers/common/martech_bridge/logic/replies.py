"""Reading a reply: a raw RFC 5322 message in, its parts out (never an exception), with the quoted history cut.

The standard library's parser with policy=default decodes encoded words, quoted-printable and base64, and the
charsets Japanese mail uses (ISO-2022-JP, Shift_JIS, EUC-JP); a part whose charset is unknown or whose bytes do
not decode is read as UTF-8 with replacement characters and noted in `problems`."""

import re
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import getaddresses, parsedate_to_datetime
from typing import Any

import msgspec

from martech_bridge.logic import mail_auth

MAX_PARTS = 200  # parts walked at most: a hostile message can nest thousands
MAX_ATTACHMENTS_LISTED = 50
# A reply address the send flow sets when REPLY_DOMAIN is configured: reply+<dispatch id>@<domain>.
REPLY_TOKEN = re.compile(r"^reply\+(d_[0-9a-f]{12,32})@", re.IGNORECASE)
# Our own message ids in a Message-ID form (<d_….N@…>), in case a provider kept ours.
OWN_MESSAGE_ID = re.compile(r"^(d_[0-9a-f]{12,32}\.\d{1,4})@")
_MSGID = re.compile(r"<([^<>\s]{1,500})>")

# Where the quoted history starts. English clients: "On <date>, <name> wrote:" (Gmail, Apple Mail,
# Thunderbird; Gmail may wrap it over two lines); Outlook: "-----Original Message-----" or a "From:" header
# block; Japanese clients: "<date> <name> <address>:" (Gmail ja), "…のメッセージ:" (Outlook ja),
# "-----元のメッセージ-----", "----- Original Message -----".
_HISTORY_STARTS = [
    re.compile(r"^\s*On\b.{0,300}\bwrote:\s*$", re.IGNORECASE),
    re.compile(r"^\s*-{2,}\s*Original Message\s*-{2,}\s*$", re.IGNORECASE),
    re.compile(r"^\s*-{2,}\s*元のメッセージ\s*-{2,}\s*$"),
    re.compile(r"^.{0,300}のメッセージ\s*[:：]\s*$"),
    re.compile(r"^\s*\d{4}年\d{1,2}月\d{1,2}日.{0,300}[:：]\s*$"),
    re.compile(r"^\s*\d{4}/\d{1,2}/\d{1,2}.{0,300}(wrote|書きました)\s*[:：]\s*$", re.IGNORECASE),
    re.compile(r"^\s*_{20,}\s*$"),  # Outlook's rule above its "From:" block
    re.compile(r"^\s*(From|差出人|送信者)\s*[:：].*[@<].*$"),  # a header block naming an address
]


class Attachment(msgspec.Struct):
    filename: str | None
    content_type: str
    size: int

    def describe(self) -> str:
        return f"{self.filename or '(no name)'} ({self.content_type}, {self.size} bytes)"


class ParsedReply(msgspec.Struct):
    sender: str | None = None
    sender_name: str | None = None
    to: list[str] = msgspec.field(default_factory=list)
    subject: str | None = None
    date: str | None = None  # ISO 8601 in UTC, whole seconds
    message_id: str | None = None
    in_reply_to: list[str] = msgspec.field(default_factory=list)
    references: list[str] = msgspec.field(default_factory=list)
    text: str = ""  # the whole text body (from the HTML part when there is no text part)
    html: str | None = None
    attachments: list[Attachment] = msgspec.field(default_factory=list)
    problems: list[str] = msgspec.field(default_factory=list)
    ses: mail_auth.SesVerdict = msgspec.field(default_factory=mail_auth.SesVerdict)  # what SES prepended

    @property
    def new_text(self) -> str:
        """The reply without the history it quotes."""
        return strip_quoted(self.text)

    def reply_tokens(self) -> list[str]:
        """Dispatch ids named by a reply+<dispatch id>@ address among the recipients."""
        found = [m.group(1).lower() for a in self.to if (m := REPLY_TOKEN.match(a))]
        return list(dict.fromkeys(found))

    def referenced_ids(self) -> list[str]:
        """Message ids this reply answers, most direct first (In-Reply-To, then References newest first)."""
        return list(dict.fromkeys([*self.in_reply_to, *reversed(self.references)]))


def parse(raw: bytes) -> ParsedReply:
    """The reply's parts; whatever cannot be read is noted in `problems`, never raised."""
    reply = ParsedReply()
    try:
        message = BytesParser(policy=policy.default).parsebytes(raw)
    except Exception as exc:  # noqa: BLE001 - the parser is lenient; anything it still raises is the input's fault
        reply.problems.append(f"unparseable message: {type(exc).__name__}")
        reply.text = raw[:65_535].decode("utf-8", "replace")
        return reply
    assert isinstance(message, EmailMessage)
    reply.problems += [f"header defect: {type(d).__name__}" for d in message.defects][:10]
    _headers(message, reply)
    try:
        reply.ses = mail_auth.read(list(message.raw_items()))
    except Exception:  # noqa: BLE001 - an unreadable header section is an unauthenticated one, not a lost reply
        reply.problems.append("unreadable header section: sender not authenticated")
    _bodies(message, reply)
    return reply


def _header(message: EmailMessage, name: str, reply: ParsedReply) -> str | None:
    try:
        value = message.get(name)
        return None if value is None else str(value)
    except Exception as exc:  # noqa: BLE001 - a malformed header must not lose the reply
        reply.problems.append(f"unreadable {name} header: {type(exc).__name__}")
        return None


def _headers(message: EmailMessage, reply: ParsedReply) -> None:
    sender = _header(message, "From", reply)
    if sender:
        addresses = getaddresses([sender])
        if addresses and "@" in addresses[0][1]:
            reply.sender_name, reply.sender = addresses[0][0] or None, addresses[0][1].lower()
    for name in ("To", "Cc", "Delivered-To", "X-Original-To"):
        value = _header(message, name, reply)
        if value:
            reply.to += [a.lower() for _, a in getaddresses([value]) if "@" in a]
    reply.to = list(dict.fromkeys(reply.to))[:100]
    reply.subject = (_header(message, "Subject", reply) or "")[:998] or None
    date = _header(message, "Date", reply)
    if date:
        try:
            moment = parsedate_to_datetime(date)
            if moment.tzinfo is not None:
                from datetime import UTC

                reply.date = moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        except (TypeError, ValueError, IndexError, OverflowError):
            reply.problems.append("unreadable Date header")
    reply.message_id = next(iter(_ids(_header(message, "Message-ID", reply))), None)
    reply.in_reply_to = _ids(_header(message, "In-Reply-To", reply))[:20]
    reply.references = _ids(_header(message, "References", reply))[-50:]


def _ids(value: str | None) -> list[str]:
    return _MSGID.findall(value or "")


def _content(part: EmailMessage, reply: ParsedReply) -> str:
    try:
        content = part.get_content()
    except (LookupError, UnicodeError, ValueError, AssertionError, KeyError) as exc:
        reply.problems.append(f"{part.get_content_type()} part read as UTF-8: {type(exc).__name__}")
        payload = part.get_payload(decode=True)
        return payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
    if isinstance(content, bytes):
        return content.decode("utf-8", "replace")
    return content if isinstance(content, str) else ""


def _bodies(message: EmailMessage, reply: ParsedReply) -> None:
    text_part = html_part = None
    walked = 0
    try:
        for part in message.walk():
            walked += 1
            if walked > MAX_PARTS:
                reply.problems.append(f"more than {MAX_PARTS} parts; the rest not read")
                break
            assert isinstance(part, EmailMessage)
            if part.is_multipart():
                continue
            kind = part.get_content_type()
            if part.is_attachment() or kind not in ("text/plain", "text/html"):
                if len(reply.attachments) < MAX_ATTACHMENTS_LISTED:
                    reply.attachments.append(_attachment(part, reply))
                continue
            if kind == "text/plain" and text_part is None:
                text_part = part
            elif kind == "text/html" and html_part is None:
                html_part = part
    except RecursionError:
        reply.problems.append("MIME structure nested too deeply; the rest not read")
    if html_part is not None:
        reply.html = _content(html_part, reply)
    if text_part is not None:
        reply.text = _content(text_part, reply)
    elif reply.html is not None:
        reply.text = _html_to_text(reply.html)


def _attachment(part: EmailMessage, reply: ParsedReply) -> Attachment:
    try:
        name = part.get_filename()
    except Exception:  # noqa: BLE001 - a malformed name must not lose the reply
        name = None
        reply.problems.append("unreadable attachment name")
    try:
        payload = part.get_payload(decode=True)
        size = len(payload) if isinstance(payload, bytes) else 0
    except Exception:  # noqa: BLE001
        size = 0
    return Attachment(filename=(name or None) and str(name)[:255], content_type=part.get_content_type(), size=size)


_TAGS = re.compile(r"<[^<>]{0,2000}>")  # stops at the next "<": linear on "<<<<..."
_BREAKS = re.compile(r"<\s*(br|/p|/div|/li|/tr)\b[^>]{0,200}>", re.IGNORECASE)
_RAW_TEXT = re.compile(r"<(script|style)\b", re.IGNORECASE)


def _html_to_text(html: str) -> str:
    import html as entities

    return entities.unescape(_TAGS.sub("", _BREAKS.sub("\n", _without_scripts(html))))


def _without_scripts(html: str) -> str:
    """The HTML without <script> and <style> elements, in one pass (a lazy `.*?</script>` pattern rescans to
    the end for every unclosed one: quadratic). Unclosed, one runs to the end, as browsers read it."""
    lower = html.lower()
    kept: list[str] = []
    at = 0
    while (opening := _RAW_TEXT.search(html, at)) is not None:
        kept.append(html[at : opening.start()])
        end = lower.find(f"</{opening.group(1).lower()}", opening.end())
        if end < 0:
            return "".join(kept)
        close = html.find(">", end)
        at = len(html) if close < 0 else close + 1
    kept.append(html[at:])
    return "".join(kept)


def strip_quoted(text: str) -> str:
    """The text above the quoted history: cut at the first marker line (a two-line "On … / wrote:" too),
    without lines quoted with '>' and trailing blank lines."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    kept: list[str] = []
    for i, line in enumerate(lines):
        joined = f"{line} {lines[i + 1]}" if i + 1 < len(lines) else line
        if any(p.match(line) for p in _HISTORY_STARTS) or (
            line.strip().startswith("On ") and _HISTORY_STARTS[0].match(joined)
        ):
            if kept or i > 0:
                break
        if line.lstrip().startswith(">"):
            continue
        kept.append(line)
    while kept and not kept[-1].strip():
        kept.pop()
    while kept and not kept[0].strip():
        kept.pop(0)
    return "\n".join(kept)


def summary(reply: ParsedReply) -> dict[str, Any]:
    """What is logged about a reply: no address, no text."""
    return {
        "attachments": len(reply.attachments),
        "problems": len(reply.problems),
        "has_in_reply_to": bool(reply.in_reply_to),
        "reply_tokens": len(reply.reply_tokens()),
        "ses_auth": reply.ses.summary() if reply.ses.found else None,
        "spam_verdict": reply.ses.spam,
        "virus_verdict": reply.ses.virus,
    }
