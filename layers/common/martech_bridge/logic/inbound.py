"""Turn an inbound webhook into the payload routes map from. Marketo and KARTE do not reliably set
Content-Type, so the body is read for what it is: JSON (object or array), else form-encoded; a GET (or an
empty body) is read from the query string. Japanese text is decoded as UTF-8 and kept as is."""

import json
from typing import Any
from urllib.parse import parse_qsl

from martech_bridge.errors import InvalidRequest

MAX_DEPTH = 64


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
                json.loads(text)
            except (json.JSONDecodeError, RecursionError):
                return _form(text)
        return json_object(text)
    if form_label or "=" in text:
        return _form(text)
    raise InvalidRequest("Request body is neither JSON nor form-encoded", code="unsupported_body")


def json_object(text: str) -> dict[str, Any]:
    """A request body that must be one JSON object; a 400 says what is wrong with it."""
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidRequest(
            f"Request body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}", code="invalid_json"
        ) from None
    except RecursionError:
        raise InvalidRequest("Request body is nested too deeply", code="invalid_json") from None
    if not isinstance(parsed, dict):
        raise InvalidRequest(f"Request body must be a JSON object, not {type(parsed).__name__}", code="invalid_json")
    if _depth(parsed) > MAX_DEPTH:
        raise InvalidRequest(f"Request body is nested deeper than {MAX_DEPTH} levels", code="invalid_json")
    return parsed


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


def _depth(value: Any, level: int = 0) -> int:
    if level > MAX_DEPTH:
        return level
    if isinstance(value, dict):
        return max((_depth(v, level + 1) for v in value.values()), default=level + 1)
    if isinstance(value, list):
        return max((_depth(v, level + 1) for v in value), default=level + 1)
    return level
