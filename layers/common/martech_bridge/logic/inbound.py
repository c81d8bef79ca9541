"""Turn an inbound webhook into the payload routes map from. Marketo and KARTE do not reliably set
Content-Type, so the body is read for what it is: JSON (object or array), else form-encoded; a GET (or an
empty body) is read from the query string. Japanese text is decoded as UTF-8 and kept as is."""

from typing import Any
from urllib.parse import parse_qsl, unquote_plus

from martech_bridge.errors import InvalidRequest
from martech_bridge.logic import strict_json


def parse_payload(body: bytes, content_type: str | None, query: str) -> dict[str, Any]:
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if not body.strip():
        return _form(query) if query else {}
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidRequest("Request body is not valid UTF-8", code="invalid_encoding") from None
    form_label = media == "application/x-www-form-urlencoded"
    stripped = text.lstrip()
    # The body's own shape wins over its label: `curl -d '{...}'` and some Marketo set-ups send JSON
    # labelled as a form.
    if stripped[:1] in ("{", "[", '"') or (media.endswith("json") and not form_label):
        if form_label:
            try:
                strict_json.loads(text)
            except strict_json.JsonRefused:
                return _form(text)
        return json_object(text)
    if form_label or "=" in text:
        return _form(text)
    raise InvalidRequest("Request body is neither JSON nor form-encoded", code="unsupported_body")


def json_object(text: str) -> dict[str, Any]:
    """A request body that must be one JSON object; a 400 says what is wrong with it."""
    try:
        return strict_json.loads_object(text)
    except strict_json.JsonRefused as exc:
        raise InvalidRequest(f"Request body is not acceptable JSON: {exc}", code="invalid_json") from None


def without_query_param(raw_query: str, name: str) -> str:
    """The query string without every occurrence of parameter `name` (a token that authenticated the call),
    the rest left byte for byte as it came."""
    kept = [part for part in raw_query.split("&") if unquote_plus(part.split("=", 1)[0]) != name]
    return "&".join(kept)


def _form(text: str) -> dict[str, Any]:
    """Form or query fields; a repeated field becomes a list."""
    try:
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=False, errors="strict")
    except (UnicodeDecodeError, ValueError):
        raise InvalidRequest("Form body is not valid percent-encoded UTF-8", code="invalid_encoding") from None
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            out[key] = [*out[key], value] if isinstance(out[key], list) else [out[key], value]
        else:
            out[key] = value
    return out
