"""SES's own verdict on a received message: the Authentication-Results and spam/virus verdicts it prepends,
read from the top of the header section only, and whether they authenticate the From domain.

What SES prepends to a message its S3 action stores, above the sender's own headers (seen in stored
messages; the verdicts are the ones docs.aws.amazon.com/ses/latest/dg/receiving-email-notifications-contents.html
describes): Return-Path, Received, X-SES-Spam-Verdict, X-SES-Virus-Verdict, Received-SPF, then
`Authentication-Results: amazonses.com; spf=pass (...) client-ip=...; envelope-from=...; helo=...;
dkim=pass header.i=@example.com; dmarc=pass header.from=example.com;`, then X-SES-RECEIPT and the sender's
headers. A sender can write any header among its own, so (RFC 8601 §5) only the topmost Authentication-Results
field counts, and only when its authserv-id is SES's; the verdicts count only above it."""

import re

import msgspec

from martech_bridge.models.email import normalize_email

SES_AUTHSERV_ID = "amazonses.com"
# Methods of IANA's Email Authentication Methods registry that can open a result; any other key=value is a
# property of the result before it (SES writes client-ip=, envelope-from=, helo= as items of their own).
_METHODS = frozenset(
    {"auth", "dkim", "dkim-adsp", "dmarc", "domainkeys", "iprev", "sender-id", "spf", "arc", "bimi", "dnswl",
     "rrvs", "smime", "vbr", "x-tls", "dkim-atps"}
)  # fmt: skip
_VERDICTS = frozenset({"PASS", "FAIL", "GRAY", "PROCESSING_FAILED"})  # the statuses SES documents
_WORD = re.compile(r"^[a-z]{1,16}$")
MAX_FIELD_CHARS = 8_192  # of one Authentication-Results field read: SES's are a few hundred characters
MAX_RESULTS = 20


class Result(msgspec.Struct, frozen=True):
    method: str
    result: str
    properties: dict[str, str] = msgspec.field(default_factory=dict)


class SesVerdict(msgspec.Struct):
    found: bool = False  # SES's Authentication-Results is the topmost one
    results: list[Result] = msgspec.field(default_factory=list)
    spam: str | None = None  # X-SES-Spam-Verdict above it: PASS, FAIL, GRAY, PROCESSING_FAILED
    virus: str | None = None

    def summary(self) -> str:
        """The results as `dmarc=fail dkim=none spf=pass` (methods and results only: no domain, no address)."""
        parts = [f"{r.method}={r.result}" for r in self.results if r.method in ("dmarc", "dkim", "spf")]
        return " ".join(dict.fromkeys(parts)) or "no spf, dkim or dmarc result"

    def authenticates(self, domain: str | None) -> bool:
        """Whether SES authenticated `domain` as the From domain.

        DMARC's own answer when SES gives one (RFC 7489 §4.2: SPF or DKIM passed for an identifier aligned
        with the From domain): dmarc=pass is enough, dmarc=fail is final. When the domain publishes no DMARC
        record (dmarc=none) or the check erred, the same test in DMARC's strict alignment (§3.1.1, §3.1.2):
        dkim=pass signed by exactly that domain, or spf=pass for an envelope sender of exactly that domain.
        Relaxed alignment would need the organizational domain (the Public Suffix List): not guessed here."""
        domain = (domain or "").strip().rstrip(".").lower()
        if not self.found or not domain:
            return False
        dmarc = [r for r in self.results if r.method == "dmarc" and _same(r.properties.get("header.from"), domain)]
        if any(r.result == "pass" for r in dmarc):
            return True
        if any(r.result == "fail" for r in dmarc):
            return False
        for r in self.results:
            if r.result != "pass":
                continue
            signer = (_domain(r.properties.get("header.d")), _domain(r.properties.get("header.i")))
            if r.method == "dkim" and domain in signer:
                return True
            identity = r.properties.get("smtp.mailfrom") or r.properties.get("envelope-from")
            if r.method == "spf" and _domain(identity) == domain:
                return True
        return False


