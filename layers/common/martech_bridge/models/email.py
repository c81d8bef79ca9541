"""E-mail addresses: normalised (whitespace, case, IDN domain) and validated once, then trusted."""

import re
from typing import Annotated

from pydantic import AfterValidator, WithJsonSchema

MAX_ADDRESS_LENGTH = 254  # RFC 5321 path limit; SendGrid's 320 is looser.
_ATOM = r"[A-Za-z0-9!#$&'*+/=?^_`{|}~-]+"  # RFC 5322 atext without "%" (a path segment would decode it)
_LOCAL = re.compile(rf"^{_ATOM}(\.{_ATOM})*$")
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_DOMAIN_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"


class InvalidEmail(ValueError):
    """Why an address was refused, in words a caller can act on."""


def normalize_email(value: str) -> str:
    """`  Taro@Example.COM ` -> `taro@example.com`; raises InvalidEmail with the reason."""
    if not isinstance(value, str):
        raise InvalidEmail("must be a string")
    address = value.strip()
    if not address:
        raise InvalidEmail("is empty")
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in address):
        raise InvalidEmail("contains whitespace or control characters")
    local, sep, domain = address.rpartition("@")
    if not sep or not local or not domain:
        raise InvalidEmail("must look like name@domain")
    if len(local) > 64:
        raise InvalidEmail("has a local part longer than 64 characters")
    if not _LOCAL.match(local):
        raise InvalidEmail("has characters not allowed before the @")
    try:
        domain = domain.rstrip(".").encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise InvalidEmail("has an invalid domain") from None
    labels = domain.split(".")
    if len(labels) < 2 or not all(_LABEL.match(label) for label in labels):
        raise InvalidEmail("has an invalid domain")
    if not re.match(r"^(xn--[a-z0-9-]+|[a-z]{2,63})$", labels[-1]):
        raise InvalidEmail("has an invalid top-level domain")
    address = f"{local.lower()}@{domain}"
    if len(address) > MAX_ADDRESS_LENGTH:
        raise InvalidEmail(f"is longer than {MAX_ADDRESS_LENGTH} characters")
    return address


# What openapi.json states: the format, and the local part's characters (format "email" would allow "%").
EMAIL_JSON_SCHEMA = {
    "type": "string",
    "format": "email",
    "maxLength": MAX_ADDRESS_LENGTH,
    # ASCII domains as the checks below take them (an IDN domain is accepted too, and not stated)
    "pattern": rf"^{_ATOM}(\.{_ATOM})*@({_DOMAIN_LABEL}\.)+([A-Za-z]{{2,63}}|[Xx][Nn]--[A-Za-z0-9-]+)\.?$",
}
EmailAddress = Annotated[str, AfterValidator(normalize_email), WithJsonSchema(EMAIL_JSON_SCHEMA)]
