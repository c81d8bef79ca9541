"""E-mail addresses: normalised (whitespace, case, IDN domain) and validated once, then trusted.

Internationalised domains follow IDNA 2008 with UTS #46 non-transitional mapping, as mail systems and
browsers do (`straße.de` is `xn--strae-oqa.de`; IDNA 2003 would make it another registrant's `strasse.de`).
Invisible format characters (soft hyphen, zero-width space and joiners, BOM) are refused, not dropped:
UTS #46 would silently remove some of them and so send to an address nobody typed. ASCII domains - nearly
every address - take a fast path that never enters the `idna` package, except for `xn--` labels, which
must be valid Punycode of a valid IDNA 2008 label."""

import re
import unicodedata
from functools import lru_cache
from typing import Any

from martech_bridge.models.plain import string, value_error

MAX_ADDRESS_LENGTH = 254  # RFC 5321 path limit; SendGrid's 320 is looser.
_ATOM = r"[A-Za-z0-9!#$&'*+/=?^_`{|}~-]+"  # RFC 5322 atext without "%" (a path segment would decode it)
_LOCAL = re.compile(rf"^{_ATOM}(\.{_ATOM})*$")
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_DOMAIN_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_SPACE_OR_CONTROL = re.compile(r"[\s\x00-\x1f\x7f]")  # \s of a str pattern is str.isspace()


class InvalidEmail(ValueError):
    """Why an address was refused, in words a caller can act on."""


def normalize_email(value: str) -> str:
    """`  Taro@Example.COM ` -> `taro@example.com`; raises InvalidEmail with the reason."""
    if not isinstance(value, str):
        raise InvalidEmail("must be a string")
    address = value.strip()
    if not address:
        raise InvalidEmail("is empty")
    if _SPACE_OR_CONTROL.search(address):
        raise InvalidEmail("contains whitespace or control characters")
    local, sep, domain = address.rpartition("@")
    if not sep or not local or not domain:
        raise InvalidEmail("must look like name@domain")
    if len(local) > 64:
        raise InvalidEmail("has a local part longer than 64 characters")
    if not _LOCAL.match(local):
        raise InvalidEmail("has characters not allowed before the @")
    domain = _ascii_domain(domain[:-1] if domain.endswith(".") else domain)  # one trailing dot: the root
    labels = domain.split(".")
    if len(labels) < 2 or not all(_LABEL.match(label) for label in labels):
        raise InvalidEmail("has an invalid domain")
    if "xn--" in domain and not all(_valid_a_label(label) for label in labels if label.startswith("xn--")):
        raise InvalidEmail("has an invalid internationalised domain")
    if not re.match(r"^(xn--[a-z0-9-]+|[a-z]{2,63})$", labels[-1]):
        raise InvalidEmail("has an invalid top-level domain")
    address = f"{local.lower()}@{domain}"
    if len(address) > MAX_ADDRESS_LENGTH:
        raise InvalidEmail(f"is longer than {MAX_ADDRESS_LENGTH} characters")
    return address


def _ascii_domain(domain: str) -> str:
    """The domain in lower-case ASCII (A-labels); InvalidEmail when IDNA 2008 / UTS #46 refuses it."""
    if domain.isascii():
        return domain.lower()
    a_labels, problem = _idna_domain(domain)
    if problem is not None:
        raise InvalidEmail(problem)
    return a_labels


@lru_cache(maxsize=1024)
def _idna_domain(domain: str) -> tuple[str, str | None]:
    """IDNA 2008 / UTS #46 of a non-ASCII domain, or why not. Remembered: the `idna` package takes ~100 µs a
    domain, and a domain's users write to it again and again (a post of events names it many times)."""
    if any(unicodedata.category(ch) == "Cf" for ch in domain):
        return "", "has invisible characters (such as a soft hyphen or zero-width space) in its domain"
    import idna  # only for non-ASCII domains: keeps the common path and cold starts light

    try:
        return idna.encode(domain, uts46=True, transitional=False).decode("ascii").lower(), None
    except (idna.IDNAError, UnicodeError, ValueError):
        return "", "has an invalid internationalised domain"


@lru_cache(maxsize=1024)
def _valid_a_label(label: str) -> bool:
    import idna

    try:
        return idna.encode(idna.decode(label)).decode("ascii") == label
    except (idna.IDNAError, UnicodeError, ValueError):
        return False


# What openapi.json states: the format, and the local part's characters (format "email" would allow "%").
EMAIL_JSON_SCHEMA = {
    "type": "string",
    "format": "email",
    "maxLength": MAX_ADDRESS_LENGTH,
    # ASCII domains as the checks above take them (an internationalised domain is accepted too, not stated)
    "pattern": rf"^{_ATOM}(\.{_ATOM})*@({_DOMAIN_LABEL}\.)+[A-Za-z]{{2,63}}\.?$",
}


def email_address(value: Any, loc: tuple[str | int, ...]) -> str:
    """A request's or record's address field, normalised; a ValidationError at `loc` in pydantic's words
    (devkit/api_models.py's EmailAddress is the same check, for openapi.json)."""
    try:
        return normalize_email(string(value, loc))
    except InvalidEmail as exc:
        raise value_error(loc, exc) from None