def _domain(value: str | None) -> str | None:
    """The domain of `@example.com`, `user@example.com` or `example.com`, lower-cased."""
    if not value:
        return None
    domain = value.rsplit("@", 1)[-1].strip().strip("<>").rstrip(".").lower()
    if domain and not domain.isascii():
        # As the sender's address is compared: its IDN domain punycoded (models.email)
        try:
            domain = normalize_email(f"x@{domain}").rsplit("@", 1)[-1]
        except ValueError:
            return None
    return domain or None


def _same(header_from: str | None, domain: str) -> bool:
    # A dmarc result names the From domain it judged; one naming another domain (a message with two From
    # fields) says nothing about this one. Without header.from it is about the message's one From.
    return header_from is None or _domain(header_from) == domain


def read(headers: list[tuple[str, str]]) -> SesVerdict:
    """SES's verdict from a message's header fields in order (name, raw value); never raises."""
    verdict = SesVerdict()
    for name, value in headers:
        key = name.strip().lower()
        if key == "authentication-results":
            try:
                authserv_id, results = parse_field(value)
            except (ValueError, IndexError):  # garbage: not SES's, whose fields parse
                return SesVerdict(spam=verdict.spam, virus=verdict.virus)
            if authserv_id == SES_AUTHSERV_ID:
                verdict.found, verdict.results = True, results
            return verdict  # the topmost field decides; those below are the sender's to write
        if key in ("x-ses-spam-verdict", "x-ses-virus-verdict"):
            status = _unfold(value).strip().upper()
            status = status if status in _VERDICTS else "UNKNOWN"
            if key == "x-ses-spam-verdict" and verdict.spam is None:
                verdict.spam = status
            elif key == "x-ses-virus-verdict" and verdict.virus is None:
                verdict.virus = status
    # No Authentication-Results at all: SES writes one on every message it stores, so this one did not come
    # through SES's receipt rule, and verdicts without it are not trusted either.
    return SesVerdict()


def _unfold(value: str) -> str:
    return re.sub(r"\r?\n(?=[ \t])", "", str(value)).replace("\r", " ").replace("\n", " ")


def parse_field(value: str) -> tuple[str, list[Result]]:
    """An Authentication-Results field (RFC 8601 §2.2) as (authserv-id lower-cased, results), comments
    dropped; raises ValueError when it has no authserv-id."""
    items = _items(_unfold(value)[:MAX_FIELD_CHARS])
    head = items[0].split() if items else []
    if not head:
        raise ValueError("no authserv-id")
    results: list[Result] = []
    current: Result | None = None
    for item in items[1:]:
        for token in item.split():
            key, sep, val = token.partition("=")
            if not sep:
                continue  # "none", a version number, a stray word
            key = key.lower()
            method = key.split("/", 1)[0]
            if method in _METHODS and "." not in key:
                if len(results) >= MAX_RESULTS:
                    return head[0].lower(), results
                result = val.lower()  # a token, never quoted (RFC 8601 §2.2)
                current = Result(method, result if _WORD.match(result) else "unknown", {})
                results.append(current)
            elif current is not None and key not in current.properties:
                current.properties[key] = val.strip('"')[:255]
    return head[0].lower(), results


def _items(text: str) -> list[str]:
    """The field split at ";" outside quoted strings, with (nested) comments removed."""
    items: list[str] = []
    out: list[str] = []
    depth = 0
    quoted = escaped = False
    for ch in text:
        if escaped:
            escaped = False
            if depth == 0:
                out.append(ch)
            continue
        if ch == "\\":
            escaped = True
            if depth == 0 and quoted:
                out.append(ch)
            continue
        if quoted:
            out.append(ch)
            quoted = ch != '"'
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth = max(0, depth - 1)
        elif depth:
            continue
        elif ch == '"':
            quoted = True
            out.append(ch)
        elif ch == ";":
            items.append("".join(out))
            out = []
        else:
            out.append(ch)
    items.append("".join(out))
    return [i.strip() for i in items]
