"""Generic HTTP target: any method, a URL whose placeholders are filled from the payload (each value
percent-encoded, so it cannot leave its path segment), static and secret headers, and a JSON or form body."""

import json
import re
from typing import Any
from urllib.parse import quote, unquote, urlencode, urlsplit, urlunsplit

from martech_bridge.adapters.targets.base import (
    SecretResolver,
    TargetRequest,
    TargetResponse,
    generic_outcome,
    header_value,
    require_https,
)
from martech_bridge.errors import ConfigurationError, InvalidRequest
from martech_bridge.logic.delivery import Outcome
from martech_bridge.models.routes import Deliverable, HttpTarget


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return (
        value
        if isinstance(value, str)
        else json.dumps(value, ensure_ascii=False)
        if isinstance(value, (dict, list))
        else str(value)
    )


def _refuse_dot_segments(template: str, path: str, params: dict[str, Any]) -> None:
    """A value cannot hold "/" once encoded, but "." and ".." pass quote() unchanged, and every HTTP client
    and server removes such dot segments (RFC 3986 5.2.4): `/v1/users/{id}` with id ".." would call `/v1/`.
    So a segment that placeholders turned into a dot segment is refused, naming the field."""
    before = urlsplit(template).path.split("/")
    for original, filled in zip(before, path.split("/"), strict=False):
        # Also a value like "a/../.." or "..\\x": sent encoded (%2F, %5C), but some servers decode those
        # before normalising (Apache AllowEncodedSlashes, IIS, Tomcat).
        if original != filled and any(part in (".", "..") for part in re.split(r"[/\\]", unquote(filled))):
            names = [n for n in params if "{" + n + "}" in original] or [original]
            spec = params.get(names[0])
            field = getattr(spec, "path", None) or names[0]
            raise InvalidRequest(
                f"The value for URL parameter {names[0]} holds a '.' or '..' path segment, which would move the "
                "call to another path",
                code="invalid_path_value",
                field=field,
            )


class HttpTargetAdapter:
    def build(
        self, route: Deliverable, payload: dict[str, Any], secrets: SecretResolver, *, local_mode: bool
    ) -> TargetRequest:
        target = route.target
        assert isinstance(target, HttpTarget)
        mapping = route.mapping
        url = target.url
        for name, spec in mapping.url_params.items():
            value = spec.evaluate(payload)
            if value in (None, ""):
                raise InvalidRequest(
                    f"No value for URL parameter {name} (mapping: {spec.path})",
                    code="missing_field",
                    field=spec.path or name,
                )
            url = url.replace("{" + name + "}", quote(_text(value), safe=""))
        parts = urlsplit(url)
        if parts.netloc != target.host:  # cannot happen with encoded values; checked all the same
            raise InvalidRequest("Mapped URL would leave the configured host", code="invalid_url")
        _refuse_dot_segments(target.url, parts.path, mapping.url_params)
        query = [(k, _text(v)) for k, spec in mapping.query.items() if (v := spec.evaluate(payload)) is not None]
        if query:
            joined = "&".join(filter(None, [parts.query, urlencode(query)]))
            url = urlunsplit(parts._replace(query=joined))
        require_https(url, local_mode)

        headers = dict(target.headers)
        for name, spec in mapping.headers.items():
            value = spec.evaluate(payload)
            if value is not None:
                headers[name] = header_value(name, value)
        for name, ref in target.secret_headers.items():
            values = secrets([ref])
            if not values:
                raise ConfigurationError(f"Secret for header {name} is not configured")
            headers[name] = target.secret_header_format.get(name, "{}").replace("{}", values[0])

        body: bytes | None = None
        if (mapping.body is not None or mapping.body_value is not None) and target.method != "GET":
            if mapping.body_value is not None:
                content: Any = mapping.body_value.evaluate(payload)
            else:
                assert mapping.body is not None
                content = {k: v for k, spec in mapping.body.items() if (v := spec.evaluate(payload)) is not None}
            if target.body_format == "json":
                body = json.dumps(content, ensure_ascii=False).encode("utf-8")
                headers.setdefault("Content-Type", "application/json; charset=utf-8")
            else:
                if not isinstance(content, dict):
                    raise InvalidRequest("A form body needs an object of fields", code="invalid_body")
                body = urlencode({k: _text(v) for k, v in content.items()}).encode("ascii")
                headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
        return TargetRequest(
            method=target.method,
            url=url,
            headers=headers,
            body=body,
            timeout=target.timeout_seconds,
            idempotent=target.is_idempotent,
            secret_headers=frozenset(target.secret_headers),
        )

    def interpret(self, route: Deliverable, response: TargetResponse) -> Outcome:
        data = response.json()
        message = code = None
        if isinstance(data, dict):
            error = data.get("error")
            if isinstance(error, dict):
                message, code = error.get("message"), error.get("code")
            elif isinstance(error, str):
                message = error
            message = message or data.get("message")
            code = code or data.get("code")
            errors = data.get("errors")
            if not message and isinstance(errors, list) and errors and isinstance(errors[0], dict):
                message = errors[0].get("message")
        if message is None and not 200 <= response.status < 300 and response.body:
            message = response.body[:200].decode("utf-8", "replace")
        result = {"target_status": response.status, "response": data}
        return generic_outcome(
            response,
            code=str(code) if code is not None else None,
            message=str(message) if message is not None else None,
            result=result,
        )
